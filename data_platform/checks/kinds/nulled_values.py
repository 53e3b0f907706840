"""No value had to be set to NULL by the contract's plausibility rules (plausibleRange, maxJump)."""

from typing import Callable

from data_platform.checks.framework import WARN, Check, Days, Evaluation, Verdict, day_column, label, per_partition, scope
from data_platform.checks.kinds import CheckKind, register
from data_platform.contracts import NULLED_VALUES


def nulled_values_evaluation(dataset) -> Callable:
    table = dataset.cleaned.name
    key_columns = [f'"{name}"' for name in dataset.key if name != "day"]

    def evaluate(conn, days: Days) -> Evaluation:
        where, params = scope(days)
        rows = conn.execute(
            f"""
            SELECT {day_column(days)}, {" || ' ' || ".join(f"CAST({c} AS VARCHAR)" for c in key_columns) or "''"},
                   {NULLED_VALUES} FROM {table}
            {where} {"AND" if where else "WHERE"} {NULLED_VALUES} IS NOT NULL ORDER BY ALL
            """,
            params,
        ).fetchall()
        by_day: dict = {}
        for day, key, nulled in rows:
            by_day.setdefault(day, []).append(f"{key}: {nulled}")

        def judge(day) -> Verdict:
            found = by_day.get(day, [])
            detail = (f"{len(found)} row(s) with values set to NULL: " + "; ".join(found[:5])) if found \
                else "no implausible values"
            return Verdict(label(day), not found, detail, {"rows_with_nulled_values": len(found)})

        return Evaluation(per_partition(days, judge))

    return evaluate


def checks(dataset, config) -> list[Check]:
    if NULLED_VALUES not in dataset.cleaned.columns:
        return []
    return [Check(
        "no_implausible_values_nulled",
        f"Asserts that no value of {dataset.cleaned.name} had to be set to NULL by the contract's plausibility rules "
        "(physical limits; isolated jumps away from both neighbouring observations). Lists every nulled value. "
        "WARN: the rest of the row is kept and usable.",
        WARN, nulled_values_evaluation(dataset), partitioned=dataset.partitioned,
    )]


register(CheckKind("nulled_values", checks))
