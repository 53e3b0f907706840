"""Every file in a landing folder is one a partition will read; any other would be silently ignored."""

from typing import Callable

from data_platform.checks.framework import WARN, Check, Evaluation, Verdict
from data_platform.checks.kinds import CheckKind, register


def landing_files_evaluation(dataset) -> Callable:
    def evaluate(source) -> Evaluation:
        if source.effective(dataset).type != "landing":
            where = f"{source.describe(dataset)} (no landing folder)"
            return Evaluation([Verdict(where, True, "nothing to check")], {"landing_folder": where}, unit="source(s)")
        where = str(source.landing_folder(dataset))
        problems = source.unexpected_landing_files(dataset)
        verdicts = [Verdict(path, False, why) for path, why in (problem.split(": ", 1) for problem in problems)]
        verdicts = verdicts or [Verdict(where, True, "every file is a readable daily partition")]
        return Evaluation(verdicts, {"landing_folder": where, "unreadable_files": len(problems)},
                          summary=f"{len(problems)} file(s) in {where} will never be ingested." if problems else "",
                          unit="file(s)")

    return evaluate


def checks(dataset, config) -> list[Check]:
    if not dataset.partitioned:
        return []
    return [Check(
        "landing_files_all_ingestible",
        f"Asserts that every file in the landing folder of {dataset.name} is one a partition will read: named "
        "YYYY-MM-DD.csv|.parquet with a date inside the partition range, and not a link leaving the landing "
        "directory. Any other file would be silently ignored, so each is named with the reason. WARN: the "
        "partitions that were read are fine; the stray file needs a person (rename, move or delete it). "
        "Passes trivially for a single-file source.",
        WARN, landing_files_evaluation(dataset), kind="landing", layer="raw",
    )]


register(CheckKind("landing_files", checks))
