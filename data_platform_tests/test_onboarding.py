"""Onboarding a dataset that is none of the bundled five, the way a user does it: `dataset new` from a
real sample file, edit the draft, `dataset check`, then a real Dagster run in a temporary home.

The data: the weekly Mauna Loa CO2 record (1958-2001) that statsmodels ships as
`statsmodels/datasets/co2/co2.csv`, dates written `%Y%m%d`, 59 weeks without a value. Read in place
it is a `package` source; the same rows rewritten with `%Y/%m/%d` dates into the data home make a
`file` source. Both go through `python -m data_platform` and `dagster asset materialize` as
subprocesses, because the code location reads DATA_PLATFORM_DATASETS_DIR when it is imported.
Both have the same partitions (the file's first to last date), so one run builds both.
"""

from __future__ import annotations

import csv
import datetime as dt
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from dagster import AssetCheckKey, AssetKey

from data_platform import storage
from data_platform.settings import PROJECT_ROOT

CO2_CSV = Path(importlib.util.find_spec("statsmodels").origin).parent / "datasets" / "co2" / "co2.csv"
DAGSTER = str(PROJECT_ROOT / ".venv" / "bin" / "dagster")
FIRST, LAST = dt.date(1984, 2, 1), dt.date(1984, 4, 30)
REFERENCE = ("1984-02-01", "1984-02-29")
MAXIMUM = 347.0  # the range the user writes; 1984-04-28 (347.4 ppm) breaks it


def co2_rows() -> list[tuple[dt.date, str]]:
    """The real rows as (date, co2 text), read with the csv module (independently of the platform)."""
    with CO2_CSV.open(newline="") as handle:
        return [(dt.datetime.strptime(row["date"], "%Y%m%d").date(), row["co2"]) for row in csv.DictReader(handle)]


def cli(*args: str, env: dict, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "data_platform", *args], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    if check:
        assert done.returncode == 0, f"{args}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done


def materialize(env: dict, names: list[str], first: str, last: str) -> None:
    done = subprocess.run(
        [DAGSTER, "asset", "materialize", "-m", "data_platform.definitions",
         "--select", ",".join(f"{layer}/{name}" for name in names for layer in ("raw", "cleaned")),
         "--partition-range", f"{first}...{last}"],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def edit_as_a_user(contract: Path) -> None:
    """What a person does with the draft: describe it, write the valid range, ask for a value every
    week, and monitor drift against a reference window."""
    text = contract.read_text()
    edits = [
        ('purpose: "co2, onboarded from co2.csv."',
         "purpose: Weekly mean atmospheric CO2 at Mauna Loa, in ppm (statsmodels' co2 dataset)."),
        ('description: "co2 as in the file."', "description: Weekly mean CO2 mole fraction in ppm."),
        ("logicalTypeOptions: {minimum: 306.9, maximum: 380.0}",
         f"logicalTypeOptions: {{minimum: 300, maximum: {MAXIMUM}}}\n"
         "        quality:\n"
         "          - {metric: nullValues, unit: percent, mustBeLessOrEqualTo: 0}"),
        ("      - property: partitioning\n",
         "      - property: drift\n"
         f"        value: {{columns: [co2], reference: {{start: \"{REFERENCE[0]}\", end: \"{REFERENCE[1]}\"}}}}\n"
         "      - property: partitioning\n"),
    ]
    for old, new in edits:
        assert text.count(old) == 1, f"the draft no longer has {old!r}:\n{text}"
        text = text.replace(old, new)
    contract.write_text(text)


def latest_checks(instance, asset: str) -> dict:
    """check name -> the latest evaluation of that check on the asset (from the instance's event log)."""
    key = AssetKey(asset.split("/"))
    found = {}
    for name in CHECK_NAMES[asset.split("/")[0]]:
        history = instance.event_log_storage.get_asset_check_execution_history(AssetCheckKey(key, name), limit=1)
        if history and history[0].event is not None and history[0].event.dagster_event is not None:
            found[name] = history[0].event.dagster_event.event_specific_data
    return found


CHECK_NAMES = {
    "raw": ["matches_raw_contract", "no_duplicate_keys", "landing_files_all_ingestible",
            "newest_source_partition_on_time"],
    "cleaned": ["matches_cleaned_contract", "key_unique", "rows_conserved", "quarantine_matches_contract",
                "no_rows_quarantined", "null_rates_within_contract", "newest_source_partition_on_time",
                "monitored_columns_drift"],
}


@pytest.mark.real_process
def test_onboard_a_package_file_and_a_landed_file_to_checked_tables_in_the_catalog(platform_home, instance, tmp_path):
    contracts = tmp_path / "contracts"
    env = {**os.environ, "DATA_PLATFORM_DATASETS_DIR": str(contracts)}
    rows = co2_rows()

    # 1. A file inside an installed package: a `package` source, dates written %Y%m%d.
    done = cli("dataset", "new", "co2", "--from", str(CO2_CSV), "--time-column", "date", "--time-format", "%Y%m%d",
               env=env)
    contract = Path(done.stdout.strip())
    assert contract == contracts / "co2.odcs.yaml" and contract.is_file()
    draft = contract.read_text()
    assert "value: {type: package, package: statsmodels, path: datasets/co2/co2.csv, format: csv}" in draft
    assert "logicalTypeOptions: {format: yyyyMMdd}" in draft
    assert f'start: "{min(r[0] for r in rows)}", end: "{max(r[0] for r in rows)}"' in draft
    assert "# REVIEW" in draft
    # The date is the key (unique over the file) and required; co2 has empty weeks, so it is optional.
    date_block, co2_block = draft.split("\n      - name: date\n")[1].split("\n      - name: co2\n")
    assert "required: true" in date_block and "primaryKey: true" in date_block
    assert "required: true" not in co2_block and "59 of 2284 rows have no value" in co2_block

    # Refuses to overwrite the contract.
    again = cli("dataset", "new", "co2", "--from", str(CO2_CSV), "--time-column", "date", "--time-format", "%Y%m%d",
                env=env, check=False)
    assert again.returncode == 1 and "already exists" in again.stderr and contract.read_text() == draft

    # 2. The same real rows, landed with %Y/%m/%d dates in the data home: a `file` source.
    landed = platform_home / "samples" / "co2_weekly.csv"
    landed.parent.mkdir(parents=True)
    with landed.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["date", "co2"])
        writer.writerows((day.strftime("%Y/%m/%d"), value) for day, value in rows)
    done = cli("dataset", "new", "co2_landed", "--from", str(landed), "--time-column", "date",
               "--time-format", "%Y/%m/%d", env=env)
    landed_contract = Path(done.stdout.strip())
    landed_draft = landed_contract.read_text()
    assert f'value: {{type: file, path: "{landed}", format: csv}}' in landed_draft
    assert "logicalTypeOptions: {format: yyyy/MM/dd}" in landed_draft

    # 3. The user edits the draft; both contracts pass the check the code location applies.
    edit_as_a_user(contract)
    done = cli("dataset", "check", env=env)
    assert "OK co2 " in done.stdout and "OK co2_landed " in done.stdout and "OK flights " in done.stdout

    # 4. A real run, as written.
    materialize(env, ["co2", "co2_landed"], FIRST.isoformat(), LAST.isoformat())

    in_range = [(day, value) for day, value in rows if FIRST <= day <= LAST]
    too_high = [(day, value) for day, value in in_range if value and float(value) > MAXIMUM]
    empty = [day for day, value in in_range if not value]
    assert len(too_high) == 1 and len(empty) == 4  # what the real data holds, read without the platform
    with storage.connection() as conn:
        raw = conn.execute("SELECT day, date, co2 FROM raw.co2 ORDER BY day").fetchall()
        assert raw == [(day, day.strftime("%Y%m%d"), value or None) for day, value in in_range]
        cleaned = conn.execute("SELECT day, date, co2 FROM cleaned.co2 ORDER BY day").fetchall()
        assert cleaned == [(day, day, float(value) if value else None) for day, value in in_range
                           if (day, value) not in too_high]
        quarantined = conn.execute("SELECT day, co2, reason FROM quarantine.co2").fetchall()
        assert [(day, co2) for day, co2, _ in quarantined] == [(day, value) for day, value in too_high]
        assert "co2" in quarantined[0][2] and str(MAXIMUM).rstrip("0").rstrip(".") in quarantined[0][2]

        landed_rows = conn.execute("SELECT date, co2 FROM cleaned.co2_landed ORDER BY date").fetchall()
        assert landed_rows == [(day, float(value) if value else None) for day, value in in_range]
        assert conn.execute("SELECT date FROM raw.co2_landed ORDER BY day").fetchall() == [
            (day.strftime("%Y/%m/%d"),) for day, _ in in_range]
        assert conn.execute("SELECT count(*) FROM quarantine.co2_landed").fetchone()[0] == 0

    # 5. Checks ran: they pass, except where the data breaks the user's rules.
    raw_checks, cleaned_checks = latest_checks(instance, "raw/co2"), latest_checks(instance, "cleaned/co2")
    assert set(raw_checks) == set(CHECK_NAMES["raw"]) and set(cleaned_checks) == set(CHECK_NAMES["cleaned"])
    # The package file "became available" when it was installed: raw is allowed 1 h after that, so the
    # freshness verdict depends on the age of the environment, not on the data.
    on_time = raw_checks.pop("newest_source_partition_on_time")
    installed_hours_ago = (time.time() - CO2_CSV.stat().st_mtime) / 3600
    if installed_hours_ago < 0.95 or installed_hours_ago > 1.05:
        assert on_time.passed == (installed_hours_ago < 1), (installed_hours_ago, on_time.description)
    assert raw_checks and all(e.passed for e in raw_checks.values()), {n: e.description for n, e in raw_checks.items()}
    failing = {name for name, e in cleaned_checks.items() if not e.passed}
    # CO2 rises every spring (the seasonal cycle), so March drifts from the February reference.
    assert failing == {"no_rows_quarantined", "null_rates_within_contract", "monitored_columns_drift"}, failing
    nulls = cleaned_checks["null_rates_within_contract"].description
    assert all(day.isoformat() in nulls for day in empty), nulls
    assert too_high[0][0].isoformat() in cleaned_checks["no_rows_quarantined"].description
    # Freshness and drift results exist, with what they measured.
    assert "expected_partition" in cleaned_checks["newest_source_partition_on_time"].metadata
    drift = cleaned_checks["monitored_columns_drift"]
    assert "1984-03-24" in drift.description and f"{REFERENCE[0]}..{REFERENCE[1]}" in drift.description
    assert instance.get_latest_materialization_event(AssetKey(["monitoring", "co2_drift"])) is not None

    # 6. The catalog export has the new datasets, with their checks and materialized partitions.
    output = tmp_path / "catalog.jsonl"
    cli("catalog", "--output", str(output), env=env)
    catalog = {record["key"]: record for record in map(json.loads, output.read_text().splitlines())}
    for key in ("raw/co2", "cleaned/co2", "raw/co2_landed", "cleaned/co2_landed", "monitoring/co2_drift"):
        assert key in catalog, sorted(catalog)
    cleaned_entry = catalog["cleaned/co2"]
    assert cleaned_entry["table"] == "cleaned.co2"
    assert cleaned_entry["description"].startswith("Rows of co2.csv.")
    assert [c["name"] for c in cleaned_entry["column_schema"]] == ["day", "date", "co2"]
    assert cleaned_entry["materialized_partitions"] == (LAST - FIRST).days + 1
    rows_by_day = {p["partition"]: p["row_count"] for p in cleaned_entry["partitions"]}
    assert rows_by_day["1984-03-24"] == 1 and rows_by_day[too_high[0][0].isoformat()] == 0
    assert "monitored_columns_drift" in json.dumps(cleaned_entry["checks"])
