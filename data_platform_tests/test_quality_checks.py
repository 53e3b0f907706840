"""Contracts and quality checks on the real bundled 2013 data: what they find, and how they say it."""

from __future__ import annotations

import datetime as dt

from dagster import AssetCheckKey, AssetKey, AssetSelection

from data_platform import contracts
from data_platform.datasets import registry
from data_platform.definitions import defs
from data_platform.resources import build_resources
from data_platform.runner import materialize_days, materialize_unpartitioned
from data_platform.ingest import SourceResource
from data_platform_tests.quality_helpers import FLIGHTS, WEATHER, checks, per_partition

THANKSGIVING = "2013-11-28"


def test_volume_holds_each_day_to_its_weekday_and_relaxes_around_holidays(instance, resources):
    result = materialize_days(["raw/flights"], "2013-10-24", "2013-12-05", instance=instance, resources=resources)

    volume = checks(result)[("raw/flights", "volume_within_day_of_week_baseline")]
    verdicts = per_partition(volume)
    assert volume.passed, volume.description
    assert len(verdicts) == 43 and all("baseline" in v for v in verdicts.values())
    thanksgiving = verdicts[THANKSGIVING]
    assert thanksgiving["rows"] == 634 and 0.6 < thanksgiving["ratio"] < 0.7
    assert thanksgiving["detail"].endswith("allowed 50%..130%, relaxed: Thanksgiving Day")
    assert "relaxed: day after Thanksgiving Day" in verdicts["2013-11-29"]["detail"]
    # Thanksgiving is never anyone's baseline, and Saturdays are held to a Saturday baseline.
    assert all(THANKSGIVING not in v["detail"].split("(median of ")[1] for v in verdicts.values())
    assert verdicts["2013-11-16"]["baseline"] < 0.85 * verdicts["2013-11-14"]["baseline"]
    assert "allowed 80%..130%" in verdicts["2013-11-14"]["detail"]


def test_implausible_weather_is_nulled_by_the_contract_and_reported_per_partition(instance, resources, warehouse):
    ranged = materialize_days(WEATHER, "2013-02-11", "2013-02-13", instance=instance, resources=resources)
    single = materialize_days(WEATHER, "2013-05-08", instance=instance, resources=resources)

    with warehouse() as conn:
        nulled = conn.execute(
            "SELECT day, origin, observed_at, wind_speed, temp, dewp, humid, nulled_values FROM cleaned.weather "
            "WHERE nulled_values IS NOT NULL ORDER BY day"
        ).fetchall()
    wind, spike = nulled
    assert wind[:2] == (dt.date(2013, 2, 12), "EWR") and wind[3] is None and wind[4] is not None
    assert wind[7] == "wind_speed=1048.36058 (outside plausible 0..150)"
    assert spike[:2] == (dt.date(2013, 5, 8), "JFK") and spike[2].isoformat() == "2013-05-09T02:00:00+00:00"
    assert spike[4] is None and spike[5] is None and spike[6] == 95.34
    assert spike[7].startswith("temp=13.1 (isolated jump over 20 from both neighbouring observations)")

    found = checks(ranged)
    assert found[("cleaned/weather", "matches_cleaned_contract")].passed
    reported = found[("cleaned/weather", "no_implausible_values_nulled")]
    assert not reported.passed and reported.severity.value == "WARN"
    assert reported.metadata["failed_partition_keys"].value == "2013-02-12"
    assert reported.metadata["checked_partitions"].value == "2013-02-11..2013-02-13 (3 partition(s))"
    assert [v["passed"] for v in per_partition(reported).values()] == [True, False, True]
    assert reported.description.startswith(
        "FAILED on 1 of 3 partition(s) — 2013-02-12: 1 row(s) with values set to NULL: EWR 2013-02-12 08:00:00+00: "
        "wind_speed=1048.36058"
    )
    assert checks(single)[("cleaned/weather", "no_implausible_values_nulled")].metadata[
        "checked_partitions"].value == "2013-05-08..2013-05-08 (1 partition(s))"

    # Launched alone (as from the UI, without a partition), a check covers every stored partition.
    alone = materialize_unpartitioned(
        AssetSelection.checks(AssetCheckKey(AssetKey(["cleaned", "weather"]), "no_implausible_values_nulled")),
        instance=instance, resources=resources,
    )
    evaluation = checks(alone)[("cleaned/weather", "no_implausible_values_nulled")]
    assert evaluation.metadata["checked_partitions"].value == "2013-02-11..2013-05-08 (87 partition(s))"
    assert evaluation.metadata["failed_partition_keys"].value == "2013-02-12, 2013-05-08"


def test_references_on_the_real_data_pass_with_their_known_gaps_named(instance, resources):
    # One run with the reference tables: cleaned/flights depends on the datasets its contract
    # references, so their tables are written before the reference checks run, even in a fresh warehouse.
    references = [f"{layer}/{table}" for layer in ("raw", "cleaned") for table in ("airports", "airlines", "planes")]
    result = materialize_days([*references, *FLIGHTS], "2013-01-01", "2013-01-02", instance=instance,
                              resources=resources)

    found = checks(result)
    sent = SourceResource().read_daily("flights", dt.date(2013, 1, 1), dt.date(2013, 1, 2))
    territories = sent[sent["dest"].isin(["BQN", "SJU", "STT", "PSE"])]
    dests = found[("cleaned/flights", "dest_known_in_airports")]
    assert dests.passed
    assert {r.data["code"]: r.data["rows"] for r in dests.metadata["unknown_codes"].value.records} == \
        territories["dest"].value_counts().to_dict()
    tailnums = per_partition(found[("cleaned/flights", "tailnum_known_in_planes")])
    assert sorted(tailnums) == ["2013-01-01", "2013-01-02"]
    assert all(0.10 < v["unknown_share"] < 0.18 and v["passed"] for v in tailnums.values())
    carriers = found[("cleaned/flights", "carrier_known_in_airlines")]
    assert carriers.passed and carriers.severity.value == "ERROR"
    for table in ("airports", "airlines", "planes"):
        assert found[(f"raw/{table}", "no_duplicate_keys")].passed
        assert found[(f"raw/{table}", "matches_raw_contract")].passed, table
        assert found[(f"cleaned/{table}", "matches_cleaned_contract")].passed, table
        assert found[(f"cleaned/{table}", "rows_conserved")].passed, table


def test_a_cleaned_table_stale_against_raw_fails_row_conservation(instance, resources):
    assert materialize_days(FLIGHTS, "2013-01-03", instance=instance, resources=resources).success
    sampled = {**resources, "source": SourceResource(sample_fraction=0.5)}
    assert materialize_days(["raw/flights"], "2013-01-03", instance=instance, resources=sampled).success

    result = materialize_days(
        AssetSelection.checks_for_assets(AssetKey(["cleaned", "flights"])), "2013-01-03",
        instance=instance, resources=build_resources(), raise_on_error=False,
    )

    conserved = checks(result)[("cleaned/flights", "rows_conserved")]
    assert not conserved.passed and conserved.severity.value == "ERROR"
    detail = per_partition(conserved)["2013-01-03"]["detail"]
    raw = per_partition(conserved)["2013-01-03"]["raw"]
    assert raw < 914 and detail.startswith(f"raw {raw} ≠ cleaned 914 + quarantined 0 + duplicates removed 0")
    assert "cleaned.flights is stale against raw.flights or lost rows" in detail


def test_checks_say_what_they_assert_and_block_where_bad_data_must_not_flow():
    graph = defs.resolve_asset_graph()
    specs = {(k.asset_key.to_user_string(), k.name): graph.get_check_spec(k) for k in graph.asset_check_keys}
    blocking = {key for key, spec in specs.items() if spec.blocking}
    for table in ("flights", "weather"):
        for name in ("matches_cleaned_contract", "key_unique", "rows_conserved"):
            assert (f"cleaned/{table}", name) in blocking
        assert (f"cleaned/{table}", "no_rows_quarantined") not in blocking
        assert (f"raw/{table}", "matches_raw_contract") not in blocking
    assert ("cleaned/flights", "tailnum_known_in_planes") not in blocking
    for key, spec in specs.items():
        if spec.metadata and "severity" in spec.metadata:  # the quality checks
            assert spec.description.startswith("Asserts "), key
            assert spec.metadata["severity"] in spec.description, key


def test_cleaned_tables_declare_their_contract_and_column_lineage():
    for spec in registry().values():
        node = defs.resolve_asset_graph().get(AssetKey(["cleaned", spec.name]))
        schema = node.metadata["dagster/column_schema"]
        assert [c.name for c in schema.columns] == list(spec.cleaned.columns)
        assert all(c.description for c in schema.columns)
        lineage = node.metadata["dagster/column_lineage"].deps_by_column
        assert set(lineage) == set(spec.cleaned.columns)
        for column, deps in lineage.items():
            assert deps, column
            for dep in deps:
                assert dep.asset_key == AssetKey(["raw", spec.name])
                assert dep.column_name in spec.raw.columns, (column, dep.column_name)
        assert [c.name for c in node.metadata["quarantine_column_schema"].columns][-2:] == \
            ["reason", "quarantine_run_id"]
    node = defs.resolve_asset_graph().get(AssetKey(["cleaned", "flights"]))
    flights = {c.name: c for c in node.metadata["dagster/column_schema"].columns}
    assert "between -180 and 2400 (else row quarantined)" in flights["arr_delay"].constraints.other
    assert "at most 65% NULL per partition (else WARN)" in flights["arr_delay"].constraints.other
    sched_dep_utc = node.metadata["dagster/column_lineage"].deps_by_column["sched_dep_utc"]
    assert {dep.column_name for dep in sched_dep_utc} == {"time_hour", "minute"}


def test_a_contract_rule_means_the_same_in_sql_cleaning_and_in_pandera():
    import duckdb
    import pandas as pd

    rules = [contracts.between(1, 2400), contracts.at_least(0), contracts.greater_than(0),
             contracts.one_of(["EWR", "JFK"]), contracts.matches("^[A-Z0-9]{3,4}$")]
    samples = {"numbers": [-1.0, 0.0, 1.0, 5.0, 2400.0, 2401.0], "codes": ["EWR", "JFK", "XYZ", "JFKX", "jf", "12"]}
    with duckdb.connect() as conn:
        for rule in rules:
            values = samples["codes" if rule.kind in ("one_of", "matches") else "numbers"]
            in_pandera = list(rule.pandera_check()(pd.Series(values)).check_output)
            violated = rule.violated_sql("v")
            in_sql = [not conn.execute(f"SELECT {violated} FROM (SELECT ? AS v)", [value]).fetchone()[0] for value in values]
            assert in_sql == in_pandera, (rule.kind, values)
            assert conn.execute(f"SELECT {violated} FROM (SELECT NULL AS v)").fetchone()[0] is None  # NULL never breaks a rule


def test_reference_checks_wait_for_the_reference_tables_they_read():
    # cleaned/flights depends on the datasets its contract references: a backfill builds them
    # first, and a whole-graph run evaluates the reference checks after those tables exist.
    graph = defs.resolve_asset_graph()
    parents = graph.get(AssetKey(["cleaned", "flights"])).parent_keys
    assert {AssetKey(["cleaned", t]) for t in ("airlines", "airports", "planes")} <= parents
    upstream = defs.resolve_implicit_global_asset_job_def().graph.dependency_structure.all_upstream_outputs_from_node(
        "cleaned__flights__quality_checks"
    )
    assert {"cleaned__airlines", "cleaned__airports", "cleaned__planes"} <= {output.node_name for output in upstream}


def test_a_reference_check_without_its_reference_table_says_not_checkable_and_does_not_fail(instance, resources):
    # The flights alone, no reference tables (a check run on its own on a fresh warehouse): nothing
    # can be judged, so nothing is reported as bad data.
    result = materialize_days(FLIGHTS, "2013-01-01", instance=instance, resources=resources)
    found = checks(result)
    for name, table in (("carrier_known_in_airlines", "cleaned.airlines"), ("dest_known_in_airports", "cleaned.airports"),
                        ("tailnum_known_in_planes", "cleaned.planes")):
        evaluation = found[("cleaned/flights", name)]
        assert evaluation.passed, name
        assert evaluation.description.startswith(f"Not checked: {table} is not materialized yet."), evaluation.description
        assert evaluation.metadata["not_checked"].value == f"{table} does not exist yet"
        assert per_partition(evaluation)["2013-01-01"]["detail"] == f"not checked: {table} is not materialized yet"
