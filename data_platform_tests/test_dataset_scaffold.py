"""`dataset new` in detail: what the draft infers from real files, where it lets a source be read from,
what it refuses; a reference-table draft materialized as written (in process, real run)."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import duckdb
import pytest
from dagster import materialize

from data_platform import settings, storage
from data_platform.components.datasets import dataset_definitions
from data_platform.datasets.load import read_contract
from data_platform.datasets.scaffold import ScaffoldError, check_contracts, new_contract

STATSMODELS = Path(importlib.util.find_spec("statsmodels").origin).parent / "datasets"
GRUNFELD = STATSMODELS / "grunfeld" / "grunfeld.csv"  # 11 US firms x 20 years (1935-1954) of investment data
CO2 = STATSMODELS / "co2" / "co2.csv"


@pytest.fixture
def contracts(platform_home, tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "contracts"
    monkeypatch.setenv(settings.DATASETS_ENV, str(folder))
    return folder


def test_a_reference_table_draft_has_its_key_allowed_values_and_ranges_and_materializes(contracts, instance, resources):
    with GRUNFELD.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    path = new_contract("grunfeld", GRUNFELD)
    assert path == contracts / "grunfeld.odcs.yaml"
    dataset = read_contract(path)
    assert dataset.source.type == "package" and dataset.source.path == "datasets/grunfeld/grunfeld.csv"
    assert dataset.partitioning is None  # no date column: a reference table
    assert dataset.key == ("firm", "year")  # neither alone is unique; the pair is, in file order
    firm, year, invest = dataset.prop("firm"), dataset.prop("year"), dataset.prop("invest")
    assert firm.sql_type == "VARCHAR" and year.sql_type == "INTEGER" and invest.sql_type == "DOUBLE"
    assert all(p.required for p in dataset.properties)
    (allowed,) = [r for r in firm.rules if r.kind == "one_of"] or [None]
    assert allowed is not None and sorted(allowed.values) == sorted({r["firm"] for r in rows})
    years = [int(r["year"]) for r in rows]
    (year_range,) = year.rules
    assert year_range.low < min(years) and year_range.high > max(years)  # the sample's range with a margin
    assert check_contracts([path]) == 0

    # Materialized as written: every row typed, none quarantined, the checks pass.
    result = materialize(list(dataset_definitions(dataset).assets) + list(dataset_definitions(dataset).asset_checks),
                         instance=instance, resources=resources)
    assert result.success
    evaluations = result.get_asset_check_evaluations()
    assert evaluations and all(e.passed for e in evaluations), [(e.check_name, e.description) for e in evaluations if not e.passed]
    with storage.connection() as conn:
        assert conn.execute("SELECT count(*) FROM raw.grunfeld").fetchone()[0] == len(rows)
        assert conn.execute("SELECT count(*) FROM quarantine.grunfeld").fetchone()[0] == 0
        assert conn.execute("SELECT sum(invest), count(DISTINCT firm) FROM cleaned.grunfeld").fetchone() == (
            pytest.approx(sum(float(r["invest"]) for r in rows)), 11)


def test_where_a_draft_may_read_its_file_from(contracts, platform_home, tmp_path):
    # Outside the contract's folder, the data home and the landing directory: refused, saying where it may be.
    outside = tmp_path / "elsewhere" / "grunfeld.csv"
    outside.parent.mkdir()
    outside.write_bytes(GRUNFELD.read_bytes())
    with pytest.raises(ScaffoldError, match="outside the folders a contract may read.*DATA_PLATFORM_HOME"):
        new_contract("grunfeld", outside)
    assert not contracts.exists() or not list(contracts.iterdir())

    # Inside the contract's folder: a path relative to it.
    contracts.mkdir()
    (contracts / "samples").mkdir()
    beside = contracts / "samples" / "grunfeld.csv"
    beside.write_bytes(GRUNFELD.read_bytes())
    dataset = read_contract(new_contract("grunfeld", beside))
    assert (dataset.source.type, dataset.source.path) == ("file", "samples/grunfeld.csv")

    # In the data home, as Parquet whose `day` column (a name the engine keeps for itself) holds ISO dates:
    # renamed, typed as a date and chosen as the partition column without being asked.
    parquet = platform_home / "co2.parquet"
    with duckdb.connect() as conn:
        conn.execute("COPY (SELECT strptime(CAST(date AS VARCHAR), '%Y%m%d')::DATE AS day, co2 FROM "
                     "read_csv(?, header = true)) TO '" + str(parquet).replace("'", "''") + "' (FORMAT parquet)",
                     [str(CO2)])
    path = new_contract("co2_weekly", parquet)
    dataset = read_contract(path)
    assert (dataset.source.type, dataset.source.path, dataset.source.format) == ("file", str(parquet), "parquet")
    day = dataset.prop("day_value")
    assert day.source_name == "day" and day.sql_type == "DATE" and dataset.partitioning.column == "day_value"
    assert str(dataset.partitioning.start) == "1958-03-29" and str(dataset.partitioning.end) == "2001-12-29"
    assert "REVIEW day_value: chosen as the partition column" in path.read_text()
    assert check_contracts() == 0


def test_numbers_with_exponents_and_refusals(contracts, platform_home):
    with CO2.open(newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["co2"]][:50]
    sample = platform_home / "co2_exponent.csv"
    with sample.open("w", newline="") as handle:  # the real values, written as some exporters do
        writer = csv.writer(handle)
        writer.writerow(["week", "co2"])
        writer.writerows((r["date"], f"{float(r['co2']):e}") for r in rows)
    with pytest.raises(ScaffoldError, match=r"not written as an ISO date \(e.g. '19580329'\).*--time-format"):
        new_contract("co2_exp", sample, time_column="week")
    with pytest.raises(ScaffoldError, match=r"does not follow --time-format '%Y/%m/%d' exactly in 50 row"):
        new_contract("co2_exp", sample, time_column="week", time_format="%Y/%m/%d")
    with pytest.raises(ScaffoldError, match="unsupported strptime code '%Q'"):
        new_contract("co2_exp", sample, time_column="week", time_format="%Y%m%Q")
    with pytest.raises(ScaffoldError, match="--time-format needs --time-column"):
        new_contract("co2_exp", sample, time_format="%Y%m%d")
    with pytest.raises(ScaffoldError, match="'weeks' is not a column"):
        new_contract("co2_exp", sample, time_column="weeks", time_format="%Y%m%d")
    with pytest.raises(ScaffoldError, match="already declared in .*weather.odcs.yaml"):
        new_contract("weather", sample)
    with pytest.raises(ScaffoldError, match="must match"):
        new_contract("CO2-exp", sample)
    with pytest.raises(ScaffoldError, match=r"reads comma-separated files; this one is separated by '\\t'"):
        new_contract("anes96", STATSMODELS / "anes96" / "anes96.csv")  # a real tab-separated file

    dataset = read_contract(new_contract("co2_exp", sample, time_column="week", time_format="%Y%m%d"))
    co2 = dataset.prop("co2")
    assert co2.sql_type == "DOUBLE" and co2.allow_exponent
    assert dataset.prop("week").time_format == "%Y%m%d" and dataset.partitioning.column == "week"


def test_the_readme_example_contract_uses_every_profile_property_and_is_valid(tmp_path, monkeypatch):
    from data_platform.datasets import load_datasets
    from data_platform.datasets.load import profile_properties
    from data_platform.datasets.profile import LEVELS

    readme = (settings.PROJECT_ROOT / "README.md").read_text()
    text = readme.split("```yaml\n# datasets/station_readings.odcs.yaml\n", 1)[1].split("```", 1)[0]
    folder = tmp_path / "contracts"
    folder.mkdir()
    (folder / "station_readings.odcs.yaml").write_text(text)
    monkeypatch.setenv(settings.DATASETS_ENV, str(folder))
    dataset = load_datasets()["station_readings"]  # validated with the repository's set (its reference)
    for level in LEVELS:  # the profile's properties and those the check kinds read
        for name in profile_properties(level):
            assert f"property: {name}" in text, f"the README example does not show {name}"
    assert dataset.checks["drift"].columns == ("temp", "station")
    assert dataset.checks["volume"].holiday_calendar == "US"
    assert dataset.prop("observed_at").time_format == "%Y/%m/%d %H:%M"
    assert [r.dataset for r in dataset.references] == ["airports"]


def test_without_a_natural_key_the_draft_keys_on_every_filled_column_and_materializes(contracts, instance, resources):
    star = STATSMODELS / "star98" / "star98.csv"  # 303 California school districts, 24 numeric columns
    with star.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    path = new_contract("star98", star)
    dataset = read_contract(path)
    assert len(dataset.key) == len(dataset.properties) == len(rows[0])
    assert "the key is every column filled in every row" in path.read_text()
    result = materialize(list(dataset_definitions(dataset).assets) + list(dataset_definitions(dataset).asset_checks),
                         instance=instance, resources=resources)
    evaluations = result.get_asset_check_evaluations()
    assert result.success and evaluations and all(e.passed for e in evaluations)
    with storage.connection() as conn:
        assert conn.execute("SELECT count(*) FROM cleaned.star98").fetchone()[0] == len(rows)
        assert conn.execute("SELECT count(*) FROM quarantine.star98").fetchone()[0] == 0
