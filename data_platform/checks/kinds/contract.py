"""Each table matches its contract (pandera, compiled when the check runs): raw, cleaned and quarantine.

Reads what every contract declares (columns, types, rules, key), so it applies to every dataset;
the features and ML tables' checks use `contract_evaluation` too.
"""

from typing import Callable

from dagster import MetadataValue, TableColumn, TableRecord, TableSchema

from data_platform.checks.framework import (
    ERROR, SAMPLE_ROWS, TABLE, WARN, Check, Days, Evaluation, Verdict, label, per_partition, scope,
)
from data_platform.checks.kinds import CheckKind, register
from data_platform.contracts import TableContract, to_pandera
from data_platform.partitions import day_chunks


def _row_label(frame, index, contract: TableContract) -> str:
    """Where a failing row is: its source file and row for raw data, its key for cleaned data."""
    if index is None or index not in frame.index:
        return "(whole table)"
    row = frame.loc[index]
    if "_source_uri" in frame.columns:
        return f"{str(row['_source_uri']).rsplit('/', 1)[-1]} row {row['_source_row']} ({row['_source_uri']})"
    return " ".join(str(row[name]) for name in contract.unique if name != "day") or f"row {index}"


# Days validated per pandas frame: pandera needs the rows in memory, so a long range is read a week
# at a time (the checks of a year of raw flights at 10x the bundled data peaked at 7.2 GiB in one
# frame, 3.9 GiB by month, 1.2 GiB by week, and ran faster). The unique key includes the day, so no
# duplicate spans two frames; the `keys` check kind also asserts it over the whole range.
DAYS_PER_FRAME = 7


class ContractFailures:
    """Pandera's failure cases of one or more frames of a table: counts per check and column, a sample
    of failing rows, and the problems per partition."""

    def __init__(self, contract: TableContract):
        self.contract = contract
        self.counts: dict[tuple[str, str], dict] = {}
        self.sample: list[TableRecord] = []
        self.problems: dict[str, list[str]] = {}
        self.table_failures: set[tuple[str, str]] = set()

    def validate(self, frame, partition_of: Callable) -> None:
        import pandera.pandas as pa

        try:
            to_pandera(self.contract).validate(frame, lazy=True)
            return
        except pa.errors.SchemaErrors as error:
            failures = error.failure_cases
        for case in failures.itertuples(index=False):
            index = None if case.index is None or (isinstance(case.index, float) and case.index != case.index) else case.index
            partition = partition_of(frame, index)
            column = case.column if isinstance(case.column, str) else "(table)"
            if index is None:  # a failure of the table (a missing column) is found again in every frame
                if (column, str(case.check)) in self.table_failures:
                    continue
                self.table_failures.add((column, str(case.check)))
            entry = self.counts.setdefault((column, str(case.check)), {"failures": 0, "partitions": set()})
            entry["failures"] += 1
            entry["partitions"].add(partition)
            self.problems.setdefault(partition, []).append(f"{column}: {case.check}")
            if len(self.sample) < SAMPLE_ROWS:
                self.sample.append(TableRecord({
                    "partition": partition, "column": column, "check": str(case.check),
                    "value": str(case.failure_case)[:120], "row": _row_label(frame, index, self.contract),
                }))

    def metadata(self) -> dict:
        counts_table = MetadataValue.table(
            records=[
                TableRecord({"column": column, "check": check, "failures": entry["failures"],
                             "partitions": ", ".join(sorted(entry["partitions"]))})
                for (column, check), entry in sorted(self.counts.items())
            ],
            schema=TableSchema(columns=[TableColumn("column", "string"), TableColumn("check", "string"),
                                        TableColumn("failures", "int"), TableColumn("partitions", "string")]),
        )
        sample_table = MetadataValue.table(
            records=self.sample,
            schema=TableSchema(columns=[TableColumn(n, "string") for n in ("partition", "column", "check", "value", "row")]),
        )
        return {
            "failure_cases": sum(entry["failures"] for entry in self.counts.values()),
            "failures_by_check_and_column": counts_table,
            "failure_sample": sample_table,
            "contract": self.contract.name,
        }


def _summarize(problems: list[str]) -> str:
    counted: dict[str, int] = {}
    for problem in problems:
        counted[problem] = counted.get(problem, 0) + 1
    return ", ".join(f"{n} x {problem}" for problem, n in sorted(counted.items(), key=lambda kv: -kv[1])[:5])


def contract_evaluation(contract: TableContract) -> Callable:
    def evaluate(conn, days: Days) -> Evaluation:
        whole = f"{days[0]}..{days[1]}" if days else TABLE
        failures, rows = ContractFailures(contract), {}

        def partition_of(data, index) -> str:
            if days is None or index is None or index not in data.index:
                return whole
            return str(data.at[index, "day"].date())

        for part in [None] if days is None else day_chunks(days[0], days[1], DAYS_PER_FRAME):
            where, params = scope(part)
            frame = conn.execute(f"SELECT * FROM {contract.name} {where}", params).df()
            if days is None:
                rows[None] = len(frame)
            elif len(frame):
                rows.update(frame.groupby(frame["day"].dt.date).size().to_dict())
            failures.validate(frame, partition_of)
            del frame

        problems = failures.problems
        verdicts = per_partition(days, lambda day: Verdict(
            label(day), label(day) not in problems,
            _summarize(problems[label(day)]) if label(day) in problems else f"{rows.get(day, 0)} rows valid",
            {"failure_cases": len(problems.get(label(day), []))},
        ))
        if days is not None and problems.get(whole):  # schema-level failures (a missing column) concern the range
            verdicts.append(Verdict(whole, False, _summarize(problems[whole]), {"failure_cases": len(problems[whole])}))
        return Evaluation(verdicts=verdicts, metadata=failures.metadata())

    return evaluate


def checks(dataset, config) -> list[Check]:
    partitioned = dataset.partitioned
    return [
        Check(
            "matches_raw_contract",
            f"Asserts that {dataset.raw.name} matches its contract as text: required values present, text written "
            "the way its column's type needs (whole numbers without fraction or exponent, ISO timestamps, codes "
            "that look like codes), validated lazily: counts per failed check and column, and a sample of failing "
            "rows with their file and row. WARN: raw keeps what the source sent; the cleaned layer quarantines "
            "what cannot be typed.",
            WARN, contract_evaluation(dataset.raw), partitioned=partitioned, layer="raw",
        ),
        Check(
            "matches_cleaned_contract",
            f"Asserts that {dataset.cleaned.name} matches its contract: types, nullability, ranges, allowed values, "
            "the unique key and the plausibility rules, validated lazily (counts per failed check and column, a "
            "sample of failing rows). ERROR and blocking: nothing downstream may be built on rows that break it.",
            ERROR, contract_evaluation(dataset.cleaned), blocking=True, partitioned=partitioned,
        ),
        Check(
            "quarantine_matches_contract",
            f"Asserts that {dataset.quarantine.name} matches its contract: every quarantined row keeps its source "
            "file and row, a non-empty reason and the run that rejected it. ERROR, not blocking: quarantine feeds "
            "nothing, but a row without a reason cannot be fixed.",
            ERROR, contract_evaluation(dataset.quarantine), table=dataset.quarantine.name, partitioned=partitioned,
        ),
    ]


register(CheckKind("contract", checks))
