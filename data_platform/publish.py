"""Published contracts: every stored table described in ODCS, exactly as it is stored.

An authoring contract (`datasets/*.odcs.yaml`) says what a dataset is and what the platform does with
it; the platform turns it into three tables (raw, cleaned, quarantine) with columns of its own (the
partition `day`, `nulled_values`, the quarantine's `reason`, ingestion bookkeeping). The ML graph
stores three more tables. For each, `published_contract` writes the ODCS document another tool reads:
every stored column with its stored type, the key (per partition: `day` is in it), nullability, the
rules, references to the published contracts of the tables they point at, the version of the
authoring contract it came from, and a `servers` entry saying where the table is and in which format.

`python -m data_platform dataset publish [NAME ...]` writes them to `$DATA_PLATFORM_HOME/contracts/`,
one `<layer>.<table>.odcs.yaml` each; the catalog export carries the same documents.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

from data_platform.contracts import NULLED_VALUES, Rule, TableContract
from data_platform.datasets.profile import PHYSICAL_TYPES

SUFFIX = ".odcs.yaml"
# Stored type -> ODCS logical type: the inverse of the profile's logical -> stored types.
LOGICAL_TYPES = {stored: logical for logical, types in PHYSICAL_TYPES.items() for stored in types}
FORMAT = ("Delta Lake table (delta-rs, reader protocol 1, partitioned by day where daily; any Delta reader, or "
          "Parquet readers through a version's file list)")


def ml_tables() -> dict[str, tuple[TableContract, str, dict]]:
    """The tables the ML graph stores: contract, the code version of the asset that writes it and where
    the contract is declared (the one place that says where each is declared)."""
    from data_platform import features
    from data_platform.assets import features as feature_asset, ml
    from data_platform.ml_contracts import FOLDER, PERFORMANCE, PREDICTIONS

    return {contract.name: (contract, version, origin) for contract, version, origin in (
        (features.CONTRACT, feature_asset.CODE_VERSION, {"module": "data_platform/features.py"}),
        (PREDICTIONS, ml.CODE_VERSION, {"contract": str(FOLDER / "delay_predictions.odcs.yaml")}),
        (PERFORMANCE, ml.CODE_VERSION, {"contract": str(FOLDER / "model_performance.odcs.yaml")}))}


def stored_tables(names: Optional[list[str]] = None) -> dict[str, dict]:
    """Every stored table's published contract by table name (`cleaned.flights`), in layer order.

    `names` are dataset names (their raw, cleaned and quarantine tables) or table names; none: all.
    """
    from data_platform.datasets import registry

    datasets = registry()
    wanted = {}
    for dataset in datasets.values():
        for contract in (dataset.raw, dataset.cleaned, dataset.quarantine):
            wanted[contract.name] = (dataset.name, lambda c=contract, d=dataset: dataset_contract(c, d))
    for name, (contract, version, origin) in ml_tables().items():
        wanted[name] = (None, lambda c=contract, v=version, o=origin: published_contract(
            c, version=v, origin={**o, "codeVersion": v}))
    if names:
        unknown = [n for n in names if n not in wanted and n not in datasets]
        if unknown:
            raise KeyError(f"unknown dataset or table {', '.join(map(repr, unknown))}; datasets: "
                           f"{', '.join(sorted(datasets))}; tables: {', '.join(sorted(wanted))}")
        wanted = {table: entry for table, entry in wanted.items() if table in names or entry[0] in names}
    return {table: build() for table, (_, build) in wanted.items()}


def dataset_contract(contract: TableContract, dataset) -> dict:
    """The published contract of one of a dataset's tables (raw, cleaned or quarantine)."""
    references = dataset.references if contract.layer == "cleaned" else ()
    origin = {"contract": str(dataset.path), "id": f"urn:data-platform:dataset:{dataset.name}",
              "version": dataset.version, "fingerprint": dataset.fingerprint}
    return published_contract(contract, version=dataset.version or "0.0.0", origin=origin, owner=dataset.owner,
                              references=references)


def published_contract(contract: TableContract, *, version: str, origin: dict, owner: str = "team:data-platform",
                       references=()) -> dict:
    """The ODCS v3.1 document of one stored table, as plain data (YAML/JSON-ready)."""
    from data_platform.storage import table_uri

    key = list(contract.unique)
    linked = {}
    for reference in references:
        linked.setdefault(reference.column, []).append({
            "type": "foreignKey",
            "to": f"cleaned.{reference.dataset}{SUFFIX}#/schema/{reference.dataset}/properties/{reference.target}",
            "customProperties": [{"property": "maxUnknownShare", "value": reference.max_unknown_share},
                                 {"property": "severity", "value": reference.severity}],
        })
    properties = []
    for name, col in contract.columns.items():
        prop = {"id": name, "name": name, "logicalType": LOGICAL_TYPES[col.sql_type], "physicalType": col.sql_type,
                "required": not col.nullable, "description": col.description}
        if name in key:
            prop.update(primaryKey=True, primaryKeyPosition=key.index(name) + 1)
        if contract.partitioned and name == "day":
            prop.update(partitioned=True, partitionKeyPosition=1)
        options, quality = _rules(col.rules)
        if col.max_null_rate is not None:
            quality.append({"metric": "nullValues", "unit": "percent",
                            "mustBeLessOrEqualTo": round(col.max_null_rate * 100, 6),
                            "description": "per partition (the platform's null_rates_within_contract check warns)"})
        if options:
            prop["logicalTypeOptions"] = options
        if quality:
            prop["quality"] = quality
        custom = []
        if col.plausible is not None:
            custom.append({"property": "plausibleRange", "value": list(col.plausible)})
        if col.max_jump is not None:
            custom.append({"property": "maxJump", "value": col.max_jump})
        if custom:
            prop["customProperties"] = custom
        if name in linked:
            prop["relationships"] = linked[name]
        properties.append(prop)
    table = {"id": contract.table, "name": contract.table, "physicalName": contract.table, "physicalType": "table",
             "description": contract.description, "properties": properties}
    if contract.frame_checks:
        table["quality"] = [{"type": "text", "name": check.name, "description": f"every row: not {check.error}"}
                            for check in contract.frame_checks]
    document = {
        "apiVersion": "v3.1.0",
        "kind": "DataContract",
        "id": f"urn:data-platform:table:{contract.name}",
        "name": contract.name,
        "version": str(version),
        "status": "active",
        "description": {"purpose": contract.description},
        "team": {"name": owner.split(":", 1)[-1]},
        "servers": [{"server": "tables", "type": "local", "format": "delta", "path": table_uri(contract.name),
                     "description": f"Table {contract.name}: {FORMAT}."}],
        "schema": [table],
        "customProperties": [{"property": "publishedFrom", "value": origin}],
    }
    if NULLED_VALUES in contract.columns:
        document["description"]["usage"] = (f"Values set to NULL as physically implausible are listed in "
                                            f"{NULLED_VALUES}.")
    return document


def _rules(rules: tuple[Rule, ...]) -> tuple[dict, list]:
    """A column's value rules as ODCS logicalTypeOptions and quality entries."""
    options, quality = {}, []
    for rule in rules:
        if rule.kind == "between":
            options.update(minimum=rule.low, maximum=rule.high)
        elif rule.kind == "at_least":
            options["minimum"] = rule.low
        elif rule.kind == "greater_than":
            options["exclusiveMinimum"] = rule.low
        elif rule.kind == "matches":
            options["pattern"] = rule.pattern
        elif rule.kind == "one_of":
            quality.append({"metric": "invalidValues", "arguments": {"validValues": list(rule.values)}, "mustBe": 0})
        else:
            raise ValueError(f"rule {rule.kind} has no ODCS form")
    return options, quality


def write_contracts(names: Optional[list[str]] = None, folder: Optional[Path] = None) -> list[Path]:
    """Write the published contracts (all, or those of `names`); returns the files written."""
    import yaml

    from data_platform.settings import home_path

    folder = Path(folder) if folder else home_path("contracts")
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for table, document in stored_tables(names).items():
        path = folder / f"{table}{SUFFIX}"
        path.write_text(yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=120), encoding="utf-8")
        written.append(path)
    return written


def publish_command(names: list[str], output: Optional[str]) -> int:
    """`dataset publish`: print each file written; exit code 1 naming an unknown dataset or table."""
    try:
        for path in write_contracts(names or None, Path(output) if output else None):
            print(path)
    except KeyError as error:
        print(f"dataset publish: {error.args[0]}", file=sys.stderr)
        return 1
    return 0
