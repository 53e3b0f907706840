"""Every online prediction, logged: request, features, probability, model version, time.

JSON Lines, one file per flight day: `$DATA_PLATFORM_HOME/online/predictions/<YYYY-MM-DD>.jsonl`, so the
daily skew check (`online_features_match_offline`) reads exactly the days it compares. Lines are
appended by the service's single event-loop thread and flushed per request.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import IO, Iterable, Optional

LOG_DIR = ("online", "predictions")


def log_dir() -> Path:
    from data_platform.settings import home_path

    path = home_path(*LOG_DIR)
    path.mkdir(parents=True, exist_ok=True)
    return path


class PredictionLog:
    """Appends records to the file of their flight day; keeps the files open."""

    def __init__(self, directory: Optional[Path] = None):
        self.directory = directory or log_dir()
        self._files: dict[str, IO[str]] = {}

    def write(self, records: Iterable[dict]) -> None:
        touched = set()
        for record in records:
            day = record["features"]["day"]
            handle = self._files.get(day)
            if handle is None:
                handle = self._files[day] = open(self.directory / f"{day}.jsonl", "a", encoding="utf-8")
            handle.write(json.dumps(record, separators=(",", ":")) + "\n")
            touched.add(day)
        for day in touched:
            self._files[day].flush()

    def close(self) -> None:
        for handle in self._files.values():
            handle.close()
        self._files.clear()


def read_records(days: Optional[list[str]] = None, directory: Optional[Path] = None) -> list[dict]:
    """Logged records of the given flight days (every logged day when None)."""
    directory = directory or log_dir()
    paths = sorted(directory.glob("*.jsonl")) if days is None else [directory / f"{day}.jsonl" for day in days]
    records = []
    for path in paths:
        if not os.path.exists(path):
            continue
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                line = line.strip()
                if line:
                    try:
                        records.append(json.loads(line))
                    except json.JSONDecodeError:
                        continue  # a line cut by a crash mid-write
    return records
