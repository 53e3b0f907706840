"""Keys are unique: raw's (named with the files and rows they came from) and cleaned's, per partition."""

from typing import Callable, Sequence

from data_platform.checks.framework import ERROR, WARN, Check, Days, Evaluation, Verdict, day_column, label, per_partition, scope
from data_platform.checks.kinds import CheckKind, register


def _key_text(columns: Sequence[str]) -> str:
    return " || ' ' || ".join(f"coalesce(CAST(\"{c}\" AS VARCHAR), 'NULL')" for c in columns)


def duplicate_key_evaluation(table: str, key: Sequence[str], with_source: bool) -> Callable:
    """Keys that occur more than once per partition, with where they come from."""
    source_rows = (", string_agg(regexp_extract(_source_uri, '[^/]*$') || ' row ' || _source_row, ', ' "
                   "ORDER BY _source_uri, _source_row) AS rows") if with_source else ", NULL AS rows"

    def evaluate(conn, days: Days) -> Evaluation:
        where, params = scope(days)
        found = conn.execute(
            f"""
            SELECT {day_column(days)}, {_key_text([c for c in key if c != 'day'])} AS key, count(*) AS n {source_rows}
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
            return Verdict(label(day), not keys, detail, {"duplicated_keys": len(keys)})

        return Evaluation(per_partition(days, judge), {"key": ", ".join(key)})

    return evaluate


def _raw_key(dataset) -> list[str]:
    """The key in raw columns: a derived key column is replaced by the source columns it comes from."""
    columns = []
    for name in dataset.key:
        prop = None if name == "day" else dataset.prop(name)
        for column in (prop.transform_sources if prop is not None and prop.derived else (name,)):
            if column not in columns:
                columns.append(column)
    return columns


def checks(dataset, config) -> list[Check]:
    raw, table, key = dataset.raw.name, dataset.cleaned.name, dataset.key
    return [
        Check(
            "no_duplicate_keys",
            f"Asserts that no key ({', '.join(key)}) occurs twice in {raw}; duplicates are named with the file and "
            "rows they came from. WARN: cleaning keeps one of identical rows and quarantines rows that share a key "
            "but differ.",
            WARN, duplicate_key_evaluation(raw, _raw_key(dataset), with_source=True),
            partitioned=dataset.partitioned, layer="raw",
        ),
        Check(
            "key_unique",
            f"Asserts that ({', '.join(key)}) is unique in {table}. ERROR and blocking: a duplicated key would "
            "double-count rows in everything built on it.",
            ERROR, duplicate_key_evaluation(table, key, with_source=False), blocking=True,
            partitioned=dataset.partitioned,
        ),
    ]


register(CheckKind("keys", checks))
