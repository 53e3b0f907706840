"""Quality checks for every dataset, generated from its contract; and the library the ML tables share.

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
A reference (unpartitioned) table has one verdict, for the partition "table".

Severity
--------
WARN where the data is still usable as it stands (raw is what the source sent; unknown reference
codes within the contract's share; volume and null rates that a real event can explain). ERROR and
blocking where bad data must not flow on: the cleaned contract, cleaned keys and row conservation.
A check whose inputs do not exist yet says so and passes: it cannot judge, so it reports no bad data.
"""


import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetChecksDefinition,
    AssetCheckSpec,
    AssetKey,
    MetadataValue,
    TableColumn,
    TableRecord,
    TableSchema,
    multi_asset_check,
)
from dagster_duckdb import DuckDBResource

from data_platform.cleaning import staging_params, staging_query
from data_platform.contracts import NULLED_VALUES, TableContract, to_pandera
from data_platform.datasets.model import Dataset, Reference
from data_platform.ingest import SourceResource
from data_platform.partitions import days_between
from data_platform.storage import table_exists

WARN, ERROR = AssetCheckSeverity.WARN, AssetCheckSeverity.ERROR
TABLE = "table"          # the "partition" of an unpartitioned table's single verdict
SAMPLE_ROWS = 20         # failure cases shown per check
SHOWN_IN_DESCRIPTION = 8  # failed partitions named in a result's description

# Volume: a day's rows against the median of up to 4 nearest same-weekday days (±8 weeks) that are
# not near a holiday. Measured on the 2013 flights with these rules: ordinary days 0.852 (Saturday
# 2013-12-14) .. 1.219 (Saturday 2013-11-30) of their baseline; days within a day of a US federal
# holiday down to 0.648 (Thanksgiving, 634 flights), 0.676 (the day after), 0.738 (4 July).
HOLIDAY_WINDOW_DAYS = 1
BASELINE_DAYS, BASELINE_WEEKS, MIN_BASELINE_DAYS = 4, 8, 2


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


Days = Optional[tuple[dt.date, dt.date]]  # None: an unpartitioned table


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
    """Nothing to judge yet: the check passes and says why, rather than reporting bad data."""
    return AssetCheckResult(asset_key=key, check_name=rule.name, passed=True, severity=rule.severity,
                            description=f"not checked: {why}",
                            metadata={"checked_partitions": "none", "failed_partitions": 0, "not_checked": why})


@dataclass(frozen=True)
class Rule:
    """One asset check: its name (what it asserts), its description (how, and why this severity)."""

    name: str
    description: str
    severity: AssetCheckSeverity
    evaluate: Callable
    blocking: bool = False
    kind: str = "data"           # "data": evaluate(conn, days); "landing": evaluate(source)
    table: Optional[str] = None  # the table it reads, when not the asset's own
    partitioned: bool = True     # the table has daily partitions (else one verdict for the table)
    reads: tuple[str, ...] = ()  # other assets it reads: a run materializes them before the check


def evaluate_rule(rule: Rule, context: AssetCheckExecutionContext, conn, source: SourceResource, key: AssetKey) -> AssetCheckResult:
    table = rule.table or ".".join(key.path)
    if rule.kind == "landing":
        evaluation = rule.evaluate(source)
        checked = evaluation.metadata["landing_folder"]
    elif not table_exists(conn, table):
        return _not_checkable(rule, key, f"{table} does not exist yet")
    elif not rule.partitioned:
        evaluation, checked = rule.evaluate(conn, None), table
    else:
        days = checked_days(context, conn, table)
        if days is None:
            return _not_checkable(rule, key, f"{table} has no stored partitions")
        evaluation = rule.evaluate(conn, days)
        checked = f"{days[0]}..{days[1]} ({(days[1] - days[0]).days + 1} partition(s))"
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

    @multi_asset_check(specs=specs, name=op_name or f"{'__'.join(key.path)}__quality_checks", can_subset=True, 
                       description=f"Quality checks of {asset}, evaluated together over the run's partition range.")
    def _quality(context: AssetCheckExecutionContext, warehouse: DuckDBResource, source: SourceResource):
        selected = {check.name for check in context.selected_asset_check_keys}
        with warehouse.get_connection() as conn:
            for rule in rules:
                if rule.name in selected:
                    yield evaluate_rule(rule, context, conn, source, key)

    return _quality


def _per_partition(days: Days, judge: Callable[[Optional[dt.date]], Verdict]) -> list[Verdict]:
    return [judge(None)] if days is None else [judge(day) for day in days_between(*days)]


def _label(day: Optional[dt.date]) -> str:
    return TABLE if day is None else day.isoformat()


def _scope(days: Days, alias: str = "") -> tuple[str, list]:
    """WHERE clause and parameters restricting a table to the days (nothing when unpartitioned)."""
    if days is None:
        return "", []
    return f"WHERE {alias}day BETWEEN ? AND ?", list(days)


def _day(days: Days, alias: str = "") -> str:
    return "NULL" if days is None else f"{alias}day"


def _share(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


# --- contract: pandera, compiled when the check runs -------------------------------------------

def _row_label(frame, index, contract: TableContract) -> str:
    """Where a failing row is: its source file and row for raw data, its key for cleaned data."""
    if index is None or index not in frame.index:
        return "(whole table)"
    row = frame.loc[index]
    if "_source_uri" in frame.columns:
        return f"{str(row['_source_uri']).rsplit('/', 1)[-1]} row {row['_source_row']} ({row['_source_uri']})"
    return " ".join(str(row[name]) for name in contract.unique if name != "day") or f"row {index}"


def validate_contract(frame, contract: TableContract, partition_of: Callable) -> tuple[Evaluation, dict]:
    """Validate lazily: metadata with counts per failed check and column and a sample of failure
    cases, and the problems found per partition."""
    import pandera.pandas as pa

    try:
        to_pandera(contract).validate(frame, lazy=True)
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


def contract_evaluation(contract: TableContract) -> Callable:
    def evaluate(conn, days: Days) -> Evaluation:
        where, params = _scope(days)
        frame = conn.execute(f"SELECT * FROM {contract.name} {where}", params).df()
        whole = f"{days[0]}..{days[1]}" if days else TABLE
        if days is None:
            rows = {None: len(frame)}
        else:
            rows = frame.groupby(frame["day"].dt.date).size().to_dict() if len(frame) else {}

        def partition_of(data, index) -> str:
            if days is None or index is None or index not in data.index:
                return whole
            return str(data.at[index, "day"].date())

        evaluation, problems = validate_contract(frame, contract, partition_of)
        verdicts = _per_partition(days, lambda day: Verdict(
            _label(day), _label(day) not in problems,
            _summarize(problems[_label(day)]) if _label(day) in problems else f"{rows.get(day, 0)} rows valid",
            {"failure_cases": len(problems.get(_label(day), []))},
        ))
        if days is not None and problems.get(whole):  # schema-level failures (a missing column) concern the range
            verdicts.append(Verdict(whole, False, _summarize(problems[whole]), {"failure_cases": len(problems[whole])}))
        evaluation.verdicts = verdicts
        return evaluation

    return evaluate


# --- keys ------------------------------------------------------------------------------------------

def _key_text(columns: Sequence[str]) -> str:
    return " || ' ' || ".join(f"coalesce(CAST(\"{c}\" AS VARCHAR), 'NULL')" for c in columns)


def duplicate_key_evaluation(table: str, key: Sequence[str], with_source: bool) -> Callable:
    """Keys that occur more than once per partition, with where they come from."""
    source_rows = (", string_agg(regexp_extract(_source_uri, '[^/]*$') || ' row ' || _source_row, ', ' "
                   "ORDER BY _source_uri, _source_row) AS rows") if with_source else ", NULL AS rows"

    def evaluate(conn, days: Days) -> Evaluation:
        where, params = _scope(days)
        found = conn.execute(
            f"""
            SELECT {_day(days)}, {_key_text([c for c in key if c != 'day'])} AS key, count(*) AS n {source_rows}
            FROM {table} {where} GROUP BY ALL HAVING count(*) > 1 ORDER BY ALL
            """,
            params,
        ).fetchall()
        by_day: dict = {}
        for day, key_value, n, rows in found:
            by_day.setdefault(day, []).append(f"{key_value} x{n}" + (f" ({rows})" if rows else ""))

        def judge(day) -> Verdict:
            keys = by_day.get(day, [])
            detail = (f"{len(keys)} key(s) occur more than once: " + "; ".join(keys[:5])) if keys else "every key unique"
            return Verdict(_label(day), not keys, detail, {"duplicated_keys": len(keys)})

        return Evaluation(_per_partition(days, judge), {"key": ", ".join(key)})

    return evaluate


# --- row conservation ----------------------------------------------------------------------------

def conservation_evaluation(dataset: Dataset) -> Callable:
    """raw = cleaned + quarantined + duplicates removed, per partition, re-derived from raw."""

    def evaluate(conn, days: Days) -> Evaluation:
        first, last = days or (None, None)
        expected = {
            day: (raw, duplicates)
            for day, raw, duplicates in conn.execute(
                f"SELECT {_day(days)}, count(*), count(*) FILTER (WHERE duplicate_rank > 1) "
                f"FROM ({staging_query(dataset)}) GROUP BY ALL",
                staging_params(dataset, first, last),
            ).fetchall()
        }
        stored = {}
        where, params = _scope(days)
        for name, contract in (("cleaned", dataset.cleaned), ("quarantined", dataset.quarantine)):
            if table_exists(conn, contract.name):
                for day, n in conn.execute(
                    f"SELECT {_day(days)}, count(*) FROM {contract.name} {where} GROUP BY ALL", params
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
            return Verdict(_label(day), balance == 0, equation,
                           {"raw": raw, "cleaned": cleaned, "quarantined": quarantined, "duplicates_removed": duplicates})

        return Evaluation(_per_partition(days, judge))

    return evaluate


# --- references ----------------------------------------------------------------------------------

def reference_evaluation(table: str, reference: Reference) -> Callable:
    """Values of <table>.<column> missing from the referenced dataset's cleaned table."""
    column, target = reference.column, f"cleaned.{reference.dataset}"
    max_share = reference.max_unknown_share

    def evaluate(conn, days: Days) -> Evaluation:
        if not table_exists(conn, target):
            verdicts = _per_partition(days, lambda day: Verdict(
                _label(day), True, f"not checked: {target} is not materialized yet"))
            return Evaluation(verdicts, {"not_checked": f"{target} does not exist yet"},
                              summary=f"Not checked: {target} is not materialized yet.")
        where, params = _scope(days, "f.")
        rows = conn.execute(
            f"""
            SELECT {_day(days, "f.")}, count(*) AS total,
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
            share = _share(unknown, total)
            shown = ", ".join(map(str, codes[:8])) + (f" and {len(codes) - 8} more" if len(codes) > 8 else "")
            detail = (f"{unknown} of {total} rows ({share:.1%}) have a {column} not in {target}"
                      + (f": {shown}" if codes else "") + f"; limit {max_share:.0%}")
            return Verdict(_label(day), share <= max_share, detail,
                           {"rows": total, "unknown": unknown, "unknown_share": round(share, 4)})

        unknown_codes = MetadataValue.table(
            records=[TableRecord({"code": str(code), "rows": n}) for code, n in overall],
            schema=TableSchema(columns=[TableColumn("code", "string"), TableColumn("rows", "int")]),
        )
        return Evaluation(_per_partition(days, judge), {"unknown_codes": unknown_codes, "max_share": max_share})

    return evaluate


# --- null rates ------------------------------------------------------------------------------------

def null_rate_evaluation(contract: TableContract) -> Callable:
    limits = {name: col.max_null_rate for name, col in contract.columns.items() if col.max_null_rate is not None}

    def evaluate(conn, days: Days) -> Evaluation:
        counts = ", ".join(f'count("{name}")' for name in limits)
        where, params = _scope(days)
        found = {row[0]: row[1:] for row in conn.execute(
            f"SELECT {_day(days)}, count(*), {counts} FROM {contract.name} {where} GROUP BY ALL", params
        ).fetchall()}
        worst = {name: 0.0 for name in limits}

        def judge(day) -> Verdict:
            if day not in found:
                return Verdict(_label(day), True, "no rows (see the volume check)")
            total, *present = found[day]
            rates = {name: 1 - n / total for name, n in zip(limits, present)}
            for name, rate in rates.items():
                worst[name] = max(worst[name], rate)
            over = [f"{name} {rate:.1%} > {limits[name]:.0%}" for name, rate in rates.items() if rate > limits[name]]
            detail = ("NULL rate over the limit: " + ", ".join(over)) if over else "every NULL rate within its limit"
            return Verdict(_label(day), not over, detail, {f"null_rate_{n}": round(r, 4) for n, r in rates.items()})

        verdicts = _per_partition(days, judge)
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


def volume_evaluation(dataset: Dataset) -> Callable:
    """Rows per day against a day-of-week baseline from the neighbouring stored weeks."""
    volume = dataset.volume

    def evaluate(conn, days: Days) -> Evaluation:
        first, last = days
        reach = dt.timedelta(weeks=BASELINE_WEEKS)
        counts = dict(conn.execute(
            f"SELECT day, count(*) FROM {dataset.raw.name} WHERE day BETWEEN ? AND ? GROUP BY day",
            [first - reach, last + reach],
        ).fetchall())
        near_holiday = holidays_near(first - reach, last + reach) if volume.holiday_calendar == "US" else {}

        def judge(day: dt.date) -> Verdict:
            rows = counts.get(day, 0)
            comparable = sorted(
                (other for other, n in counts.items()
                 if n > 0 and other != day and other.weekday() == day.weekday() and other not in near_holiday
                 and abs((other - day).days) <= reach.days),
                key=lambda other: (abs((other - day).days), other),
            )[:BASELINE_DAYS]
            weekday = day.strftime("%A")
            if volume.min_rows is not None and rows < volume.min_rows:
                return Verdict(day.isoformat(), False, f"{rows} rows, fewer than the contract's minimum of "
                               f"{volume.min_rows} a day", {"rows": rows})
            if len(comparable) < MIN_BASELINE_DAYS:
                return Verdict(day.isoformat(), True,
                               f"{rows} rows; no baseline yet (fewer than {MIN_BASELINE_DAYS} other {weekday}s stored "
                               f"within {BASELINE_WEEKS} weeks)", {"rows": rows})
            values = sorted(counts[other] for other in comparable)
            middle = len(values) // 2
            baseline = values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2
            holiday = near_holiday.get(day)
            low, high = volume.holiday_bounds if holiday else volume.bounds
            ratio = rows / baseline
            detail = (f"{rows} rows = {ratio:.0%} of the {weekday} baseline {baseline:g} "
                      f"(median of {', '.join(str(d) for d in sorted(comparable))}); allowed {low:.0%}..{high:.0%}"
                      + (f", relaxed: {holiday}" if holiday else ""))
            return Verdict(day.isoformat(), low <= ratio <= high, detail,
                           {"rows": rows, "baseline": baseline, "ratio": round(ratio, 3)})

        return Evaluation(_per_partition(days, judge))

    return evaluate


# --- quarantine and nulled values --------------------------------------------------------------

REASON_VALUE = re.compile(r"^(\w+): .*? (is not a valid \w+|not .*)( \(.*\))?$")


def reason_kind(part: str) -> str:
    """A reason without the offending value: 'dep_delay: abc is not a decimal number ...' -> 'dep_delay: is not ...'."""
    if part.startswith("row date "):
        return "row date does not match partition"
    if part.startswith("conflicting rows for key"):
        return "conflicting rows for one key"
    match = REASON_VALUE.match(part)
    return f"{match.group(1)}: {match.group(2)}" if match else part


def quarantine_evaluation(dataset: Dataset) -> Callable:
    table = dataset.quarantine.name

    def evaluate(conn, days: Days) -> Evaluation:
        where, params = _scope(days)
        rows = conn.execute(
            f"SELECT {_day(days)}, _source_uri, _source_row, reason FROM {table} {where} ORDER BY ALL", params
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
                sample.append(TableRecord({"partition": _label(day), "file": uri, "row": int(row), "reason": reason}))

        def judge(day) -> Verdict:
            day_kinds = kinds.get(day)
            if not day_kinds:
                return Verdict(_label(day), True, "no rows quarantined", {"quarantined": 0})
            reasons = ", ".join(f"{n} x {kind}" for kind, n in sorted(day_kinds.items(), key=lambda kv: -kv[1]))
            return Verdict(_label(day), False, f"{counted[day]} row(s) quarantined: {reasons}",
                           {"quarantined": counted[day]})

        sample_table = MetadataValue.table(
            records=sample,
            schema=TableSchema(columns=[TableColumn("partition", "string"), TableColumn("file", "string"),
                                        TableColumn("row", "int"), TableColumn("reason", "string")]),
        )
        scope = f" WHERE day BETWEEN DATE '{days[0]}' AND DATE '{days[1]}' ORDER BY day, _source_row" if days else ""
        return Evaluation(_per_partition(days, judge),
                          {"quarantined_rows": len(rows), "quarantine_sample": sample_table,
                           "find_them": MetadataValue.md(f"```sql\nSELECT * FROM {table}{scope}\n```")})

    return evaluate


def nulled_values_evaluation(dataset: Dataset) -> Callable:
    table = dataset.cleaned.name
    label = [f'"{name}"' for name in dataset.key if name != "day"]

    def evaluate(conn, days: Days) -> Evaluation:
        where, params = _scope(days)
        rows = conn.execute(
            f"""
            SELECT {_day(days)}, {" || ' ' || ".join(f"CAST({c} AS VARCHAR)" for c in label) or "''"},
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
            return Verdict(_label(day), not found, detail, {"rows_with_nulled_values": len(found)})

        return Evaluation(_per_partition(days, judge))

    return evaluate


# --- landing files -------------------------------------------------------------------------------

def landing_files_evaluation(dataset: Dataset) -> Callable:
    def evaluate(source: SourceResource) -> Evaluation:
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


# --- a dataset's checks, from its contract --------------------------------------------------------

def raw_rules(dataset: Dataset) -> list[Rule]:
    raw = dataset.raw
    key = ", ".join(dataset.key)
    rules = [
        Rule(
            "matches_raw_contract",
            f"Asserts that {raw.name} matches its contract as text: required values present, text written the way "
            "its column's type needs (whole numbers without fraction or exponent, ISO timestamps, codes that look like "
            "codes), validated lazily: counts per failed check and column, and a sample of failing rows with their "
            "file and row. WARN: raw keeps what the source sent; the cleaned layer quarantines what cannot be typed.",
            WARN, contract_evaluation(raw), partitioned=dataset.partitioned,
        ),
        Rule(
            "no_duplicate_keys",
            f"Asserts that no key ({key}) occurs twice in {raw.name}; duplicates are named with the file and rows they "
            "came from. WARN: cleaning keeps one of identical rows and quarantines rows that share a key but differ.",
            WARN, duplicate_key_evaluation(raw.name, _raw_key(dataset), with_source=True),
            partitioned=dataset.partitioned,
        ),
    ]
    if dataset.partitioned:
        rules.append(Rule(
            "landing_files_all_ingestible",
            f"Asserts that every file in the landing folder of {dataset.name} is one a partition will read: named "
            "YYYY-MM-DD.csv|.parquet with a date inside the partition range, and not a link leaving the landing "
            "directory. Any other file would be silently ignored, so each is named with the reason. WARN: the "
            "partitions that were read are fine; the stray file needs a person (rename, move or delete it). "
            "Passes trivially for a single-file source.",
            WARN, landing_files_evaluation(dataset), kind="landing",
        ))
    if dataset.volume is not None:
        volume = dataset.volume
        holidays = (f" Days within one day of a US federal holiday (pandas USFederalHolidayCalendar) are held to "
                    f"{volume.holiday_bounds[0]:.0%}..{volume.holiday_bounds[1]:.0%} and never used as a baseline."
                    if volume.holiday_calendar else "")
        rules.append(Rule(
            "volume_within_day_of_week_baseline",
            f"Asserts that each day has {volume.bounds[0]:.0%}..{volume.bounds[1]:.0%} of the rows of its "
            f"day-of-week baseline: the median of up to {BASELINE_DAYS} nearest same-weekday days (within "
            f"{BASELINE_WEEKS} weeks, stored, not near a holiday); weekends differ from weekdays, so a fixed number "
            f"would not do.{holidays}"
            + (f" Fewer than {volume.min_rows} rows fails even without history." if volume.min_rows is not None else "")
            + " Too little history otherwise passes with 'no baseline yet'. WARN: a light day can be real "
            "(a storm); a person decides.",
            WARN, volume_evaluation(dataset),
        ))
    return rules


def _raw_key(dataset: Dataset) -> list[str]:
    """The key in raw columns: a derived key column is replaced by the source columns it comes from."""
    columns = []
    for name in dataset.key:
        prop = None if name == "day" else dataset.prop(name)
        for column in (prop.transform_sources if prop is not None and prop.derived else (name,)):
            if column not in columns:
                columns.append(column)
    return columns


def cleaned_rules(dataset: Dataset) -> list[Rule]:
    table, partitioned = dataset.cleaned.name, dataset.partitioned
    rules = [
        Rule(
            "matches_cleaned_contract",
            f"Asserts that {table} matches its contract: types, nullability, ranges, allowed values, the unique key "
            "and the plausibility rules, validated lazily (counts per failed check and column, a sample of failing "
            "rows). ERROR and blocking: nothing downstream may be built on rows that break it.",
            ERROR, contract_evaluation(dataset.cleaned), blocking=True, partitioned=partitioned,
        ),
        Rule(
            "key_unique",
            f"Asserts that ({', '.join(dataset.key)}) is unique in {table}. ERROR and blocking: a duplicated key "
            "would double-count rows in everything built on it.",
            ERROR, duplicate_key_evaluation(table, dataset.key, with_source=False), blocking=True,
            partitioned=partitioned,
        ),
        Rule(
            "rows_conserved",
            f"Asserts that every raw row is accounted for: rows of {dataset.raw.name} = rows of {table} + rows of "
            f"{dataset.quarantine.name} + duplicates removed (re-derived from raw). ERROR and blocking: a mismatch "
            "means rows were lost or the table is stale against raw.",
            ERROR, conservation_evaluation(dataset), blocking=True, partitioned=partitioned,
        ),
        Rule(
            "quarantine_matches_contract",
            f"Asserts that {dataset.quarantine.name} matches its contract: every quarantined row keeps its source file "
            "and row, a non-empty reason and the run that rejected it. ERROR, not blocking: quarantine feeds nothing, "
            "but a row without a reason cannot be fixed.",
            ERROR, contract_evaluation(dataset.quarantine), table=dataset.quarantine.name, partitioned=partitioned,
        ),
        Rule(
            "no_rows_quarantined",
            f"Asserts that no row of {dataset.raw.name} was quarantined; lists the reasons and sample rows with their "
            f"file and row. WARN: the clean rows are complete and usable; the rejected ones wait in "
            f"{dataset.quarantine.name} for a fix at the source.",
            WARN, quarantine_evaluation(dataset), table=dataset.quarantine.name, partitioned=partitioned,
        ),
    ]
    if any(col.max_null_rate is not None for col in dataset.cleaned.columns.values()):
        rules.append(Rule(
            "null_rates_within_contract",
            "Asserts that each column's share of NULLs per partition stays within the contract's nullValues limit. "
            "WARN: more NULLs than ever seen usually means the source dropped a field.",
            WARN, null_rate_evaluation(dataset.cleaned), partitioned=partitioned,
        ))
    if NULLED_VALUES in dataset.cleaned.columns:
        rules.append(Rule(
            "no_implausible_values_nulled",
            f"Asserts that no value of {table} had to be set to NULL by the contract's plausibility rules (physical "
            "limits; isolated jumps away from both neighbouring observations). Lists every nulled value. WARN: the "
            "rest of the row is kept and usable.",
            WARN, nulled_values_evaluation(dataset), partitioned=partitioned,
        ))
    for reference in dataset.references:
        severity = ERROR if reference.severity == "error" else WARN
        rules.append(Rule(
            f"{reference.column}_known_in_{reference.dataset}",
            f"Asserts that at most {reference.max_unknown_share:.0%} of a partition's rows have a {reference.column} "
            f"missing from cleaned.{reference.dataset}.{reference.target} (the contract's relationship). "
            f"{'ERROR' if severity == ERROR else 'WARN'}, not blocking: the rows themselves are valid; an unknown code "
            "means the reference is out of date or a code is corrupt. Passes with 'not checked' until the reference "
            "table exists (the cleaned asset depends on it, so a backfill builds it first).",
            severity, reference_evaluation(table, reference), partitioned=partitioned,
            reads=(f"cleaned/{reference.dataset}",),
        ))
    return rules


def dataset_checks(dataset: Dataset) -> list[AssetChecksDefinition]:
    return [
        quality_checks_for(f"raw/{dataset.name}", raw_rules(dataset)),
        quality_checks_for(f"cleaned/{dataset.name}", cleaned_rules(dataset)),
    ]
