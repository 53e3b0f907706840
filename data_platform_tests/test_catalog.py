"""The catalog export, read back after real runs against a real (SQLite) Dagster instance."""

from __future__ import annotations

import json

from data_platform.__main__ import main
from data_platform.definitions import defs
from data_platform.runner import materialize_days, materialize_unpartitioned
from data_platform_tests.quality_helpers import FLIGHTS, REFERENCES, WEATHER


def test_catalog_lists_every_asset_with_its_latest_partition_versions(platform_home, instance, resources, tmp_path, capsys):
    references = materialize_unpartitioned(REFERENCES, instance=instance, resources=resources)
    first = materialize_days([*FLIGHTS, *WEATHER], "2013-01-01", "2013-01-02", instance=instance, resources=resources)
    again = materialize_days(FLIGHTS, "2013-01-02", instance=instance, resources=resources)
    output = tmp_path / "catalog.jsonl"

    assert main(["catalog", "--output", str(output)]) == 0

    records = {record["key"]: record for record in map(json.loads, output.read_text().splitlines())}
    assert set(records) == {key.to_user_string() for key in defs.resolve_all_asset_keys()}
    assert f"wrote {len(records)} asset record(s) to {output}" in capsys.readouterr().err

    flights = records["cleaned/flights"]
    assert flights["owners"] == ["team:data-platform"] and flights["kinds"] == ["duckdb", "sql"]
    assert flights["group"] == "cleaned" and flights["code_version"].startswith("3-") and flights["table"] == "cleaned.flights"
    assert flights["upstream"] == ["cleaned/airlines", "cleaned/airports", "cleaned/planes", "raw/flights"]
    assert flights["description"].startswith("NYC departures") and "flights.odcs.yaml" in flights["description"]
    assert flights["metadata"]["contract"].endswith("datasets/flights.odcs.yaml")
    columns = {column["name"]: column for column in flights["column_schema"]}
    assert columns["arr_delay"]["type"] == "DOUBLE" and columns["arr_delay"]["description"]
    assert "between -180 and 2400 (else row quarantined)" in columns["arr_delay"]["constraints"]
    assert sorted(dep["column"] for dep in flights["column_lineage"]["diverted"]) == ["arr_delay", "dep_time"]
    assert {dep["asset"] for dep in flights["column_lineage"]["diverted"]} == {"raw/flights"}
    assert flights["metadata"]["quarantine_table"] == "quarantine.flights"
    # The published ODCS contracts of the stored table and its quarantine (data_platform/publish.py).
    contract = flights["odcs_contract"]
    assert contract["id"] == "urn:data-platform:table:cleaned.flights"
    assert contract["servers"][0]["path"] == (platform_home / "tables" / "cleaned" / "flights").as_uri()
    assert [p["name"] for p in contract["schema"][0]["properties"]] == [c["name"] for c in flights["column_schema"]]
    assert flights["quarantine_odcs_contract"]["schema"][0]["name"] == "flights"
    assert records["ml/delay_predictions"]["odcs_contract"]["name"] == "ml.delay_predictions"

    partitions = {entry["partition"]: entry for entry in flights["partitions"]}
    assert flights["materialized_partitions"] == 2
    assert partitions["2013-01-01"]["run_id"] == first.run_id  # latest per partition, not per asset
    assert partitions["2013-01-02"]["run_id"] == again.run_id
    assert (partitions["2013-01-01"]["row_count"], partitions["2013-01-02"]["row_count"]) == (842, 943)
    events = {e.materialization.partition: e.materialization for e in again.get_asset_materialization_events()
              if e.materialization.asset_key.to_user_string() == "cleaned/flights"}
    assert partitions["2013-01-02"]["data_version"] == events["2013-01-02"].metadata["partition_data_version"].value
    assert partitions["2013-01-02"]["timestamp"].startswith("20") and partitions["2013-01-02"]["code_version"].startswith("3-")

    checks = {check["name"]: check for check in flights["checks"]}
    assert checks["rows_conserved"]["blocking"] and checks["rows_conserved"]["latest"]["passed"]
    assert checks["rows_conserved"]["latest"]["run_id"] == again.run_id
    assert checks["rows_conserved"]["description"].startswith("Asserts that every raw row is accounted for")

    planes = records["raw/planes"]
    assert planes["partitioning"] is None and planes["partitions"] == []
    assert planes["latest_materialization"]["row_count"] == 3322
    assert planes["latest_materialization"]["run_id"] == references.run_id
    weather = records["raw/weather"]
    assert weather["partitioning"]["start"].startswith("2013-01-01") and weather["materialized_partitions"] == 2
    assert [p["row_count"] for p in weather["partitions"]] == [67, 72]
