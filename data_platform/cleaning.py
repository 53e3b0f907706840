"""Cleaning any dataset: one SQL pass from raw text to typed rows, with every rule read from its contract.

* every row gets a `reason` (empty when clean): a required value missing, text that does not type
  exactly as the contract's type (`datasets.typing`), a value breaking one of the contract's rules,
  a row whose own date does not match its partition. Rows with a reason go to `quarantine.<name>` as
  received;
* in clean rows, a value breaking a plausibility rule (outside physical limits, or an isolated jump
  away from both neighbouring observations) is set to NULL and noted in `nulled_values`;
* clean rows sharing a key are duplicates when their source values are identical (the first is
  kept) and conflicts when they differ: a conflict is never resolved by picking one, every row of
  the key is quarantined with the source locations of the others;
* derived columns (ODCS `transformLogic`) are computed from the typed source columns.

The quarantine and the cleaned table are each replaced in one commit (quarantine first): a crash
between them leaves the old cleaned rows, and a re-run writes both again. Row conservation holds per
partition: raw = cleaned + quarantined + duplicates removed.
"""

from __future__ import annotations

import datetime as dt
from typing import Optional

from dagster import AssetKey, TableColumnDep, TableColumnLineage

from data_platform.contracts import NULLED_VALUES, sql_literal
from data_platform.datasets.model import Dataset
from data_platform.datasets.typing import type_problem, typed_value
from data_platform.ingest import partition_day_sql
from data_platform.storage import replace_days, replace_table

ONE_DAY = dt.timedelta(days=1)
BOOKKEEPING = ("_source_uri", "_source_row", "_ingested_at", "_run_id")


def value(name: str) -> str:
    """The staging column holding the final value of cleaned column `name`."""
    return '"day"' if name == "day" else f'"c_{name}"'


def _text(dataset: Dataset, name: str) -> str:
    """SQL for the value as text, for reasons: the source text, or a derived value printed."""
    prop = dataset.prop(name)
    return f'"s_{name}"' if not prop.derived else f'CAST("{name}" AS VARCHAR)'


def _reasons(dataset: Dataset) -> str:
    """One SQL expression: every problem of a row, joined by '; ' (empty string when clean)."""
    parts = []
    for p in dataset.properties:
        if p.required and not p.derived:
            parts.append(f"CASE WHEN \"s_{p.name}\" IS NULL THEN '{p.name} is missing' END")
        elif p.required:
            parts.append(f"CASE WHEN \"{p.name}\" IS NULL THEN '{p.name} is missing' END")
        if not p.derived:
            parts.append(type_problem(p, f'"s_{p.name}"', f'"{p.name}"'))
        for rule in p.rules:
            parts.append(f"CASE WHEN {rule.violated_sql(chr(34) + p.name + chr(34))} THEN "
                         f"'{p.name}: ' || {_text(dataset, p.name)} || {sql_literal(' not ' + rule.text())} END")
    part = dataset.partitioning
    if part and (part.column or part.expression):
        how = sql_literal(f"the row's date ({part.column or part.expression})")
        parts.append(f"CASE WHEN _row_day IS NULL THEN {how} || ' is not a date' END")
        parts.append("CASE WHEN _row_day IS DISTINCT FROM day AND _row_day IS NOT NULL "
                     "THEN 'row date ' || CAST(_row_day AS VARCHAR) || ' does not match partition ' || CAST(day AS VARCHAR) END")
    return "concat_ws('; ', " + ", ".join(parts) + ")"


def _range_values(dataset: Dataset) -> str:
    """Cleaned values before jump rules (`r_`), with implausible ones set to NULL and noted (`n_`)."""
    exprs = []
    for p in dataset.properties:
        if p.plausible is not None:
            low, high = p.plausible
            outside = f'("{p.name}" NOT BETWEEN {sql_literal(low)} AND {sql_literal(high)})'
            exprs.append(f'CASE WHEN {outside} THEN NULL ELSE "{p.name}" END AS "r_{p.name}"')
            exprs.append(f"CASE WHEN {outside} THEN '{p.name}=' || {_text(dataset, p.name)} || "
                         f"' (outside plausible {low}..{high})' END AS \"n_{p.name}\"")
        else:
            exprs.append(f'"{p.name}" AS "r_{p.name}"')
    return ", ".join(exprs)


def _jumps(dataset: Dataset) -> list[str]:
    return [p.name for p in dataset.properties if p.max_jump is not None]


def _jump_ctes(dataset: Dataset) -> str:
    """Per jump-ruled column: the (group, time) of clean observations that are isolated jumps."""
    series = dataset.series
    group, time, gap = f'"r_{series.group}"', f'"r_{series.time}"', series.max_gap_hours
    ctes = ""
    for name in _jumps(dataset):
        limit = sql_literal(dataset.prop(name).max_jump)
        ctes += f""",
        jumps_{name} AS (
            SELECT g, t FROM (
                SELECT g, t, v, lag(v) OVER w AS pv, lead(v) OVER w AS nv, lag(t) OVER w AS pt, lead(t) OVER w AS nt
                FROM (SELECT {group} AS g, {time} AS t, any_value("r_{name}") AS v FROM valued
                      WHERE reason = '' AND "r_{name}" IS NOT NULL GROUP BY ALL)
                WINDOW w AS (PARTITION BY g ORDER BY t)
            )
            WHERE t - pt <= INTERVAL {gap} HOUR AND nt - t <= INTERVAL {gap} HOUR
              AND ((v - pv > {limit} AND v - nv > {limit}) OR (pv - v > {limit} AND nv - v > {limit}))
        )"""
    return ctes


def _final_values(dataset: Dataset) -> tuple[str, str]:
    """The `c_` (final) value of every cleaned column and the joins to the jump tables."""
    jumps = _jumps(dataset)
    exprs, notes, joins = [], [], []
    for p in dataset.properties:
        if p.plausible is not None:
            notes.append(f'"n_{p.name}"')
        if p.name in jumps:
            exprs.append(f'CASE WHEN jumps_{p.name}.t IS NOT NULL THEN NULL ELSE "r_{p.name}" END AS "c_{p.name}"')
            notes.append(f"CASE WHEN jumps_{p.name}.t IS NOT NULL THEN '{p.name}=' || {_text(dataset, p.name)} || "
                         f"' (isolated jump over {p.max_jump} from both neighbouring observations)' END")
            joins.append(f'LEFT JOIN jumps_{p.name} ON valued.reason = \'\' AND jumps_{p.name}.g = '
                         f'valued."r_{dataset.series.group}" AND jumps_{p.name}.t = valued."r_{dataset.series.time}"')
        else:
            exprs.append(f'"r_{p.name}" AS "c_{p.name}"')
    if NULLED_VALUES in dataset.cleaned.columns:
        exprs.append(f"NULLIF(concat_ws('; ', {', '.join(notes)}), '') AS \"c_{NULLED_VALUES}\"")
    return ", ".join(exprs), " ".join(joins)


def staging_query(dataset: Dataset) -> str:
    """Raw rows with cleaned values, the rejection reason and a duplicate rank.

    Parameters: `staging_params(dataset, first, last)`. Jump rules look one day beyond the range for
    neighbouring observations, so a partition's result does not depend on the run's range.
    """
    sources = dataset.source_properties
    texts = ", ".join(f'"{p.name}" AS "s_{p.name}"' for p in sources)
    typed = ", ".join(f'{typed_value(p, chr(34) + "s_" + p.name + chr(34))} AS "{p.name}"' for p in sources)
    # TRY: an expression over a bad row gives NULL (the row is then judged), never a failed run.
    derived = [f'TRY(CAST(({p.transform}) AS {p.sql_type})) AS "{p.name}"' for p in dataset.properties if p.derived]
    part = dataset.partitioning
    if part and (part.column or part.expression):
        derived.append(f"{partition_day_sql(dataset)} AS _row_day")
    day = "day, " if dataset.partitioned else ""
    where = "WHERE day BETWEEN ? AND ?" if dataset.partitioned else ""
    final_values, jump_joins = _final_values(dataset)
    jump_ctes = _jump_ctes(dataset) if _jumps(dataset) else ""
    final_where = "WHERE valued.day BETWEEN ? AND ?" if dataset.partitioned else ""
    key = ", ".join(value(name) for name in dataset.key)
    source_hash = "md5(CAST(struct_pack(" + ", ".join(f'"{p.name}" := "s_{p.name}"' for p in sources) + ") AS VARCHAR))"
    located = "regexp_extract(_source_uri, '[^/]*$') || ' row ' || CAST(_source_row AS VARCHAR)"
    conflict = sql_literal("conflicting rows for key (" + ", ".join(dataset.key) + "): ")
    return f"""
        WITH source AS (
            SELECT {day}{", ".join(BOOKKEEPING)}, {texts} FROM {dataset.raw.name} {where}
        ),
        typed AS (SELECT *, {typed} FROM source),
        derived AS (SELECT *{", " if derived else ""}{", ".join(derived)} FROM typed),
        judged AS (SELECT *, {_reasons(dataset)} AS reason FROM derived),
        valued AS (SELECT *, {_range_values(dataset)} FROM judged){jump_ctes},
        final AS (
            SELECT valued.*, {final_values} FROM valued {jump_joins} {final_where}
        ),
        shared_keys AS (SELECT {key} FROM final WHERE reason = '' GROUP BY ALL HAVING count(*) > 1),
        conflicts AS (
            SELECT {key}, string_agg({located}, ', ' ORDER BY _source_uri, _source_row) AS key_rows
            FROM final JOIN shared_keys USING ({key}) WHERE reason = ''
            GROUP BY ALL HAVING count(DISTINCT {source_hash}) > 1
        ),
        ruled AS (
            SELECT final.* REPLACE (
                CASE WHEN final.reason = '' AND conflicts.key_rows IS NOT NULL
                     THEN {conflict} || conflicts.key_rows || ' have the same key and different values'
                     ELSE final.reason END AS reason)
            FROM final LEFT JOIN conflicts USING ({key})
        )
        SELECT *, CASE WHEN reason = '' THEN
                    row_number() OVER (PARTITION BY reason = '', {key} ORDER BY _source_uri, _source_row)
                  END AS duplicate_rank
        FROM ruled
    """


def staging_params(dataset: Dataset, first: Optional[dt.date], last: Optional[dt.date]) -> list:
    if not dataset.partitioned:
        return []
    margin = ONE_DAY if _jumps(dataset) else dt.timedelta(0)
    return [first - margin, last + margin, first, last]


def clean(conn, dataset: Dataset, first: Optional[dt.date], last: Optional[dt.date], run_id: str) -> dict[str, dict]:
    """Clean days first..last (the whole table when unpartitioned); returns
    counts by outcome, per day ({None: n} when unpartitioned)."""
    raw_columns = ", ".join(f'"s_{name}" AS "{name}"' if name in {p.name for p in dataset.source_properties}
                            else f'"{name}"' for name in dataset.raw.columns)
    cleaned_columns = ", ".join(f'{value(name)} AS "{name}"' for name in dataset.cleaned.columns)
    nulled = (f"sum(len(string_split(c_{NULLED_VALUES}, '; '))) FILTER (WHERE duplicate_rank = 1)"
              if NULLED_VALUES in dataset.cleaned.columns else "0")
    conn.execute("DROP TABLE IF EXISTS staged")
    conn.execute(f"CREATE TEMP TABLE staged AS {staging_query(dataset)}", staging_params(dataset, first, last))
    cleaned_rows = f"SELECT {cleaned_columns} FROM staged WHERE duplicate_rank = 1"
    quarantined = f"SELECT {raw_columns}, reason, ? AS quarantine_run_id FROM staged WHERE reason <> ''"
    if dataset.partitioned:
        replace_days(conn, dataset.quarantine, quarantined, [run_id], first, last)
        replace_days(conn, dataset.cleaned, cleaned_rows, [], first, last)
    else:
        replace_table(conn, dataset.quarantine, quarantined, [run_id])
        replace_table(conn, dataset.cleaned, cleaned_rows)
    counts = conn.execute(
        f"""
        SELECT {"day" if dataset.partitioned else "NULL"}, count(*),
               count(*) FILTER (WHERE reason <> ''),
               count(*) FILTER (WHERE duplicate_rank > 1),
               coalesce({nulled}, 0)
        FROM staged GROUP BY ALL
        """
    ).fetchall()
    conn.execute("DROP TABLE staged")
    outcome = {"raw_rows": {}, "quarantined_rows": {}, "duplicates_removed": {}}
    if NULLED_VALUES in dataset.cleaned.columns:
        outcome["values_nulled"] = {}
    for day, raw_rows, quarantined_count, duplicates, nulled_count in counts:
        outcome["raw_rows"][day] = raw_rows
        outcome["quarantined_rows"][day] = quarantined_count
        outcome["duplicates_removed"][day] = duplicates
        if "values_nulled" in outcome:
            outcome["values_nulled"][day] = int(nulled_count)
    return outcome


def column_lineage(dataset: Dataset) -> TableColumnLineage:
    """`dagster/column_lineage`: the raw columns each cleaned column is computed from."""
    raw_key = AssetKey(["raw", dataset.name])

    def sources(name: str) -> tuple[str, ...]:
        if name == NULLED_VALUES:
            return tuple(p.name for p in dataset.properties if p.plausible is not None or p.max_jump is not None)
        if name == "day":
            return ("day",)
        prop = dataset.prop(name)
        return prop.transform_sources or (() if prop.derived else (name,))

    return TableColumnLineage(
        deps_by_column={
            name: [TableColumnDep(asset_key=raw_key, column_name=source) for source in sources(name)]
            for name in dataset.cleaned.columns
        }
    )
