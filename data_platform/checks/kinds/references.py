"""Codes are known in the dataset they reference (ODCS property `relationships`), within the allowed share."""

from typing import Callable

from dagster import MetadataValue, TableColumn, TableRecord, TableSchema

from data_platform.checks.framework import (
    ERROR, SAMPLE_ROWS, WARN, Check, Days, Evaluation, Verdict, day_column, label, per_partition, scope,
)
from data_platform.checks.kinds import CheckKind, register
from data_platform.storage import table_exists


def reference_evaluation(table: str, reference) -> Callable:
    """Values of <table>.<column> missing from the referenced dataset's cleaned table."""
    column, target = reference.column, f"cleaned.{reference.dataset}"
    max_share = reference.max_unknown_share

    def evaluate(conn, days: Days) -> Evaluation:
        if not table_exists(conn, target):
            verdicts = per_partition(days, lambda day: Verdict(
                label(day), True, f"not checked: {target} is not materialized yet"))
            return Evaluation(verdicts, {"not_checked": f"{target} does not exist yet"},
                              summary=f"Not checked: {target} is not materialized yet.")
        where, params = scope(days, "f.")
        rows = conn.execute(
            f"""
            SELECT {day_column(days, "f.")}, count(*) AS total,
                   count(*) FILTER (WHERE f."{column}" IS NOT NULL AND r.code IS NULL) AS unknown,
                   list(DISTINCT f."{column}" ORDER BY f."{column}") FILTER (WHERE f."{column}" IS NOT NULL AND r.code IS NULL)
            FROM {table} f
            LEFT JOIN (SELECT DISTINCT "{reference.target}" AS code FROM {target}) r ON f."{column}" = r.code
            {where} GROUP BY ALL
            """,
            params,
        ).fetchall()
        by_day = {day: (total, unknown, codes or []) for day, total, unknown, codes in rows}
        overall = conn.execute(
            f"""
            SELECT f."{column}", count(*) FROM {table} f {where} {"AND" if where else "WHERE"} f."{column}" IS NOT NULL
              AND f."{column}" NOT IN (SELECT "{reference.target}" FROM {target} WHERE "{reference.target}" IS NOT NULL)
            GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT {SAMPLE_ROWS}
            """,
            params,
        ).fetchall()

        def judge(day) -> Verdict:
            total, unknown, codes = by_day.get(day, (0, 0, []))
            share = unknown / total if total else 0.0
            shown = ", ".join(map(str, codes[:8])) + (f" and {len(codes) - 8} more" if len(codes) > 8 else "")
            detail = (f"{unknown} of {total} rows ({share:.1%}) have a {column} not in {target}"
                      + (f": {shown}" if codes else "") + f"; limit {max_share:.0%}")
            return Verdict(label(day), share <= max_share, detail,
                           {"rows": total, "unknown": unknown, "unknown_share": round(share, 4)})

        unknown_codes = MetadataValue.table(
            records=[TableRecord({"code": str(code), "rows": n}) for code, n in overall],
            schema=TableSchema(columns=[TableColumn("code", "string"), TableColumn("rows", "int")]),
        )
        return Evaluation(per_partition(days, judge), {"unknown_codes": unknown_codes, "max_share": max_share})

    return evaluate


def checks(dataset, config) -> list[Check]:
    found = []
    for reference in dataset.references:
        severity = ERROR if reference.severity == "error" else WARN
        found.append(Check(
            f"{reference.column}_known_in_{reference.dataset}",
            f"Asserts that at most {reference.max_unknown_share:.0%} of a partition's rows have a {reference.column} "
            f"missing from cleaned.{reference.dataset}.{reference.target} (the contract's relationship). "
            f"{'ERROR' if severity == ERROR else 'WARN'}, not blocking: the rows themselves are valid; an unknown code "
            "means the reference is out of date or a code is corrupt. Passes with 'not checked' until the reference "
            "table exists (the cleaned asset depends on it, so a backfill builds it first).",
            severity, reference_evaluation(dataset.cleaned.name, reference), partitioned=dataset.partitioned,
            reads=(f"cleaned/{reference.dataset}",),
        ))
    return found


register(CheckKind("references", checks))
