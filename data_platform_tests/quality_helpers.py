"""Helpers for the quality, bad-input and catalog tests: reading check results and landing files."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from data_platform.ingest import SourceResource, source_columns

FLIGHTS = ["raw/flights", "cleaned/flights"]
WEATHER = ["raw/weather", "cleaned/weather"]
REFERENCES = [f"{layer}/{table}" for layer in ("raw", "cleaned") for table in ("airports", "airlines", "planes")]


def checks(result) -> dict:
    """(asset, check name) -> the check's evaluation in a run."""
    return {(e.asset_key.to_user_string(), e.check_name): e for e in result.get_asset_check_evaluations()}


def per_partition(evaluation) -> dict[str, dict]:
    """A check's per-partition verdicts: partition -> {passed, detail, figures...}."""
    return {record.data["partition"]: record.data for record in evaluation.metadata["per_partition"].value.records}


def table_rows(evaluation, name: str) -> list[dict]:
    return [record.data for record in evaluation.metadata[name].value.records]


def step_failure(result) -> str:
    failure = next(event for event in result.all_events if event.event_type_value == "STEP_FAILURE")
    return failure.event_specific_data.error.message


def write_reference(landing: Path, table: str, keep=lambda frame: frame) -> pd.DataFrame:
    """A real reference table as a landing file, optionally with rows removed by `keep`."""
    frame = keep(SourceResource().read_reference(table)[source_columns(table)])
    landing.mkdir(parents=True, exist_ok=True)
    frame.to_csv(landing / f"{table}.csv", index=False, na_rep="NA")
    return frame


def edit_csv(path: Path, edit) -> None:
    """Rewrite a landing CSV through `edit(frame) -> frame`, every value kept as the text it was."""
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    edit(frame).to_csv(path, index=False)
