"""Every online prediction, logged: request, features, probability, model version, time.

JSON Lines, one file per flight day: `$DATA_PLATFORM_HOME/online/predictions/<YYYY-MM-DD>.jsonl`, so the
daily skew check (`online_features_match_offline`) reads exactly the days it compares. Lines are
appended by one writer thread and flushed per request.
"""

from __future__ import annotations

import json
import os
import queue
import threading
from pathlib import Path
from typing import IO, Iterable, Optional

LOG_DIR = ("online", "predictions")


def log_dir() -> Path:
    from data_platform.settings import home_path

    path = home_path(*LOG_DIR)
    path.mkdir(parents=True, exist_ok=True)
    return path


class PredictionLog:
    """Appends records to the file of their flight day, from a writer thread: a request only queues
    its lines (the answers' JSON text, serialized once for the response and the log).
    `flush()` waits until everything queued is on disk; `close()` drains and closes."""

    def __init__(self, directory: Optional[Path] = None):
        self.directory = directory or log_dir()
        self._files: dict[str, IO[str]] = {}
        self._queue: "queue.Queue[Optional[list[tuple[str, str]]]]" = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    def write(self, lines: list[tuple[str, str]]) -> None:
        """Queue (flight day, JSON record) pairs; the service serializes each answer once and logs
        that text (request, features, probability, model version, time)."""
        self._queue.put(lines)

    def _run(self) -> None:
        while True:
            lines = self._queue.get()
            try:
                if lines is None:
                    return
                self._append(lines)
            except Exception:  # a full disk must not stop serving; the skew check sees the gap
                pass
            finally:
                self._queue.task_done()

    def _append(self, lines: Iterable[tuple[str, str]]) -> None:
        touched = set()
        for day, text in lines:
            handle = self._files.get(day)
            if handle is None:
                handle = self._files[day] = open(self.directory / f"{day}.jsonl", "a", encoding="utf-8")
            handle.write(text + "\n")
            touched.add(day)
        for day in touched:
            self._files[day].flush()

    def flush(self) -> None:
        self._queue.join()

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=30)
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
