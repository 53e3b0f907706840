"""Run datacontract-cli on contracts, in its own virtual environment (`make .venv-datacontract`).

datacontract-cli pins an older DuckDB than the platform's, so it cannot be imported by the tests:
`run(request)` starts this file with that environment's Python, which reads a JSON request on stdin
and writes the results as JSON on stdout. One process for every contract (each CLI start costs
seconds). Request:

    {"lint": [file, ...], "export_sql": [file, ...], "test": [file, ...],
     "load": {"database": file, "tables": {"cleaned.flights": "folder/of/*.parquet", ...}}}

`load` first copies Parquet files into a DuckDB file written by datacontract-cli's own DuckDB (it
cannot open the platform's DuckDB 2.0 warehouse); the contracts given to `test` point at it.
`export_sql` runs each contract's DDL (the DuckDB dialect) in an empty database and returns the
columns and types it created.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".venv-datacontract"


def run(request: dict, timeout: float = 900) -> dict:
    """The results of `request`, computed by datacontract-cli in its own environment."""
    python = VENV / "bin" / "python"
    if not python.exists():
        raise RuntimeError(f"{python} is missing: run `make datacontract`")
    done = subprocess.run([str(python), __file__], input=json.dumps(request), capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"datacontract-cli run failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _checks(run) -> list[dict]:
    return [{"name": check.name, "result": str(getattr(check.result, "value", check.result)),
             "reason": check.reason, "field": getattr(check, "field", None)} for check in run.checks]


def _main() -> None:
    import duckdb
    from datacontract.data_contract import DataContract

    request = json.loads(sys.stdin.read())
    out = {"lint": {}, "export_sql": {}, "test": {}, "duckdb": duckdb.__version__}
    load = request.get("load")
    if load:
        with duckdb.connect(load["database"]) as conn:
            for table, files in load["tables"].items():
                conn.execute(f"CREATE SCHEMA IF NOT EXISTS {table.split('.')[0]}")
                conn.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM read_parquet(?)", [files])
    for file in request.get("lint", []):
        result = DataContract(data_contract_file=file).lint()
        out["lint"][file] = {"result": str(result.result.value), "checks": _checks(result)}
    for file in request.get("export_sql", []):
        ddl = DataContract(data_contract_file=file).export("sql", sql_server_type="duckdb")
        with duckdb.connect() as conn:
            conn.execute(ddl)
            columns = conn.execute("SELECT table_name, column_name, data_type FROM information_schema.columns "
                                   "ORDER BY table_name, ordinal_position").fetchall()
        out["export_sql"][file] = {"ddl": ddl, "columns": columns}
    for file in request.get("test", []):
        result = DataContract(data_contract_file=file).test()
        out["test"][file] = {"result": str(result.result.value), "checks": _checks(result)}
    print(json.dumps(out, default=str))


if __name__ == "__main__":
    _main()
