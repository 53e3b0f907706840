"""Every raw row is accounted for: raw = cleaned + quarantined + duplicates removed, per partition."""

from typing import Callable

from data_platform.checks.framework import ERROR, Check, Days, Evaluation, Verdict, day_column, label, per_partition, scope
from data_platform.checks.kinds import CheckKind, register
from data_platform.cleaning import staging_params, staging_query
from data_platform.storage import table_exists


def conservation_evaluation(dataset) -> Callable:
    """raw = cleaned + quarantined + duplicates removed, per partition, re-derived from raw."""

    def evaluate(conn, days: Days) -> Evaluation:
        first, last = days or (None, None)
        expected = {
            day: (raw, duplicates)
            for day, raw, duplicates in conn.execute(
                f"SELECT {day_column(days)}, count(*), count(*) FILTER (WHERE duplicate_rank > 1) "
                f"FROM ({staging_query(dataset)}) GROUP BY ALL",
                staging_params(dataset, first, last),
            ).fetchall()
        }
        stored = {}
        where, params = scope(days)
        for name, contract in (("cleaned", dataset.cleaned), ("quarantined", dataset.quarantine)):
            if table_exists(conn, contract.name):
                for day, n in conn.execute(
                    f"SELECT {day_column(days)}, count(*) FROM {contract.name} {where} GROUP BY ALL", params
                ).fetchall():
                    stored[(name, day)] = n

        def judge(day) -> Verdict:
            raw, duplicates = expected.get(day, (0, 0))
            cleaned, quarantined = stored.get(("cleaned", day), 0), stored.get(("quarantined", day), 0)
            balance = raw - cleaned - quarantined - duplicates
            equation = f"raw {raw} = cleaned {cleaned} + quarantined {quarantined} + duplicates removed {duplicates}"
            if balance:
                equation = equation.replace(" = ", " ≠ ") + (
                    f": {abs(balance)} row(s) {'unaccounted for' if balance > 0 else 'too many'}; "
                    f"{dataset.cleaned.name} is stale against {dataset.raw.name} or lost rows"
                )
            return Verdict(label(day), balance == 0, equation,
                           {"raw": raw, "cleaned": cleaned, "quarantined": quarantined, "duplicates_removed": duplicates})

        return Evaluation(per_partition(days, judge))

    return evaluate


def checks(dataset, config) -> list[Check]:
    return [Check(
        "rows_conserved",
        f"Asserts that every raw row is accounted for: rows of {dataset.raw.name} = rows of {dataset.cleaned.name} + "
        f"rows of {dataset.quarantine.name} + duplicates removed (re-derived from raw). ERROR and blocking: a "
        "mismatch means rows were lost or the table is stale against raw.",
        ERROR, conservation_evaluation(dataset), blocking=True, partitioned=dataset.partitioned,
    )]


register(CheckKind("conservation", checks))
