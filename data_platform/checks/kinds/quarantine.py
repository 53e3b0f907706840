"""No row was quarantined: the reasons per partition, and sample rows with their file and row."""

import re
from typing import Callable

from dagster import MetadataValue, TableColumn, TableRecord, TableSchema

from data_platform.checks.framework import (
    SAMPLE_ROWS, WARN, Check, Days, Evaluation, Verdict, day_column, label, per_partition, scope,
)
from data_platform.checks.kinds import CheckKind, register

REASON_VALUE = re.compile(r"^(\w+): .*? (is not a valid \w+|not .*)( \(.*\))?$")


def reason_kind(part: str) -> str:
    """A reason without the offending value: 'dep_delay: abc is not a decimal number ...' -> 'dep_delay: is not ...'."""
    if part.startswith("row date "):
        return "row date does not match partition"
    if part.startswith("conflicting rows for key"):
        return "conflicting rows for one key"
    match = REASON_VALUE.match(part)
    return f"{match.group(1)}: {match.group(2)}" if match else part


def quarantine_evaluation(dataset) -> Callable:
    table = dataset.quarantine.name

    def evaluate(conn, days: Days) -> Evaluation:
        where, params = scope(days)
        rows = conn.execute(
            f"SELECT {day_column(days)}, _source_uri, _source_row, reason FROM {table} {where} ORDER BY ALL", params
        ).fetchall()
        kinds: dict = {}
        counted: dict = {}
        sample = []
        for day, uri, row, reason in rows:
            counted[day] = counted.get(day, 0) + 1
            day_kinds = kinds.setdefault(day, {})
            for part in reason.split("; "):
                day_kinds[reason_kind(part)] = day_kinds.get(reason_kind(part), 0) + 1
            if len(sample) < SAMPLE_ROWS:
                sample.append(TableRecord({"partition": label(day), "file": uri, "row": int(row), "reason": reason}))

        def judge(day) -> Verdict:
            day_kinds = kinds.get(day)
            if not day_kinds:
                return Verdict(label(day), True, "no rows quarantined", {"quarantined": 0})
            reasons = ", ".join(f"{n} x {kind}" for kind, n in sorted(day_kinds.items(), key=lambda kv: -kv[1]))
            return Verdict(label(day), False, f"{counted[day]} row(s) quarantined: {reasons}",
                           {"quarantined": counted[day]})

        sample_table = MetadataValue.table(
            records=sample,
            schema=TableSchema(columns=[TableColumn("partition", "string"), TableColumn("file", "string"),
                                        TableColumn("row", "int"), TableColumn("reason", "string")]),
        )
        find = f" WHERE day BETWEEN DATE '{days[0]}' AND DATE '{days[1]}' ORDER BY day, _source_row" if days else ""
        return Evaluation(per_partition(days, judge),
                          {"quarantined_rows": len(rows), "quarantine_sample": sample_table,
                           "find_them": MetadataValue.md(f"```sql\nSELECT * FROM {table}{find}\n```")})

    return evaluate


def checks(dataset, config) -> list[Check]:
    return [Check(
        "no_rows_quarantined",
        f"Asserts that no row of {dataset.raw.name} was quarantined; lists the reasons and sample rows with their "
        f"file and row. WARN: the clean rows are complete and usable; the rejected ones wait in "
        f"{dataset.quarantine.name} for a fix at the source.",
        WARN, quarantine_evaluation(dataset), table=dataset.quarantine.name, partitioned=dataset.partitioned,
    )]


register(CheckKind("quarantine", checks))
