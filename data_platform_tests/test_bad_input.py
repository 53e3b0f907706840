"""Bad input never loses data: real landing files, corrupted the ways real drops go wrong.

Every case starts from real bundled rows written as landing files (`landing`: 2013-01-01 as CSV,
2013-01-02 as Parquet), materializes them, then corrupts a file and runs again. A file that cannot
be read fails the run by name and leaves every stored row as it was; a file that can be read has
its cleanable rows cleaned and the rest quarantined with the reason, and the checks name the file,
the column and the rows.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pandas as pd

from data_platform.resources import build_resources
from data_platform.runner import materialize_days, materialize_unpartitioned
from data_platform.ingest import SourceResource
from data_platform_tests.quality_helpers import (
    FLIGHTS,
    REFERENCES,
    WEATHER,
    checks,
    edit_csv,
    per_partition,
    step_failure,
    table_rows,
    write_reference,
)
from data_platform_tests.test_foundation import landing, write_landing_days  # noqa: F401  (landing: a fixture)

JAN_1 = "2013-01-01.csv"


def snapshot(warehouse, day: str) -> dict[str, pd.DataFrame]:
    """Every stored row of `day`, bookkeeping of the writing run excluded."""
    with warehouse() as conn:
        return {
            table: conn.execute(
                f"SELECT * EXCLUDE (_ingested_at, _run_id) FROM {table} WHERE day = ? ORDER BY ALL"
                if table.startswith("raw.") else f"SELECT * FROM {table} WHERE day = ? ORDER BY ALL",
                [day],
            ).df()
            for table in ("raw.flights", "cleaned.flights", "raw.weather", "cleaned.weather")
        }


def assert_unchanged(before: dict, after: dict) -> None:
    for table, rows in before.items():
        assert len(rows) > 0, table
        pd.testing.assert_frame_equal(rows, after[table], obj=table)


# --- files that cannot be read: the run fails by name, nothing stored changes ----------------------

def _truncate_mid_line(path: Path) -> list[str]:
    data = path.read_bytes()
    cut = data.index(b",", len(data) * 2 // 3)  # inside a line, after a field separator
    path.write_bytes(data[:cut])
    line = data.count(b"\n", 0, cut) + 1
    return ["malformed CSV", f"line {line} has"]


def _not_utf8(path: Path) -> list[str]:
    lines = path.read_bytes().split(b"\n")
    lines[3] = lines[3].replace(b",UA,", b",U\xc1,").replace(b",B6,", b",B\xc1,").replace(b",AA,", b",A\xc1,")
    path.write_bytes(b"\n".join(lines))
    return ["not UTF-8 text (line 4"]


def _unterminated_quote(path: Path) -> list[str]:
    with path.open("a") as handle:
        handle.write('2013,1,1,"517\n')
    return ["malformed CSV at line", "unexpected end of data"]


def _symlink_escape(path: Path) -> list[str]:
    outside = path.parent.parent.parent / "outside"
    outside.mkdir(exist_ok=True)
    shutil.copy(path, outside / path.name)
    path.unlink()
    path.symlink_to(Path("..") / ".." / "outside" / path.name)  # a relative link climbing out with ..
    return ["refused", "outside"]


def _folder_escape(path: Path) -> list[str]:
    folder = path.parent
    outside = folder.parent.parent / "outside_folder"
    shutil.copytree(folder, outside)
    shutil.rmtree(folder)
    folder.symlink_to(outside, target_is_directory=True)
    return ["refused", "outside"]


UNREADABLE = {
    "missing-column": lambda path: edit_csv(path, lambda f: f.drop(columns=["dest"]))
    or ["missing required column(s) ['dest']"],
    "extra-column": lambda path: edit_csv(path, lambda f: f.assign(gate="B12"))
    or ["unexpected column(s) ['gate']"],
    "repeated-column": lambda path: edit_csv(path, lambda f: f.rename(columns={"dest": "origin"}))
    or ["['origin'] appear more than once"],
    "empty-file": lambda path: path.write_bytes(b"") or ["file is empty"],
    "truncated-mid-line": _truncate_mid_line,
    "unterminated-quote": _unterminated_quote,
    "not-utf8": _not_utf8,
    "symlink-escaping-with-dotdot": _symlink_escape,
    "folder-symlinked-outside": _folder_escape,
}


def test_an_unreadable_file_fails_the_run_by_name_and_changes_nothing_stored(landing, instance, warehouse, subtests):
    good = materialize_days([*FLIGHTS, *WEATHER], "2013-01-01", "2013-01-02", instance=instance,
                            resources=build_resources())
    assert good.success
    before = {day: snapshot(warehouse, day) for day in ("2013-01-01", "2013-01-02")}
    pristine = landing.parent / "pristine"
    shutil.copytree(landing, pristine)

    for case, corrupt in UNREADABLE.items():
        with subtests.test(case=case):
            bad_file = landing / "flights" / JAN_1
            expected = corrupt(bad_file)
            failed = materialize_days(FLIGHTS, "2013-01-01", "2013-01-02", instance=instance,
                                      resources=build_resources(), raise_on_error=False)

            assert not failed.success
            error = step_failure(failed)
            assert f"{bad_file}:" in error, error
            for text in expected:
                assert text in error, error
            # The whole range is refused: 2013-01-02 (a good Parquet file) is not rewritten either.
            assert not failed.get_asset_materialization_events()
            for day, rows in before.items():
                assert_unchanged(rows, snapshot(warehouse, day))
        for path in (landing / "flights", landing / "flights" / JAN_1):
            if path.is_symlink():
                path.unlink()
        shutil.rmtree(landing, ignore_errors=True)
        shutil.copytree(pristine, landing)


# --- files that can be read: clean what can be cleaned, quarantine the rest, name it all -----------

FLIGHT_DEFECTS = {  # data row -> (column, bad text, reason expected in quarantine)
    4: ("dep_delay", "late", "dep_delay: late is not a valid DOUBLE"),
    6: ("carrier", "", "carrier is missing"),
    8: ("distance", "-5", "distance: -5 not between 1 and 6000"),
    10: ("origin", "XYZ", "origin: XYZ not one of EWR, JFK, LGA"),
    12: ("time_hour", "2013-01-01T1", "time_hour: 2013-01-01T1 is not a valid TIMESTAMPTZ"),
    14: ("month", "13", "the row's date (make_date(year, month, day_of_month)) is not a date"),
}
DUPLICATED_ROW = 21


def _corrupt_flights(frame: pd.DataFrame) -> pd.DataFrame:
    for row, (column, text, _) in FLIGHT_DEFECTS.items():
        frame.loc[row - 1, column] = text
    return pd.concat([frame, frame.iloc[[DUPLICATED_ROW - 1]]], ignore_index=True)


def _corrupt_weather(frame: pd.DataFrame) -> pd.DataFrame:
    frame.loc[2, "wind_speed"] = "999"   # implausible: nulled, row kept
    frame.loc[4, "humid"] = "150"        # implausible: nulled, row kept
    frame.loc[6, "temp"] = "n/a"         # not a number: row quarantined
    return frame


def test_bad_rows_are_cleaned_or_quarantined_and_the_checks_name_file_column_and_row(landing, instance, warehouse):
    good = materialize_days([*FLIGHTS, *WEATHER], "2013-01-01", "2013-01-02", instance=instance,
                            resources=build_resources())
    assert good.success
    january_2 = snapshot(warehouse, "2013-01-02")
    edit_csv(landing / "flights" / JAN_1, _corrupt_flights)
    edit_csv(landing / "weather" / JAN_1, _corrupt_weather)

    result = materialize_days([*FLIGHTS, *WEATHER], "2013-01-01", "2013-01-02", instance=instance,
                              resources=build_resources())

    assert result.success  # nothing blocking failed: the cleaned tables are sound
    assert_unchanged(january_2, snapshot(warehouse, "2013-01-02"))
    with warehouse() as conn:
        quarantined = dict(conn.execute(
            "SELECT _source_row, reason FROM quarantine.flights WHERE day = DATE '2013-01-01' AND _source_uri LIKE ?",
            [f"%/{JAN_1}"],
        ).fetchall())
        raw_late = conn.execute("SELECT dep_delay FROM raw.flights WHERE day = DATE '2013-01-01' AND _source_row = 4").fetchone()
        counts = conn.execute(
            "SELECT (SELECT count(*) FROM raw.flights WHERE day = DATE '2013-01-01'), "
            "(SELECT count(*) FROM cleaned.flights WHERE day = DATE '2013-01-01')"
        ).fetchone()
        nulled = conn.execute(
            "SELECT wind_speed, humid, temp, nulled_values FROM cleaned.weather "
            "WHERE day = DATE '2013-01-01' AND nulled_values IS NOT NULL ORDER BY observed_at"
        ).fetchall()
        weather_reasons = conn.execute("SELECT _source_row, reason FROM quarantine.weather").fetchall()

    # Raw keeps every row as the source sent it; cleaned has the rest, once each.
    assert raw_late == ("late",)
    assert counts == (842 + 1, 842 - len(FLIGHT_DEFECTS))
    assert set(quarantined) == set(FLIGHT_DEFECTS)
    for row, (_, _, reason) in FLIGHT_DEFECTS.items():
        assert reason in quarantined[row]
    assert [(n[0], n[3]) for n in nulled] == [
        (None, "wind_speed=999 (outside plausible 0..150)"),
        (nulled[1][0], "humid=150 (outside plausible 0..100)"),
    ]
    assert nulled[1][1] is None and nulled[0][2] is not None  # only the implausible value is gone
    assert weather_reasons == [(7, "temp: n/a is not a valid DOUBLE (a decimal number without exponent or other notation)")]

    found = checks(result)
    contract = found[("raw/flights", "matches_raw_contract")]
    assert not contract.passed and contract.severity.value == "WARN"
    verdicts = per_partition(contract)
    assert not verdicts["2013-01-01"]["passed"] and verdicts["2013-01-02"]["passed"]
    assert {"dep_delay", "carrier", "time_hour"} <= {r["column"] for r in table_rows(contract, "failures_by_check_and_column")}
    sample = {r["row"].split(" (")[0]: r for r in table_rows(contract, "failure_sample")}
    assert sample[f"{JAN_1} row 4"]["column"] == "dep_delay" and sample[f"{JAN_1} row 4"]["value"] == "late"

    duplicates = found[("raw/flights", "no_duplicate_keys")]
    assert not duplicates.passed
    assert f"{JAN_1} row {DUPLICATED_ROW}, {JAN_1} row 843" in per_partition(duplicates)["2013-01-01"]["detail"]

    quarantine = found[("cleaned/flights", "no_rows_quarantined")]
    assert not quarantine.passed and quarantine.severity.value == "WARN"
    assert quarantine.description.startswith("FAILED on 1 of 2 partition(s) — 2013-01-01: 6 row(s) quarantined")
    assert "1 x dep_delay: is not a valid DOUBLE" in quarantine.description
    assert {(r["file"].rsplit("/", 1)[-1], r["row"]) for r in table_rows(quarantine, "quarantine_sample")} == \
        {(JAN_1, row) for row in FLIGHT_DEFECTS}

    conserved = per_partition(found[("cleaned/flights", "rows_conserved")])["2013-01-01"]
    assert conserved["detail"] == "raw 843 = cleaned 836 + quarantined 6 + duplicates removed 1"
    assert found[("cleaned/flights", "rows_conserved")].passed
    for asset in ("cleaned/flights", "cleaned/weather"):
        assert found[(asset, "matches_cleaned_contract")].passed, asset
        assert found[(asset, "key_unique")].passed, asset

    implausible = found[("cleaned/weather", "no_implausible_values_nulled")]
    assert not implausible.passed
    assert "wind_speed=999 (outside plausible 0..150)" in per_partition(implausible)["2013-01-01"]["detail"]
    assert "temp: is not a valid DOUBLE" in found[("cleaned/weather", "no_rows_quarantined")].description


# --- what only a check can see ---------------------------------------------------------------------

def test_stray_landing_files_are_named_and_the_partitions_read_are_unaffected(landing, instance, warehouse):
    folder = landing / "flights"
    outside = landing.parent / "elsewhere.csv"
    shutil.copy(folder / JAN_1, outside)
    strays = {
        "2013-1-5.csv": "file name is not a date",
        "20130105.csv": "file name is not written YYYY-MM-DD (would be 2013-01-05.csv)",
        "2014-01-01.csv": "date 2014-01-01 lies outside the partition range 2013-01-01..2013-12-31",
        "notes.txt": "unsupported file type .txt",
        "2013-01-01.parquet": "ignored: 2013-01-01.csv for the same day is read instead",
        "2013-01-03.csv": "refused",
    }
    for name in strays:
        if name == "2013-01-03.csv":
            (folder / name).symlink_to(Path("..") / ".." / outside.name)
        else:
            shutil.copy(folder / JAN_1, folder / name)

    result = materialize_days(FLIGHTS, "2013-01-01", "2013-01-02", instance=instance, resources=build_resources())

    assert result.success
    stray_check = checks(result)[("raw/flights", "landing_files_all_ingestible")]
    assert not stray_check.passed and stray_check.severity.value == "WARN"
    verdicts = {Path(key).name: value["detail"] for key, value in per_partition(stray_check).items()}
    assert set(verdicts) == set(strays)
    for name, reason in strays.items():
        assert verdicts[name].startswith(reason), (name, verdicts[name])
    assert stray_check.description.startswith(f"6 file(s) in {folder} will never be ingested.")
    with warehouse() as conn:
        assert conn.execute("SELECT count(*) FROM raw.flights").fetchone()[0] == 842 + 943


def test_a_file_cut_at_a_line_boundary_fails_the_volume_check(tmp_path, monkeypatch, platform_home, instance, warehouse):
    landing_dir = tmp_path / "landing"
    write_landing_days(landing_dir, "flights", "2013-01-01", "2013-01-17")
    monkeypatch.setenv("DATA_PLATFORM_LANDING_DIR", str(landing_dir))
    first = materialize_days(["raw/flights"], "2013-01-01", "2013-01-17", instance=instance, resources=build_resources())
    assert checks(first)[("raw/flights", "volume_within_day_of_week_baseline")].passed
    with warehouse() as conn:
        earlier = conn.execute("SELECT * EXCLUDE (_ingested_at, _run_id) FROM raw.flights WHERE day < DATE '2013-01-17' ORDER BY ALL").df()

    path = landing_dir / "flights" / "2013-01-17.csv"
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[: len(lines) * 2 // 5]))  # a clean cut: every line it keeps is whole
    result = materialize_days(["raw/flights"], "2013-01-17", instance=instance, resources=build_resources())

    assert result.success  # the file itself is well-formed: only the volume check can tell
    volume = checks(result)[("raw/flights", "volume_within_day_of_week_baseline")]
    assert not volume.passed and volume.severity.value == "WARN"
    verdict = per_partition(volume)["2013-01-17"]
    # Thursday 2013-01-17 against the other stored Thursdays, 2013-01-03 and 2013-01-10.
    thursdays = [len(SourceResource().read_daily("flights", day, day)) for day in (dt.date(2013, 1, 3), dt.date(2013, 1, 10))]
    baseline = sum(thursdays) / 2
    assert verdict["baseline"] == baseline and verdict["rows"] == len(lines) * 2 // 5 - 1
    assert f"of the Thursday baseline {baseline:g} (median of 2013-01-03, 2013-01-10); allowed 80%..130%" in verdict["detail"]
    assert volume.description.startswith("FAILED on 1 of 1 partition(s) — 2013-01-17:")
    with warehouse() as conn:
        after = conn.execute("SELECT * EXCLUDE (_ingested_at, _run_id) FROM raw.flights WHERE day < DATE '2013-01-17' ORDER BY ALL").df()
    pd.testing.assert_frame_equal(earlier, after)


def test_reference_tables_missing_rows_fail_the_reference_checks(landing, instance):
    write_reference(landing, "airlines", lambda frame: frame[frame["carrier"] != "UA"])
    write_reference(landing, "airports")
    write_reference(landing, "planes", lambda frame: frame.iloc[: len(frame) // 10])
    assert materialize_unpartitioned(REFERENCES, instance=instance, resources=build_resources()).success

    result = materialize_days(FLIGHTS, "2013-01-01", "2013-01-02", instance=instance, resources=build_resources())

    sent = SourceResource().read_daily("flights", dt.date(2013, 1, 1), dt.date(2013, 1, 2))
    united = sent[sent["carrier"] == "UA"].groupby("day").size()
    found = checks(result)
    carriers = found[("cleaned/flights", "carrier_known_in_airlines")]
    assert not carriers.passed and carriers.severity.value == "ERROR"
    assert {r["code"]: r["rows"] for r in table_rows(carriers, "unknown_codes")} == {"UA": united.sum()}
    share = united[dt.date(2013, 1, 1)] / 842
    assert f"{united[dt.date(2013, 1, 1)]} of 842 rows ({share:.1%}) have a carrier not in cleaned.airlines: UA" \
        in per_partition(carriers)["2013-01-01"]["detail"]
    tailnums = found[("cleaned/flights", "tailnum_known_in_planes")]
    assert not tailnums.passed and tailnums.severity.value == "WARN"
    assert sorted(per_partition(tailnums)) == ["2013-01-01", "2013-01-02"]
    assert all(not verdict["passed"] and verdict["unknown_share"] > 0.25 for verdict in per_partition(tailnums).values())
    dests = found[("cleaned/flights", "dest_known_in_airports")]
    assert dests.passed  # the real gaps (Puerto Rico, Virgin Islands) stay under the limit
    assert {r["code"] for r in table_rows(dests, "unknown_codes")} <= {"BQN", "SJU", "STT", "PSE"}
    assert result.success  # reference checks do not block: the flights are valid rows
