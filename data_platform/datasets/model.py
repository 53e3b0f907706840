"""A dataset as the engine sees it: what one validated contract file declares, compiled once.

`load.py` builds a `Dataset` from an ODCS file; everything the platform does for the dataset (DDL,
catalog schema, typing and quarantine SQL, checks, partitions, freshness) is derived from the fields
here and the three table contracts they compile to (`raw`, `cleaned`, `quarantine`). What a check
kind reads from the contract (`volume`, `drift`, ...) is in `checks`, configured by that kind
(`data_platform/checks/kinds/`).
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from data_platform.contracts import (
    NULLED_VALUES,
    Column,
    Rule,
    Series,
    TableContract,
    column,
    ingestion_columns,
    partition_day,
    quarantine_contract,
)

# Text a typed source column must look like to be typed exactly (see cleaning.typed_value).
INTEGER_TEXT = r"^[+-]?[0-9]+(\.0*)?$"
DECIMAL_TEXT = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)$"
EXPONENT_TEXT = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"
BOOLEAN_TEXT = r"^(?i:true|false)$"
ISO_TIMESTAMP_TEXT = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?)?(Z|[+-][0-9]{2}(:?[0-9]{2})?)?$"


@dataclass(frozen=True)
class Reference:
    """A property-level ODCS relationship: values of `column` should exist in `dataset.target`."""

    column: str
    dataset: str
    target: str
    max_unknown_share: float = 0.0
    severity: str = "warn"  # "warn" or "error"
    description: str = ""


@dataclass(frozen=True)
class Property:
    name: str
    source_name: str          # column name in the source file (platform property sourceName)
    sql_type: str
    description: str
    required: bool = False
    key_position: Optional[int] = None
    rules: tuple[Rule, ...] = ()
    plausible: Optional[tuple[float, float]] = None
    max_jump: Optional[float] = None
    max_null_rate: Optional[float] = None
    time_format: Optional[str] = None   # strptime format of the source text (dates, timestamps)
    time_zone: str = "UTC"              # zone of timestamps written without an offset
    allow_exponent: bool = False
    transform: Optional[str] = None     # SQL over typed source properties (ODCS transformLogic)
    transform_sources: tuple[str, ...] = ()
    references: tuple[Reference, ...] = ()

    @property
    def derived(self) -> bool:
        return self.transform is not None


@dataclass(frozen=True)
class Partitioning:
    cadence: str                       # "daily"
    start: dt.date
    end: Optional[dt.date]             # None: a live feed, partitions up to today
    time_zone: str                     # the zone in which partition dates are reckoned
    column: Optional[str] = None       # a date or timestamp property that gives the partition
    expression: Optional[str] = None   # or an SQL expression over typed properties
    description: str = ""              # of the declared partition column (`partitioned: true`), if any


@dataclass(frozen=True)
class Source:
    type: str                          # "landing", "file" or "package"
    path: str = ""                     # landing: folder below the landing root; file/package: the file
    package: str = ""
    format: str = "csv"                # "csv" or "parquet"


@dataclass(frozen=True)
class Dataset:
    name: str
    path: Path
    description: str
    owner: str
    properties: tuple[Property, ...]
    source: Source
    partitioning: Optional[Partitioning] = None
    series: Optional[Series] = None
    freshness_lag_hours: dict = field(default_factory=lambda: {"raw": 1, "cleaned": 2})
    latency_hours: Optional[float] = None   # ODCS slaProperties latency: the source delivers this late
    checks: dict = field(default_factory=dict)  # a check kind's configuration by the property it reads
    sample_by: tuple[str, ...] = ()
    version: str = ""

    @functools.cached_property
    def fingerprint(self) -> str:
        """Changes whenever what the contract declares changes (not its comments or file location)."""
        import dataclasses
        import hashlib

        return hashlib.sha256(repr(dataclasses.replace(self, path=Path(self.name))).encode()).hexdigest()[:10]

    @property
    def partitioned(self) -> bool:
        return self.partitioning is not None

    def prop(self, name: str) -> Property:
        return next(p for p in self.properties if p.name == name)

    @property
    def source_properties(self) -> tuple[Property, ...]:
        return tuple(p for p in self.properties if not p.derived)

    @property
    def key(self) -> tuple[str, ...]:
        """The natural key in cleaned column names; per partition for a partitioned dataset."""
        keyed = sorted((p for p in self.properties if p.key_position is not None), key=lambda p: p.key_position)
        return tuple(p.name for p in keyed) + (("day",) if self.partitioned else ())

    @property
    def references(self) -> tuple[Reference, ...]:
        return tuple(r for p in self.properties for r in p.references)

    @functools.cached_property
    def raw(self) -> TableContract:
        return TableContract(
            name=f"raw.{self.name}",
            description=f"{self.description} As the source sent it: every column as text.",
            columns={
                **({"day": partition_day(self._partition_text())} if self.partitioned else {}),
                **{p.name: column("VARCHAR", _raw_description(p), not p.required, _raw_rules(p))
                   for p in self.source_properties},
                **ingestion_columns(),
            },
            partitioned=self.partitioned,
        )

    @functools.cached_property
    def cleaned(self) -> TableContract:
        columns: dict[str, Column] = {"day": partition_day(self._partition_text())} if self.partitioned else {}
        for p in self.properties:
            columns[p.name] = column(p.sql_type, p.description, not p.required, p.rules, plausible=p.plausible,
                                     max_jump=p.max_jump, max_null_rate=p.max_null_rate)
        if any(p.plausible is not None or p.max_jump is not None for p in self.properties):
            columns[NULLED_VALUES] = column(
                "VARCHAR", "Values of this row set to NULL as physically implausible, as `column=value (rule)` "
                "joined by '; '; missing when none.")
        return TableContract(
            name=f"cleaned.{self.name}",
            description=f"{self.description} Typed exactly, deduplicated on ({', '.join(self.key)}); rows that "
                        f"cannot be typed or break a rule go to quarantine.{self.name} with the reason.",
            columns=columns,
            unique=self.key,
            quarantines=True,
            series=self.series,
            partitioned=self.partitioned,
        )

    @functools.cached_property
    def quarantine(self) -> TableContract:
        return quarantine_contract(self.raw, self.name)

    def _partition_text(self) -> str:
        p = self.partitioning
        how = (f"the date of {p.column}" if p.column else p.expression if p.expression else "the source file's date")
        return f"{p.description + ' ' if p.description else ''}Partition: the {p.cadence} date in {p.time_zone} ({how})."


def _raw_description(p: Property) -> str:
    source = f" Source column `{p.source_name}`." if p.source_name != p.name else ""
    return f"{p.description}{source} Text as sent; typed as {p.sql_type} in cleaned."


def _raw_rules(p: Property) -> tuple[Rule, ...]:
    """What the text of a source column must look like to be typed exactly (WARN on raw)."""
    if p.sql_type in ("INTEGER", "BIGINT", "SMALLINT"):
        return (Rule("matches", pattern=INTEGER_TEXT),)
    if p.sql_type == "DOUBLE":
        return (Rule("matches", pattern=EXPONENT_TEXT if p.allow_exponent else DECIMAL_TEXT),)
    if p.sql_type == "BOOLEAN":
        return (Rule("matches", pattern=BOOLEAN_TEXT),)
    if p.sql_type in ("TIMESTAMP", "TIMESTAMPTZ", "DATE") and p.time_format is None:
        return (Rule("matches", pattern=ISO_TIMESTAMP_TEXT),)
    if p.sql_type == "VARCHAR":
        return tuple(r for r in p.rules if r.kind == "matches")
    return ()
