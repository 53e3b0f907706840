"""Typing is lossless: a value converts exactly to its column's type or its row is quarantined with the
reason; rows sharing a key are merged only when they are identical.

Real landing files (the bundled 2013-01-01 flights), edited the ways real drops go wrong.
"""

from __future__ import annotations

import pandas as pd

from data_platform.resources import build_resources
from data_platform.runner import materialize_days
from data_platform_tests.quality_helpers import FLIGHTS, checks, edit_csv, per_partition, table_rows
from data_platform_tests.test_foundation import landing  # noqa: F401  (fixture)

JAN_1 = "2013-01-01.csv"
# data row -> (column, text as sent, reason in quarantine)
NOT_EXACT = {
    3: ("dep_time", "517.5", "dep_time: 517.5 is not a valid INTEGER (a whole number without fraction"),
    5: ("dep_delay", "1e3", "dep_delay: 1e3 is not a valid DOUBLE (a decimal number without exponent"),
    7: ("flight", "0x1F", "flight: 0x1F is not a valid INTEGER"),
    9: ("time_hour", "2013-02-30T10:00:00Z", "time_hour: 2013-02-30T10:00:00Z is not a valid TIMESTAMPTZ"),
    10: ("sched_dep_time", "99999999999", "sched_dep_time: 99999999999 is not a valid INTEGER"),
}
WHOLE_WITH_ZERO_FRACTION = 11        # its arr_time written with ".0" (as pandas writes it): exact, accepted
CONFLICT, IDENTICAL = 13, 15         # repeated with a different arr_delay / repeated as it is


def _edit(frame):
    for row, (column, text, _) in NOT_EXACT.items():
        frame.loc[row - 1, column] = text
    frame.loc[WHOLE_WITH_ZERO_FRACTION - 1, "arr_time"] += ".0"
    changed = frame.iloc[[CONFLICT - 1]].copy()
    changed["arr_delay"] = str(int(changed["arr_delay"].iloc[0]) + 30)
    return pd.concat([frame, changed, frame.iloc[[IDENTICAL - 1]]], ignore_index=True)


def test_values_that_do_not_convert_exactly_are_quarantined_and_conflicts_are_never_merged(landing, instance, warehouse):
    edit_csv(landing / "flights" / JAN_1, _edit)
    result = materialize_days(FLIGHTS, "2013-01-01", instance=instance, resources=build_resources())
    assert result.success  # nothing blocking: the cleaned table holds only exact values

    with warehouse() as conn:
        quarantined = dict(conn.execute(
            "SELECT _source_row, reason FROM quarantine.flights WHERE day = DATE '2013-01-01'").fetchall())
        raw_rows = conn.execute("SELECT count(*) FROM raw.flights WHERE day = DATE '2013-01-01'").fetchone()[0]
        arr_time = conn.execute(
            "SELECT c.arr_time, r.arr_time FROM cleaned.flights c JOIN raw.flights r USING (day, carrier, origin) "
            "WHERE r._source_row = ? AND c.flight = CAST(r.flight AS INTEGER)", [WHOLE_WITH_ZERO_FRACTION]).fetchone()
        cleaned_keys = conn.execute(
            "SELECT carrier, flight, origin FROM cleaned.flights WHERE day = DATE '2013-01-01' "
            "GROUP BY ALL HAVING count(*) > 1").fetchall()
        rounded = conn.execute("SELECT count(*) FROM cleaned.flights WHERE dep_time IN (517, 518) "
                               "AND day = DATE '2013-01-01' AND flight = 1545").fetchone()[0]

    # Every value that would only convert by rounding or reinterpreting is refused, with the reason.
    for row, (_, _, reason) in NOT_EXACT.items():
        assert reason in quarantined[row], (row, quarantined.get(row))
    # "849.0" is exactly 849: kept, and raw keeps the text as sent.
    assert arr_time[1].endswith(".0") and arr_time[0] == int(arr_time[1][:-2])
    # The conflicting pair goes to quarantine, both rows, each naming both source locations.
    copy = raw_rows - 1  # the conflicting copy is the second-to-last row of the file
    for row in (CONFLICT, copy):
        assert "conflicting rows for key (carrier, flight, origin, day)" in quarantined[row]
    assert f"{JAN_1} row {CONFLICT}, {JAN_1} row {copy}" in quarantined[CONFLICT]
    assert set(quarantined) == {*NOT_EXACT, CONFLICT, copy}
    assert not cleaned_keys and rounded == 1  # one row per key; 517.5 did not become a second 517/518

    found = checks(result)
    conserved = per_partition(found[("cleaned/flights", "rows_conserved")])["2013-01-01"]
    assert conserved["detail"] == (f"raw {raw_rows} = cleaned {raw_rows - len(NOT_EXACT) - 2 - 1} + "
                                   f"quarantined {len(NOT_EXACT) + 2} + duplicates removed 1")
    # The raw contract check names the same texts, and accepts a whole number written with ".0".
    raw_contract = found[("raw/flights", "matches_raw_contract")]
    flagged = {(r["column"], r["value"]) for r in table_rows(raw_contract, "failure_sample")}
    assert {("dep_time", "517.5"), ("dep_delay", "1e3"), ("flight", "0x1F")} <= flagged
    assert not any(column == "arr_time" for column, _ in flagged)
    assert "conflicting rows for one key" in found[("cleaned/flights", "no_rows_quarantined")].description
