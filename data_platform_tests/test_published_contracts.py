"""Published contracts, read by the tool others use: datacontract-cli (pinned, in its own environment).

On real stored tables of a small materialized range: every authoring contract (the bundled five, a
scaffolded one and the ML tables' two) and every published contract lints without errors; the SQL that datacontract-cli
exports from each published contract creates exactly the stored table's columns and types; and its
`test` passes on every stored table (read from a copy in its own DuckDB: it cannot read the
platform's Delta tables offline). The published key includes `day`: without it, the same test finds the
duplicates that a table-wide key reports on two days of clean data.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys

import pytest
import yaml

from data_platform import settings, storage
from data_platform.contracts import ddl
from data_platform.ml_contracts import PERFORMANCE, PREDICTIONS
from data_platform.datasets import load_datasets
from data_platform.datasets.scaffold import new_contract
from data_platform.ml_contracts import FOLDER as ML_CONTRACTS, PERFORMANCE, PREDICTIONS
from data_platform.publish import write_contracts
from data_platform.runner import materialize_days, materialize_unpartitioned
from data_platform_tests.datacontract_cli import run as datacontract

FIRST, LAST = "2013-01-01", "2013-01-02"
REFERENCE = ["raw/airlines", "cleaned/airlines", "raw/airports", "cleaned/airports", "raw/planes", "cleaned/planes"]
DAILY = ["raw/flights", "cleaned/flights", "raw/weather", "cleaned/weather", "features/flight_features"]


@pytest.fixture
def stored(platform_home, instance, resources, tmp_path):
    """The bundled datasets and the features over two days, stored; the ML tables the model writes
    (it needs a trained model) stored empty through the storage boundary, as their assets write them.
    Returns the published contracts by table name."""
    materialize_unpartitioned(REFERENCE, instance=instance, resources=resources)
    materialize_days(DAILY, FIRST, LAST, instance=instance, resources=resources)
    with storage.connection() as conn:
        for contract in (PREDICTIONS, PERFORMANCE):
            conn.execute(f"CREATE TEMP TABLE empty ({ddl(contract)})")
            storage.replace_days(conn, contract, "SELECT * FROM empty", [], *map(dt.date.fromisoformat, (FIRST, LAST)))
            conn.execute("DROP TABLE empty")
    folder = tmp_path / "published"
    done = subprocess.run([sys.executable, "-m", "data_platform", "dataset", "publish", "--output", str(folder)],
                          cwd=settings.PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    paths = [line for line in done.stdout.splitlines() if line]
    return {path.rsplit("/", 1)[1].removesuffix(".odcs.yaml"): path for path in paths}


def _stored_columns(table: str) -> list[tuple[str, str]]:
    layer, name = table.split(".")
    with storage.connection() as conn:
        return conn.execute("SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = ? "
                            "AND table_name = ? ORDER BY ordinal_position", [layer, name]).fetchall()


def test_datacontract_cli_reads_the_published_contracts_as_the_tables_are_stored(stored, platform_home, tmp_path):
    datasets = load_datasets()
    tables = {f"{layer}.{name}" for name in datasets for layer in ("raw", "cleaned", "quarantine")}
    tables |= {"features.flight_features", "ml.delay_predictions", "ml.model_performance"}
    assert set(stored) == tables

    # A scaffolded contract lints like the bundled ones (the draft loads with the repository's set).
    drafts = tmp_path / "drafts"
    drafts.mkdir()
    sample = drafts / "gauges.csv"
    sample.write_text("station,day,level\nA,2013-01-01,1.5\nB,2013-01-01,2.25\nA,2013-01-02,1.75\n")
    draft = new_contract("gauges", sample, folder=drafts)
    dataset = load_datasets([*(settings.REPOSITORY_DATASETS.glob("*.odcs.yaml")), draft])["gauges"]
    assert dataset.prop("day_value").source_name == "day" and dataset.key[-1] == "day"
    text = draft.read_text()
    assert "physicalName: day" not in text and "{property: sourceName, value: day}" in text
    assert "      - name: day\n" in text and "partitioned: true" in text and "physicalType: DOUBLE" in text

    # Stored tables to Parquet (the platform's DuckDB), loaded by datacontract-cli into its own DuckDB.
    parquet = tmp_path / "parquet"
    parquet.mkdir()
    with storage.connection() as conn:
        counts = {table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in tables}
        for table in tables:
            conn.execute(f"COPY {table} TO '{parquet / table}.parquet' (FORMAT parquet)")
    assert counts["cleaned.flights"] > 1000 and counts["cleaned.weather"] > 100 and counts["cleaned.airlines"] == 16
    assert counts["features.flight_features"] > 1000
    theirs = tmp_path / "theirs.duckdb"
    tested = {}
    for table, path in stored.items():
        document = yaml.safe_load(open(path, encoding="utf-8"))
        (server,) = document["servers"]
        layer, name = table.split(".")
        assert {key: server[key] for key in ("server", "type", "format", "path")} == {
            "server": "tables", "type": "local", "format": "delta",
            "path": (platform_home / "tables" / layer / name).as_uri()}
        document["servers"] = [{"server": "copy", "type": "duckdb", "database": str(theirs), "schema": layer}]
        tested[table] = tmp_path / f"test.{table}.odcs.yaml"
        tested[table].write_text(yaml.safe_dump(document, sort_keys=False))
    # The key as every tool reads primaryKey (table-wide), without the partition: what went wrong before.
    without_day = yaml.safe_load(tested["cleaned.flights"].read_text())
    day = next(p for p in without_day["schema"][0]["properties"] if p["name"] == "day")
    del day["primaryKey"], day["primaryKeyPosition"]
    (tmp_path / "no_day.odcs.yaml").write_text(yaml.safe_dump(without_day, sort_keys=False))

    authoring = [str(path) for path in sorted(settings.REPOSITORY_DATASETS.glob("*.odcs.yaml"))] + [str(draft)]
    authoring += [str(path) for path in sorted(ML_CONTRACTS.glob("*.odcs.yaml"))]
    results = datacontract({
        "load": {"database": str(theirs), "tables": {t: str(parquet / f"{t}.parquet") for t in tables}},
        "lint": authoring + sorted(stored.values()),
        "export_sql": sorted(stored.values()),
        "test": [str(path) for path in tested.values()] + [str(tmp_path / "no_day.odcs.yaml")],
    })

    for path, lint in results["lint"].items():
        assert lint["result"] == "passed", (path, lint["checks"])

    for table, path in stored.items():
        exported = results["export_sql"][path]["columns"]
        assert {row[0] for row in exported} == {table.split(".")[1]}, results["export_sql"][path]["ddl"]
        assert [(column, kind) for _, column, kind in exported] == _stored_columns(table), table

    for table, path in tested.items():
        outcome = results["test"][str(path)]
        checks = outcome["checks"]
        bad = [c for c in checks if c["result"] in ("failed", "error")]
        assert not bad, (table, bad)
        # The one warning: references to other contracts are not followed by datacontract-cli 1.2.8.
        warnings = [c for c in checks if c["result"] == "warning"]
        assert all("relationship" in (c["reason"] or "") for c in warnings), (table, warnings)
        assert sum(c["result"] == "passed" for c in checks) >= len(_stored_columns(table)), table
    flights = results["test"][str(tested["cleaned.flights"])]["checks"]
    key_checks = [c for c in flights if "primary key" in c["name"].lower()]
    assert key_checks and all(c["result"] == "passed" for c in key_checks), key_checks
    type_checks = [c for c in flights if " has type " in c["name"]]
    assert len(type_checks) == len(_stored_columns("cleaned.flights")), type_checks
    no_day = results["test"][str(tmp_path / "no_day.odcs.yaml")]["checks"]
    assert any("primary key" in c["name"].lower() and c["result"] == "failed" for c in no_day), no_day


def test_published_contract_names_the_stored_columns_keys_and_origin(platform_home, tmp_path):
    paths = write_contracts(["flights", "features.flight_features"], tmp_path)
    assert [p.name for p in paths] == ["raw.flights.odcs.yaml", "cleaned.flights.odcs.yaml",
                                       "quarantine.flights.odcs.yaml", "features.flight_features.odcs.yaml"]
    cleaned = yaml.safe_load((tmp_path / "cleaned.flights.odcs.yaml").read_text())
    flights = load_datasets()["flights"]
    assert cleaned["version"] == flights.version
    assert cleaned["customProperties"] == [{"property": "publishedFrom", "value": {
        "contract": str(flights.path), "id": "urn:data-platform:dataset:flights", "version": flights.version,
        "fingerprint": flights.fingerprint}}]
    (table,) = cleaned["schema"]
    props = {p["name"]: p for p in table["properties"]}
    key = sorted((p["primaryKeyPosition"], name) for name, p in props.items() if p.get("primaryKey"))
    assert [name for _, name in key] == ["carrier", "flight", "origin", "day"]
    assert props["day"]["partitioned"] is True and props["day"]["physicalType"] == "DATE"
    # The stored column day_of_month is named as stored; the source's `day` is not a physicalName.
    assert "physicalName" not in props["day_of_month"] and props["day_of_month"]["physicalType"] == "INTEGER"
    assert props["distance"]["physicalType"] == "DOUBLE" and props["distance"]["logicalTypeOptions"] == {
        "minimum": 1, "maximum": 6000}
    assert props["origin"]["quality"] == [{"metric": "invalidValues", "arguments": {
        "validValues": ["EWR", "JFK", "LGA"]}, "mustBe": 0}]
    assert props["carrier"]["relationships"][0]["to"] == "cleaned.airlines.odcs.yaml#/schema/airlines/properties/carrier"
    raw = {p["name"]: p for p in yaml.safe_load((tmp_path / "raw.flights.odcs.yaml").read_text())["schema"][0]["properties"]}
    assert {"_source_uri", "_source_row", "_ingested_at", "_run_id"} <= set(raw)
    assert raw["_source_row"]["physicalType"] == "BIGINT" and not any(p.get("primaryKey") for p in raw.values())
    quarantine = {p["name"] for p in yaml.safe_load((tmp_path / "quarantine.flights.odcs.yaml").read_text())[
        "schema"][0]["properties"]}
    assert {"reason", "quarantine_run_id", "day"} <= quarantine
    # The README shows an excerpt of this very document beside the authoring contract.
    readme = (settings.PROJECT_ROOT / "README.md").read_text()
    excerpt = yaml.safe_load(readme.split("(published)</th></tr>", 1)[1].split("```yaml\n")[2].split("```")[0])
    assert excerpt["id"] == cleaned["id"] and excerpt["version"] == cleaned["version"]
    (shown,), (published,) = excerpt["servers"], cleaned["servers"]
    assert {k: v for k, v in shown.items() if k != "path"} == {
        k: v for k, v in published.items() if k not in ("path", "description")}
    assert shown["path"].endswith("/tables/cleaned/flights") and published["path"].endswith("/tables/cleaned/flights")
    for shown in excerpt["schema"][0]["properties"]:
        stored = {k: v for k, v in props[shown["name"]].items() if k != "description"}
        assert shown == stored, shown["name"]
    authoring = yaml.safe_load(readme.split("(published)</th></tr>", 1)[1].split("```yaml\n")[1].split("```")[0])
    declared = {p["name"]: p for p in yaml.safe_load(flights.path.read_text())["schema"][0]["properties"]}
    for shown in authoring["schema"][0]["properties"]:
        assert shown == {k: v for k, v in declared[shown["name"]].items() if k != "description"}, shown["name"]
    weather = yaml.safe_load(next(iter(write_contracts(["cleaned.weather"], tmp_path))).read_text())
    assert "nulled_values" in {p["name"] for p in weather["schema"][0]["properties"]}


def test_publish_names_an_unknown_dataset(platform_home):
    done = subprocess.run([sys.executable, "-m", "data_platform", "dataset", "publish", "flight"],
                          cwd=settings.PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "unknown dataset or table 'flight'" in done.stderr and "flights" in done.stderr
    assert done.stdout == ""
