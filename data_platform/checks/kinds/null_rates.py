"""Each column's share of NULLs per partition stays within the contract's limit (ODCS quality `nullValues`)."""

from typing import Callable

from dagster import MetadataValue, TableColumn, TableRecord, TableSchema

from data_platform.checks.framework import WARN, Check, Days, Evaluation, Verdict, day_column, label, per_partition, scope
from data_platform.checks.kinds import CheckKind, register
from data_platform.contracts import TableContract


def null_rate_evaluation(contract: TableContract) -> Callable:
    limits = {name: col.max_null_rate for name, col in contract.columns.items() if col.max_null_rate is not None}

    def evaluate(conn, days: Days) -> Evaluation:
        counts = ", ".join(f'count("{name}")' for name in limits)
        where, params = scope(days)
        found = {row[0]: row[1:] for row in conn.execute(
            f"SELECT {day_column(days)}, count(*), {counts} FROM {contract.name} {where} GROUP BY ALL", params
        ).fetchall()}
        worst = {name: 0.0 for name in limits}

        def judge(day) -> Verdict:
            if day not in found:
                return Verdict(label(day), True, "no rows (see the volume check)")
            total, *present = found[day]
            rates = {name: 1 - n / total for name, n in zip(limits, present)}
            for name, rate in rates.items():
                worst[name] = max(worst[name], rate)
            over = [f"{name} {rate:.1%} > {limits[name]:.0%}" for name, rate in rates.items() if rate > limits[name]]
            detail = ("NULL rate over the limit: " + ", ".join(over)) if over else "every NULL rate within its limit"
            return Verdict(label(day), not over, detail, {f"null_rate_{n}": round(r, 4) for n, r in rates.items()})

        verdicts = per_partition(days, judge)
        limits_table = MetadataValue.table(
            records=[TableRecord({"column": name, "limit": limits[name], "worst_partition_rate": round(worst[name], 4)})
                     for name in limits],
            schema=TableSchema(columns=[TableColumn("column", "string"), TableColumn("limit", "float"),
                                        TableColumn("worst_partition_rate", "float")]),
        )
        return Evaluation(verdicts, {"null_rate_limits": limits_table})

    return evaluate


def checks(dataset, config) -> list[Check]:
    if all(col.max_null_rate is None for col in dataset.cleaned.columns.values()):
        return []
    return [Check(
        "null_rates_within_contract",
        "Asserts that each column's share of NULLs per partition stays within the contract's nullValues limit. "
        "WARN: more NULLs than ever seen usually means the source dropped a field.",
        WARN, null_rate_evaluation(dataset.cleaned), partitioned=dataset.partitioned,
    )]


register(CheckKind("null_rates", checks))
