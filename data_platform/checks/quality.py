"""Quality checks on every table: contracts, keys, row conservation, references, nulls, volume.

How a check learns what to look at
----------------------------------
The checks are not partitioned. Measured on dagster 1.13: a partitioned check (`partitions_def`,
preview) in a range run records one result without a partition and leaves every partition of the
range marked as failed-to-execute; an unpartitioned check records the same one result, without that
false per-partition state. Either way the per-partition verdicts must live in the result's metadata.
So each check reads the run's partition range from its context (a range run, a single-partition
run, or, launched alone from the UI, every stored partition of the table) and reports:

* `checked_partitions`, `failed_partitions` (a number) and `failed_partition_keys`;
* `per_partition`: a table with every partition's verdict and the reason for it;
* a description that names the failed partitions and why, so nobody has to open the metadata.

Severity
--------
WARN where the data is still usable as it stands (raw is what the source sent; unknown reference
codes that are real in this data; volume and null rates that a real event can explain). ERROR and
blocking where bad data must not flow on to features: the cleaned contract, cleaned keys and row
conservation. Each check's description says why it has its severity.
"""


import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

import pandera.pandas as pa
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetChecksDefinition,
    AssetKey,
    AssetCheckSpec,
    MetadataValue,
    TableColumn,
    TableRecord,
    TableSchema,
    multi_asset_check,
)
from dagster_duckdb import DuckDBResource

from data_platform import contracts
from data_platform.assets.cleaned import CLEANING_SPECS, CleaningSpec, staging_params, staging_query
from data_platform.contracts import NULLED_VALUES
from data_platform.partitions import days_between
from data_platform.sources import SourceResource
from data_platform.warehouse import table_exists

WARN, ERROR = AssetCheckSeverity.WARN, AssetCheckSeverity.ERROR
TABLE = "table"          # the "partition" of an unpartitioned table's single verdict
SAMPLE_ROWS = 20         # failure cases shown per check
SHOWN_IN_DESCRIPTION = 8  # failed partitions named in a result's description

# Shares of flights per partition whose codes may be missing from a reference table (WARN above).
# Measured on 2013: flights to BQN/SJU/STT/PSE (not in airports) are 1.4..3.9 % of a day's flights;
# flights whose tailnum is not in planes 10.4..17.7 %.
MAX_UNKNOWN_DEST_SHARE = 0.05
MAX_UNKNOWN_TAILNUM_SHARE = 0.25

# Volume: a day's flights against the median of up to 4 nearest same-weekday days (±8 weeks) that are
# not near a holiday. Measured on the whole of 2013 with these rules: ordinary days 0.852 (Saturday
# 2013-12-14) .. 1.219 (Saturday 2013-11-30) of their baseline; days within a day of a US federal
# holiday down to 0.648 (Thanksgiving, 634 flights), 0.676 (the day after), 0.738 (4 July).
VOLUME_BOUNDS = (0.8, 1.3)
HOLIDAY_BOUNDS = (0.5, 1.3)
HOLIDAY_WINDOW_DAYS = 1
BASELINE_DAYS, BASELINE_WEEKS, MIN_BASELINE_DAYS = 4, 8, 2
# Weather: 3 stations x the hours of the local day (23 or 25 on DST changes). Measured on 2013:
# every day has 57 to 72 observations (at least 79 %), except 2013-12-31, which has none.
WEATHER_STATIONS = len(contracts.NYC_ORIGINS)
WEATHER_COVERAGE_BOUNDS = (0.75, 1.0)


# --- per-partition verdicts ------------------------------------------------------------------

@dataclass
class Verdict:
    """One partition's outcome: `partition` is a date key, or TABLE for an unpartitioned table."""

    partition: str
    passed: bool
    detail: str
    figures: dict = field(default_factory=dict)


@dataclass
class Evaluation:
    verdicts: list[Verdict]
    metadata: dict = field(default_factory=dict)
    summary: str = ""  # overall sentence, prefixed to the description
    unit: str = "partition(s)"


def checked_days(context: AssetCheckExecutionContext, conn, table: str) -> Optional[tuple[dt.date, dt.date]]:
    """The partition range of the run; without one (a check launched alone), every stored day."""
    op_context = context.op_execution_context
    if op_context.has_partition_key_range:
        keys = op_context.partition_key_range
        return dt.date.fromisoformat(keys.start), dt.date.fromisoformat(keys.end)
    if op_context.has_partition_key:
        day = dt.date.fromisoformat(op_context.partition_key)
        return day, day
    if not table_exists(conn, table):
        return None
    first, last = conn.execute(f"SELECT min(day), max(day) FROM {table}").fetchone()
    return (first, last) if first is not None else None


def result(evaluation: Evaluation, severity: AssetCheckSeverity, checked: str, key: AssetKey, name: str) -> AssetCheckResult:
    """One check result for a range: passed only when every partition passed; metadata per partition."""
    verdicts = evaluation.verdicts
    failed = [v for v in verdicts if not v.passed]
    figure_names = list(dict.fromkeys(name for v in verdicts for name in v.figures))
    per_partition = MetadataValue.table(
        records=[
            TableRecord({"partition": v.partition, "passed": v.passed, "detail": v.detail,
                         **{name: v.figures.get(name) for name in figure_names}})
            for v in verdicts
        ],
        schema=TableSchema(
            columns=[TableColumn("partition", "string"), TableColumn("passed", "bool"), TableColumn("detail", "string")]
            + [TableColumn(name, "float") for name in figure_names]
        ),
    )
    if failed:
        named = "; ".join(f"{v.partition}: {v.detail}" for v in failed[:SHOWN_IN_DESCRIPTION])
        more = f"; and {len(failed) - SHOWN_IN_DESCRIPTION} more" if len(failed) > SHOWN_IN_DESCRIPTION else ""
        description = f"FAILED on {len(failed)} of {len(verdicts)} {evaluation.unit} — {named}{more}"
    else:
        description = f"passed on all {len(verdicts)} {evaluation.unit} of {checked}"
    if evaluation.summary:
        description = f"{evaluation.summary} {description}"
    return AssetCheckResult(
        asset_key=key,
        check_name=name,
        passed=not failed,
        severity=severity,
        description=description,
        metadata={
            "checked_partitions": checked,
            "failed_partitions": len(failed),
            "failed_partition_keys": ", ".join(v.partition for v in failed) or "none",
            "per_partition": per_partition,
            **evaluation.metadata,
        },
    )


def _not_checkable(rule: "Rule", key: AssetKey, why: str) -> AssetCheckResult:
    return AssetCheckResult(asset_key=key, check_name=rule.name, passed=False, severity=rule.severity,
                            description=f"could not check: {why}",
                            metadata={"checked_partitions": "none", "failed_partitions": 0})


@dataclass(frozen=True)
class Rule:
    """One asset check: its name (what it asserts), its description (how, and why this severity)."""

    name: str
    description: str
    severity: AssetCheckSeverity
    evaluate: Callable
    blocking: bool = False
    kind: str = "daily"          # "daily": evaluate(conn, first, last); "table": evaluate(conn); "landing": evaluate(source)
    table: Optional[str] = None  # the table it reads, when not the asset's own
    reads: tuple[str, ...] = ()  # other assets it reads: a run materializes them before the check


def evaluate_rule(rule: Rule, context: AssetCheckExecutionContext, conn, source: SourceResource, key: AssetKey) -> AssetCheckResult:
    table = rule.table or ".".join(key.path)
    if rule.kind == "landing":
        evaluation = rule.evaluate(source)
        checked = evaluation.metadata["landing_folder"]
    elif rule.kind == "table":
        if not table_exists(conn, table):
            return _not_checkable(rule, key, f"{table} does not exist")
        evaluation, checked = rule.evaluate(conn), table
    else:
        days = checked_days(context, conn, table)
        if days is None:
            return _not_checkable(rule, key, f"{table} has no stored partitions")
        first, last = days
        evaluation = rule.evaluate(conn, first, last)
        checked = f"{first}..{last} ({(last - first).days + 1} partition(s))"
    return result(evaluation, rule.severity, checked, key, rule.name)


def quality_checks_for(asset: str, rules: Sequence[Rule], op_name: Optional[str] = None) -> AssetChecksDefinition:
    """All rules of one asset as one multi-asset check: one step and one warehouse connection for
    them all (measured: 24 separate check steps added about 10 s to a one-day run on this machine
    under load), while each rule stays its own check with its own name, severity and blocking."""
    key = AssetKey(asset.split("/"))
    specs = [
        AssetCheckSpec(rule.name, asset=key, description=rule.description, blocking=rule.blocking,
                       additional_deps=[AssetKey(read.split("/")) for read in rule.reads],
                       metadata={"severity": rule.severity.value, "blocking": rule.blocking})
        for rule in rules
    ]

    @multi_asset_check(specs=specs, name=op_name or f"{'__'.join(key.path)}__quality_checks", can_subset=True, pool="duckdb",
                       description=f"Quality checks of {asset}, evaluated together over the run's partition range.")
    def _quality(context: AssetCheckExecutionContext, warehouse: DuckDBResource, source: SourceResource):
        selected = {check.name for check in context.selected_asset_check_keys}
        with warehouse.get_connection() as conn:
            for rule in rules:
                if rule.name in selected:
                    yield evaluate_rule(rule, context, conn, source, key)

    return _quality


def daily_check(
    asset: str,
    name: str,
    description: str,
    severity: AssetCheckSeverity,
    evaluate: Callable,
    blocking: bool = False,
    table: Optional[str] = None,
) -> AssetChecksDefinition:
    """One daily rule as its own check step (prefer `quality_checks_for` to group an asset's rules)."""
    rule = Rule(name, description, severity, evaluate, blocking=blocking, table=table)
    return quality_checks_for(asset, [rule], op_name=f"{asset.replace('/', '__')}__{name}")


def _per_day(first: dt.date, last: dt.date, judge: Callable[[dt.date], Verdict]) -> list[Verdict]:
    return [judge(day) for day in days_between(first, last)]


def _share(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


# --- contract: the pandera schema, lazily ---------------------------------------------------------

def _row_label(frame, index, contract: pa.DataFrameSchema) -> str:
    """Where a failing row is: its source file and row for raw data, its key for cleaned data."""
    if index is None or index not in frame.index:
        return "(whole table)"
    row = frame.loc[index]
    if "_source_uri" in frame.columns:
        return f"{str(row['_source_uri']).rsplit('/', 1)[-1]} row {row['_source_row']} ({row['_source_uri']})"
    key = contract.unique or []
    return " ".join(str(row[name]) for name in key if name != "day") or f"row {index}"


def validate_contract(frame, contract: pa.DataFrameSchema, partition_of: Callable) -> tuple[Evaluation, dict]:
    """Validate lazily: metadata with counts per failed check and column and a sample of failure
    cases, and the problems found per partition."""
    try:
        contract.validate(frame, lazy=True)
        failures = None
    except pa.errors.SchemaErrors as error:
        failures = error.failure_cases
    verdicts: dict[str, list] = {}
    counts, sample = {}, []
    if failures is not None:
        for case in failures.itertuples(index=False):
            index = None if case.index is None or (isinstance(case.index, float) and case.index != case.index) else case.index
            partition = partition_of(frame, index)
            column = case.column if isinstance(case.column, str) else "(table)"
            entry = counts.setdefault((column, str(case.check)), {"failures": 0, "partitions": set()})
            entry["failures"] += 1
            entry["partitions"].add(partition)
            verdicts.setdefault(partition, []).append(f"{column}: {case.check}")
            if len(sample) < SAMPLE_ROWS:
                sample.append(TableRecord({
                    "partition": partition, "column": column, "check": str(case.check),
                    "value": str(case.failure_case)[:120], "row": _row_label(frame, index, contract),
                }))
    counts_table = MetadataValue.table(
        records=[
            TableRecord({"column": column, "check": check, "failures": entry["failures"],
                         "partitions": ", ".join(sorted(entry["partitions"]))})
            for (column, check), entry in sorted(counts.items())
        ],
        schema=TableSchema(columns=[TableColumn("column", "string"), TableColumn("check", "string"),
                                    TableColumn("failures", "int"), TableColumn("partitions", "string")]),
    )
    sample_table = MetadataValue.table(
        records=sample,
        schema=TableSchema(columns=[TableColumn(n, "string") for n in ("partition", "column", "check", "value", "row")]),
    )
    metadata = {
        "failure_cases": sum(entry["failures"] for entry in counts.values()),
        "failures_by_check_and_column": counts_table,
        "failure_sample": sample_table,
        "contract": contract.name,
    }
    return Evaluation(verdicts=[], metadata=metadata), verdicts


def _summarize(problems: list[str]) -> str:
    counted: dict[str, int] = {}
    for problem in problems:
        counted[problem] = counted.get(problem, 0) + 1
    return ", ".join(f"{n} x {problem}" for problem, n in sorted(counted.items(), key=lambda kv: -kv[1])[:5])


def daily_contract_evaluation(contract: pa.DataFrameSchema) -> Callable:
    def evaluate(conn, first: dt.date, last: dt.date) -> Evaluation:
        if not table_exists(conn, contract.name):
            return Evaluation(_per_day(first, last, lambda day: Verdict(day.isoformat(), True, "table not created yet")))
        frame = conn.execute(f"SELECT * FROM {contract.name} WHERE day BETWEEN ? AND ?", [first, last]).df()
        rows = frame.groupby(frame["day"].dt.date).size().to_dict() if len(frame) else {}

        def partition_of(data, index) -> str:
            if index is None or index not in data.index:
                return f"{first}..{last}"
            return str(data.at[index, "day"].date())

        evaluation, problems = validate_contract(frame, contract, partition_of)
        verdicts = _per_day(first, last, lambda day: Verdict(
            day.isoformat(), day.isoformat() not in problems,
            _summarize(problems[day.isoformat()]) if day.isoformat() in problems else f"{rows.get(day, 0)} rows valid",
            {"failure_cases": len(problems.get(day.isoformat(), []))},
        ))
        whole = problems.get(f"{first}..{last}")
        if whole:  # schema-level failures (a missing column) concern the whole range
            verdicts.append(Verdict(f"{first}..{last}", False, _summarize(whole), {"failure_cases": len(whole)}))
        evaluation.verdicts = verdicts
        return evaluation

    return evaluate


def table_contract_evaluation(contract: pa.DataFrameSchema) -> Callable:
    def evaluate(conn) -> Evaluation:
        frame = conn.execute(f"SELECT * FROM {contract.name}").df()
        evaluation, problems = validate_contract(frame, contract, lambda data, index: TABLE)
        found = problems.get(TABLE, [])
        evaluation.verdicts = [Verdict(TABLE, not found, _summarize(found) if found else f"{len(frame)} rows valid",
                                       {"failure_cases": len(found)})]
        return evaluation

    return evaluate


# --- keys ------------------------------------------------------------------------------------------

def _key_text(columns: Sequence[str]) -> str:
    return " || ' ' || ".join(f"coalesce(CAST(\"{c}\" AS VARCHAR), 'NULL')" for c in columns)


def duplicate_key_evaluation(table: str, key: Sequence[str], with_source: bool) -> Callable:
    """Keys that occur more than once per partition, with where they come from."""
    source_rows = (", string_agg(regexp_extract(_source_uri, '[^/]*$') || ' row ' || _source_row, ', ' "
                   "ORDER BY _source_uri, _source_row) AS rows") if with_source else ", NULL AS rows"

    def evaluate(conn, first: dt.date, last: dt.date) -> Evaluation:
        found = conn.execute(
            f"""
            SELECT day, {_key_text([c for c in key if c != 'day'])} AS key, count(*) AS n {source_rows}
            FROM {table} WHERE day BETWEEN ? AND ? GROUP BY ALL HAVING count(*) > 1 ORDER BY day, key
            """,
            [first, last],
        ).fetchall()
        by_day: dict[dt.date, list] = {}
        for day, key_value, n, rows in found:
            by_day.setdefault(day, []).append(f"{key_value} x{n}" + (f" ({rows})" if rows else ""))

        def judge(day: dt.date) -> Verdict:
            keys = by_day.get(day, [])
            detail = (f"{len(keys)} key(s) occur more than once: " + "; ".join(keys[:5])) if keys else "every key unique"
            return Verdict(day.isoformat(), not keys, detail, {"duplicated_keys": len(keys)})

        return Evaluation(_per_day(first, last, judge), {"key": ", ".join(key)})

    return evaluate


def unique_table_key_evaluation(table: str, key: str) -> Callable:
    def evaluate(conn) -> Evaluation:
        found = conn.execute(
            f"SELECT \"{key}\", count(*) FROM {table} GROUP BY 1 HAVING count(*) > 1 ORDER BY 2 DESC, 1"
        ).fetchall()
        detail = (f"{len(found)} {key} value(s) occur more than once: "
                  + ", ".join(f"{k} x{n}" for k, n in found[:10])) if found else f"every {key} unique"
        return Evaluation([Verdict(TABLE, not found, detail, {"duplicated_keys": len(found)})], {"key": key})

    return evaluate


# --- row conservation ----------------------------------------------------------------------------

def conservation_evaluation(spec: CleaningSpec) -> Callable:
    """raw = cleaned + quarantined + duplicates removed, per partition, re-derived from raw."""

    def evaluate(conn, first: dt.date, last: dt.date) -> Evaluation:
        expected = {
            day: (raw, duplicates)
            for day, raw, duplicates in conn.execute(
                f"SELECT day, count(*), count(*) FILTER (WHERE duplicate_rank > 1) FROM ({staging_query(spec)}) GROUP BY day",
                staging_params(spec, first, last),
            ).fetchall()
        }
        stored = {}
        for name, contract in (("cleaned", spec.cleaned), ("quarantined", spec.quarantine)):
            if table_exists(conn, contract.name):
                for day, n in conn.execute(
                    f"SELECT day, count(*) FROM {contract.name} WHERE day BETWEEN ? AND ? GROUP BY day", [first, last]
                ).fetchall():
                    stored[(name, day)] = n

        def judge(day: dt.date) -> Verdict:
            raw, duplicates = expected.get(day, (0, 0))
            cleaned, quarantined = stored.get(("cleaned", day), 0), stored.get(("quarantined", day), 0)
            balance = raw - cleaned - quarantined - duplicates
            equation = f"raw {raw} = cleaned {cleaned} + quarantined {quarantined} + duplicates removed {duplicates}"
            if balance:
                equation = equation.replace(" = ", " ≠ ") + (
                    f": {abs(balance)} row(s) {'unaccounted for' if balance > 0 else 'too many'}; "
                    f"{spec.cleaned.name} is stale against {spec.raw.name} or lost rows"
                )
            return Verdict(day.isoformat(), balance == 0, equation,
                           {"raw": raw, "cleaned": cleaned, "quarantined": quarantined, "duplicates_removed": duplicates})

        return Evaluation(_per_day(first, last, judge))

    return evaluate


# --- references ----------------------------------------------------------------------------------

def reference_evaluation(column: str, reference: str, reference_column: str, max_share: float) -> Callable:
    """Codes in cleaned.flights.<column> missing from <reference>.<reference_column>."""

    def evaluate(conn, first: dt.date, last: dt.date) -> Evaluation:
        if not table_exists(conn, reference):
            # Not checkable is not bad data: pass, and say so (cleaned/flights depends on the reference tables,
            # so a backfill materializes them first; this is a check launched alone on a fresh warehouse).
            verdicts = _per_day(first, last, lambda day: Verdict(
                day.isoformat(), True, f"not checkable: {reference} is not materialized"))
            return Evaluation(verdicts, {"checkable": False}, summary=f"Not checkable: {reference} is not materialized.")
        rows = conn.execute(
            f"""
            SELECT f.day, count(*) AS flights,
                   count(*) FILTER (WHERE f."{column}" IS NOT NULL AND r.code IS NULL) AS unknown,
                   list(DISTINCT f."{column}" ORDER BY f."{column}") FILTER (WHERE f."{column}" IS NOT NULL AND r.code IS NULL)
            FROM cleaned.flights f
            LEFT JOIN (SELECT DISTINCT "{reference_column}" AS code FROM {reference}) r ON f."{column}" = r.code
            WHERE f.day BETWEEN ? AND ? GROUP BY f.day
            """,
            [first, last],
        ).fetchall()
        by_day = {day: (flights, unknown, codes or []) for day, flights, unknown, codes in rows}
        overall = conn.execute(
            f"""
            SELECT f."{column}", count(*) FROM cleaned.flights f
            WHERE f.day BETWEEN ? AND ? AND f."{column}" IS NOT NULL
              AND f."{column}" NOT IN (SELECT "{reference_column}" FROM {reference} WHERE "{reference_column}" IS NOT NULL)
            GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT {SAMPLE_ROWS}
            """,
            [first, last],
        ).fetchall()

        def judge(day: dt.date) -> Verdict:
            flights, unknown, codes = by_day.get(day, (0, 0, []))
            share = _share(unknown, flights)
            shown = ", ".join(codes[:8]) + (f" and {len(codes) - 8} more" if len(codes) > 8 else "")
            detail = (f"{unknown} of {flights} flights ({share:.1%}) have a {column} not in {reference}"
                      + (f": {shown}" if codes else "") + f"; limit {max_share:.0%}")
            return Verdict(day.isoformat(), share <= max_share, detail,
                           {"flights": flights, "unknown": unknown, "unknown_share": round(share, 4)})

        unknown_codes = MetadataValue.table(
            records=[TableRecord({"code": code, "flights": n}) for code, n in overall],
            schema=TableSchema(columns=[TableColumn("code", "string"), TableColumn("flights", "int")]),
        )
        return Evaluation(_per_day(first, last, judge), {"unknown_codes": unknown_codes, "max_share": max_share})

    return evaluate


# --- null rates ------------------------------------------------------------------------------------

def null_rate_evaluation(contract: pa.DataFrameSchema) -> Callable:
    limits = {name: col.metadata["max_null_rate"] for name, col in contract.columns.items()
              if "max_null_rate" in col.metadata}

    def evaluate(conn, first: dt.date, last: dt.date) -> Evaluation:
        counts = ", ".join(f'count("{name}")' for name in limits)
        found = {row[0]: row[1:] for row in conn.execute(
            f"SELECT day, count(*), {counts} FROM {contract.name} WHERE day BETWEEN ? AND ? GROUP BY day", [first, last]
        ).fetchall()}
        worst = {name: 0.0 for name in limits}

        def judge(day: dt.date) -> Verdict:
            if day not in found:
                return Verdict(day.isoformat(), True, "no rows (see the volume check)")
            total, *present = found[day]
            rates = {name: 1 - n / total for name, n in zip(limits, present)}
            for name, rate in rates.items():
                worst[name] = max(worst[name], rate)
            over = [f"{name} {rate:.1%} > {limits[name]:.0%}" for name, rate in rates.items() if rate > limits[name]]
            detail = ("NULL rate over the limit: " + ", ".join(over)) if over else "every NULL rate within its limit"
            return Verdict(day.isoformat(), not over, detail, {f"null_rate_{n}": round(r, 4) for n, r in rates.items()})

        verdicts = _per_day(first, last, judge)
        limits_table = MetadataValue.table(
            records=[TableRecord({"column": name, "limit": limits[name], "worst_partition_rate": round(worst[name], 4)})
                     for name in limits],
            schema=TableSchema(columns=[TableColumn("column", "string"), TableColumn("limit", "float"),
                                        TableColumn("worst_partition_rate", "float")]),
        )
        return Evaluation(verdicts, {"null_rate_limits": limits_table})

    return evaluate


# --- volume ----------------------------------------------------------------------------------------

def holidays_near(first: dt.date, last: dt.date) -> dict[dt.date, str]:
    """Days within HOLIDAY_WINDOW_DAYS of a US federal holiday, with the holiday's name."""
    from pandas.tseries.holiday import USFederalHolidayCalendar

    margin = dt.timedelta(days=HOLIDAY_WINDOW_DAYS)
    holidays = USFederalHolidayCalendar().holidays(first - margin, last + margin, return_name=True)
    near = {}
    for stamp, name in holidays.items():
        holiday = stamp.date()
        for offset in range(-HOLIDAY_WINDOW_DAYS, HOLIDAY_WINDOW_DAYS + 1):
            day = holiday + dt.timedelta(days=offset)
            label = name if offset == 0 else f"{'day before' if offset < 0 else 'day after'} {name}"
            near.setdefault(day, label)
    return near


def flight_volume_evaluation(conn, first: dt.date, last: dt.date) -> Evaluation:
    """Flights per day against a day-of-week baseline from the neighbouring stored weeks."""
    reach = dt.timedelta(weeks=BASELINE_WEEKS)
    counts = dict(conn.execute(
        "SELECT day, count(*) FROM raw.flights WHERE day BETWEEN ? AND ? GROUP BY day", [first - reach, last + reach]
    ).fetchall())
    near_holiday = holidays_near(first - reach, last + reach)

    def judge(day: dt.date) -> Verdict:
        flights = counts.get(day, 0)
        comparable = sorted(
            (other for other, n in counts.items()
             if n > 0 and other != day and other.weekday() == day.weekday() and other not in near_holiday
             and abs((other - day).days) <= reach.days),
            key=lambda other: (abs((other - day).days), other),
        )[:BASELINE_DAYS]
        weekday = day.strftime("%A")
        if len(comparable) < MIN_BASELINE_DAYS:
            return Verdict(day.isoformat(), True,
                           f"{flights} flights; no baseline yet (fewer than {MIN_BASELINE_DAYS} other {weekday}s stored "
                           f"within {BASELINE_WEEKS} weeks)", {"flights": flights})
        values = sorted(counts[other] for other in comparable)
        middle = len(values) // 2
        baseline = values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2
        holiday = near_holiday.get(day)
        low, high = HOLIDAY_BOUNDS if holiday else VOLUME_BOUNDS
        ratio = flights / baseline
        detail = (f"{flights} flights = {ratio:.0%} of the {weekday} baseline {baseline:g} "
                  f"(median of {', '.join(str(d) for d in sorted(comparable))}); allowed {low:.0%}..{high:.0%}"
                  + (f", relaxed: {holiday}" if holiday else ""))
        return Verdict(day.isoformat(), low <= ratio <= high, detail,
                       {"flights": flights, "baseline": baseline, "ratio": round(ratio, 3)})

    return Evaluation(_per_day(first, last, judge))


def weather_volume_evaluation(conn, first: dt.date, last: dt.date) -> Evaluation:
    """Observations per day against 3 stations x the hours of the local day."""
    from zoneinfo import ZoneInfo

    local = ZoneInfo("America/New_York")
    counts = dict(conn.execute(
        "SELECT day, count(*) FROM raw.weather WHERE day BETWEEN ? AND ? GROUP BY day", [first, last]
    ).fetchall())

    def judge(day: dt.date) -> Verdict:
        start = dt.datetime.combine(day, dt.time(), local)
        end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), local)
        hours = round((end - start).total_seconds() / 3600)
        expected = WEATHER_STATIONS * hours
        observations = counts.get(day, 0)
        coverage = observations / expected
        low, high = WEATHER_COVERAGE_BOUNDS
        detail = (f"{observations} of {expected} station-hours ({coverage:.0%}; {WEATHER_STATIONS} stations x "
                  f"{hours} local hours); allowed {low:.0%}..{high:.0%}")
        return Verdict(day.isoformat(), low <= coverage <= high, detail,
                       {"observations": observations, "expected": expected, "coverage": round(coverage, 3)})

    return Evaluation(_per_day(first, last, judge))


# --- quarantine and nulled values --------------------------------------------------------------

REASON_VALUE = re.compile(r"^(\w+): .*? (is not a valid \w+|not .*)$")


def reason_kind(part: str) -> str:
    """A reason without the offending value: 'dep_delay: abc is not a valid DOUBLE' -> '... is not a valid DOUBLE'."""
    if part.startswith("row date "):
        return "row date does not match partition"
    if part.startswith("year, month, day "):
        return "year, month, day is not a date"
    match = REASON_VALUE.match(part)
    return f"{match.group(1)}: {match.group(2)}" if match else part


def quarantine_evaluation(spec: CleaningSpec) -> Callable:
    table = spec.quarantine.name

    def evaluate(conn, first: dt.date, last: dt.date) -> Evaluation:
        rows = conn.execute(
            f"""
            SELECT day, _source_uri, _source_row, reason FROM {table}
            WHERE day BETWEEN ? AND ? ORDER BY day, _source_uri, _source_row
            """,
            [first, last],
        ).fetchall() if table_exists(conn, table) else []
        kinds: dict[dt.date, dict[str, int]] = {}
        sample = []
        for day, uri, row, reason in rows:
            for part in reason.split("; "):
                day_kinds = kinds.setdefault(day, {})
                day_kinds[reason_kind(part)] = day_kinds.get(reason_kind(part), 0) + 1
            if len(sample) < SAMPLE_ROWS:
                sample.append(TableRecord({"partition": day.isoformat(), "file": uri, "row": int(row), "reason": reason}))
        counted = {day: sum(1 for r in rows if r[0] == day) for day in kinds}

        def judge(day: dt.date) -> Verdict:
            day_kinds = kinds.get(day)
            if not day_kinds:
                return Verdict(day.isoformat(), True, "no rows quarantined", {"quarantined": 0})
            reasons = ", ".join(f"{n} x {kind}" for kind, n in sorted(day_kinds.items(), key=lambda kv: -kv[1]))
            return Verdict(day.isoformat(), False, f"{counted[day]} row(s) quarantined: {reasons}",
                           {"quarantined": counted[day]})

        sample_table = MetadataValue.table(
            records=sample,
            schema=TableSchema(columns=[TableColumn("partition", "string"), TableColumn("file", "string"),
                                        TableColumn("row", "int"), TableColumn("reason", "string")]),
        )
        query = f"SELECT * FROM {table} WHERE day BETWEEN DATE '{first}' AND DATE '{last}' ORDER BY day, _source_row"
        return Evaluation(_per_day(first, last, judge),
                          {"quarantined_rows": len(rows), "quarantine_sample": sample_table,
                           "find_them": MetadataValue.md(f"```sql\n{query}\n```")})

    return evaluate


def nulled_values_evaluation(spec: CleaningSpec) -> Callable:
    table = spec.cleaned.name
    series = spec.cleaned.metadata["series"]

    def evaluate(conn, first: dt.date, last: dt.date) -> Evaluation:
        rows = conn.execute(
            f"""
            SELECT day, "{series['group']}", "{series['time']}", {NULLED_VALUES} FROM {table}
            WHERE day BETWEEN ? AND ? AND {NULLED_VALUES} IS NOT NULL ORDER BY day, 2, 3
            """,
            [first, last],
        ).fetchall()
        by_day: dict[dt.date, list[str]] = {}
        for day, group, time, nulled in rows:
            by_day.setdefault(day, []).append(f"{group} {time:%Y-%m-%d %H:%MZ}: {nulled}")

        def judge(day: dt.date) -> Verdict:
            found = by_day.get(day, [])
            detail = (f"{len(found)} row(s) with values set to NULL: " + "; ".join(found[:5])) if found \
                else "no implausible values"
            return Verdict(day.isoformat(), not found, detail, {"rows_with_nulled_values": len(found)})

        return Evaluation(_per_day(first, last, judge))

    return evaluate


# --- landing files -------------------------------------------------------------------------------

def landing_files_evaluation(table: str) -> Callable:
    def evaluate(source: SourceResource) -> Evaluation:
        if not source.landing_dir:
            where = "bundled source (no landing directory)"
            return Evaluation([Verdict(where, True, "nothing to check")], {"landing_folder": where}, unit="source(s)")
        where = str(Path(source.landing_dir) / table)
        problems = source.unexpected_landing_files(table)
        verdicts = [Verdict(path, False, why) for path, why in (problem.split(": ", 1) for problem in problems)]
        verdicts = verdicts or [Verdict(where, True, "every file is a readable daily partition")]
        return Evaluation(verdicts, {"landing_folder": where, "unreadable_files": len(problems)},
                          summary=f"{len(problems)} file(s) in {where} will never be ingested." if problems else "",
                          unit="file(s)")

    return evaluate


# --- the checks --------------------------------------------------------------------------------------

RAW_KEYS = {"flights": ["carrier", "flight", "origin", "day"], "weather": ["origin", "time_hour"]}


def raw_daily_rules(table: str) -> list[Rule]:
    key = RAW_KEYS[table]
    rules = [
        Rule(
            "matches_raw_contract",
            f"Asserts that raw.{table} matches its pandera contract (required values present, text parses as the "
            "declared number/timestamp, codes look like codes), validated lazily: counts per failed check and "
            "column, and a sample of failing rows with their file and row. WARN: raw keeps what the source sent; "
            "the cleaned layer quarantines what cannot be typed.",
            WARN, daily_contract_evaluation(contracts.CONTRACTS[f"raw.{table}"]),
        ),
        Rule(
            f"no_duplicate_{'flights' if table == 'flights' else 'observations'}",
            f"Asserts that no ({', '.join(key)}) occurs twice in raw.{table}; duplicates are named with the file "
            "and rows they came from. WARN: cleaning keeps the first and counts the rest as removed duplicates.",
            WARN, duplicate_key_evaluation(f"raw.{table}", key, with_source=True),
        ),
        Rule(
            "landing_files_all_ingestible",
            f"Asserts that every file in the landing folder `{table}/` is one a partition will read: named "
            "YYYY-MM-DD.csv|.parquet with a date inside the partition range, and not a link leaving the landing "
            "directory. Any other file would be silently ignored, so each is named with the reason. WARN: the "
            "partitions that were read are fine; the stray file needs a person (rename, move or delete it). "
            "Passes trivially for the bundled source.",
            WARN, landing_files_evaluation(table), kind="landing",
        ),
    ]
    if table == "flights":
        rules.append(Rule(
            "volume_within_day_of_week_baseline",
            f"Asserts that each day has {VOLUME_BOUNDS[0]:.0%}..{VOLUME_BOUNDS[1]:.0%} of the flights of its "
            f"day-of-week baseline: the median of up to {BASELINE_DAYS} nearest same-weekday days (within "
            f"{BASELINE_WEEKS} weeks, stored, not near a holiday). Saturdays are about 20 % lighter, so a fixed "
            "number would not do. Holidays: days within one day of a US federal holiday (pandas "
            f"USFederalHolidayCalendar) are held to {HOLIDAY_BOUNDS[0]:.0%}..{HOLIDAY_BOUNDS[1]:.0%} and never "
            "used as a baseline (Thanksgiving 2013 had 634 flights, 65 % of its baseline; the day after, 68 %). "
            "Too little history passes with 'no baseline yet'. WARN: a light day can be real (a storm); a "
            "person decides.",
            WARN, flight_volume_evaluation,
        ))
    else:
        rules.append(Rule(
            "station_hours_complete",
            f"Asserts that each day has {WEATHER_COVERAGE_BOUNDS[0]:.0%}..{WEATHER_COVERAGE_BOUNDS[1]:.0%} of its "
            f"station-hours ({WEATHER_STATIONS} stations x 23, 24 or 25 local hours). The 2013 data has 79..100 % "
            "on every day but 2013-12-31, which has none. WARN: flights keep their other features when an hour "
            "of weather is missing.",
            WARN, weather_volume_evaluation,
        ))
    return rules


def raw_reference_rules(table: str) -> list[Rule]:
    contract = contracts.CONTRACTS[f"raw.{table}"]
    key = contract.unique[0]
    return [
        Rule(
            "matches_raw_contract",
            f"Asserts that raw.{table} matches its pandera contract, validated lazily (counts per failed check and "
            "column, a sample of failing rows). WARN: a reference table is used as sent.",
            WARN, table_contract_evaluation(contract), kind="table",
        ),
        Rule(
            f"{key}_unique",
            f"Asserts that every {key} occurs once in raw.{table}. ERROR and blocking: a duplicated key would "
            "multiply the rows of every join against this table.",
            ERROR, unique_table_key_evaluation(f"raw.{table}", key), blocking=True, kind="table",
        ),
    ]


def cleaned_rules(spec: CleaningSpec) -> list[Rule]:
    table = spec.cleaned.name
    rules = [
        Rule(
            "matches_cleaned_contract",
            f"Asserts that {table} matches its pandera contract: types, nullability, ranges, allowed values, the "
            "unique key and the plausibility rules, validated lazily (counts per failed check and column, a "
            "sample of failing rows). ERROR and blocking: features must not be built on rows that break it.",
            ERROR, daily_contract_evaluation(spec.cleaned), blocking=True,
        ),
        Rule(
            "key_unique",
            f"Asserts that ({', '.join(spec.key)}) is unique in {table}, per partition. ERROR and blocking: a "
            "duplicated key would double-count flights in features and labels.",
            ERROR, duplicate_key_evaluation(table, spec.key, with_source=False), blocking=True,
        ),
        Rule(
            "rows_conserved",
            f"Asserts per partition that every raw row is accounted for: rows of {spec.raw.name} = rows of {table} "
            f"+ rows of {spec.quarantine.name} + duplicates removed (re-derived from raw). ERROR and blocking: a "
            "mismatch means rows were lost or the table is stale against raw.",
            ERROR, conservation_evaluation(spec), blocking=True,
        ),
        Rule(
            "quarantine_matches_contract",
            f"Asserts that {spec.quarantine.name} matches its contract: every quarantined row keeps its source "
            "file and row, a non-empty reason and the run that rejected it. ERROR, not blocking: quarantine feeds "
            "nothing, but a row without a reason cannot be fixed.",
            ERROR, daily_contract_evaluation(spec.quarantine), table=spec.quarantine.name,
        ),
        Rule(
            "no_rows_quarantined",
            f"Asserts that no row of {spec.raw.name} was quarantined; lists the reasons per partition and sample "
            "rows with their file and row. WARN: the clean rows are complete and usable; the rejected ones wait "
            f"in {spec.quarantine.name} for a fix at the source.",
            WARN, quarantine_evaluation(spec),
        ),
        Rule(
            "null_rates_within_contract",
            "Asserts that each column's share of NULLs per partition stays within the contract's max_null_rate "
            "(limits set from the worst 2013 day with a margin: cancellations on 2013-02-08 left 57.5 % of "
            "departures empty). WARN: more NULLs than ever seen usually means the source dropped a field.",
            WARN, null_rate_evaluation(spec.cleaned),
        ),
    ]
    if NULLED_VALUES in spec.cleaned.columns:
        rules.append(Rule(
            "no_implausible_values_nulled",
            f"Asserts that no value of {table} had to be set to NULL by the contract's plausibility rules "
            "(physical limits; isolated jumps away from both neighbouring hours). Lists every nulled value. "
            "WARN: the rest of the row is kept and usable; 2013 has two: wind 1048 mph at EWR on 2013-02-12 and "
            "13.1 °F at JFK on 2013-05-09 02:00Z.",
            WARN, nulled_values_evaluation(spec),
        ))
    if spec.table == "flights":
        rules += [
            Rule(
                "carriers_known_in_airlines",
                "Asserts that every carrier of cleaned.flights is in raw.airlines (measured: all 16 carriers of 2013 "
                "are). ERROR, not blocking: an unknown carrier means the reference is out of date or a code is "
                "corrupt and someone must act, but the flights themselves are valid rows and features only use "
                "the code.",
                ERROR, reference_evaluation("carrier", "raw.airlines", "carrier", 0.0), reads=("raw/airlines",),
            ),
            Rule(
                "dests_known_in_airports",
                f"Asserts that at most {MAX_UNKNOWN_DEST_SHARE:.0%} of a day's flights go to a destination missing "
                "from raw.airports. Measured: 7,602 flights of 2013 (2.3 %; 1.4..3.9 % a day) go to BQN, SJU, STT "
                "and PSE, real Puerto Rico and Virgin Islands airports the airports table lacks. WARN, with a "
                "share limit: those flights are real and must not be dropped; a jump past the limit means the "
                "reference table lost rows.",
                WARN, reference_evaluation("dest", "raw.airports", "faa", MAX_UNKNOWN_DEST_SHARE), reads=("raw/airports",),
            ),
            Rule(
                "tailnums_known_in_planes",
                f"Asserts that at most {MAX_UNKNOWN_TAILNUM_SHARE:.0%} of a day's flights have a tailnum missing "
                "from raw.planes. Measured: 721 tailnums, 50,094 flights of 2013 (15 %; 10.4..17.7 % a day) are "
                "not in the FAA registry snapshot (96 % of them American and Envoy fleet numbers). WARN, with a "
                "share limit: plane features are simply missing for them; a jump past the limit means the "
                "registry table lost rows.",
                WARN, reference_evaluation("tailnum", "raw.planes", "tailnum", MAX_UNKNOWN_TAILNUM_SHARE), reads=("raw/planes",),
            ),
        ]
    return rules


QUALITY_RULES: dict[str, list[Rule]] = {
    **{f"raw/{table}": raw_daily_rules(table) for table in ("flights", "weather")},
    **{f"raw/{table}": raw_reference_rules(table) for table in ("airports", "airlines", "planes")},
    **{f"cleaned/{spec.table}": cleaned_rules(spec) for spec in CLEANING_SPECS.values()},
}

quality_checks: list[AssetChecksDefinition] = [quality_checks_for(asset, rules) for asset, rules in QUALITY_RULES.items()]
