"""Training set snapshots: immutable, content-addressed Parquet files of feature rows.

The rows a model trains on (a window of feature partitions) are written once to
`$DATA_PLATFORM_HOME/snapshots/<digest>.parquet`. The digest is a SHA-256 over every row (MLflow's
own dataset digest hashes only the first 10,000) after putting the frame in its canonical form:
contract column order, contract dtypes, rows sorted by the flight key. It is the training set's
version: MLflow records it as the input dataset's digest, and reading a snapshot verifies it.

`load_champion_reference(mlflow)` returns the champion model's training snapshot (the reference for
drift monitoring), or None while no model is champion.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from data_platform import contracts
from data_platform.features import CONTRACT as FEATURES_CONTRACT
from data_platform.settings import home_path

SNAPSHOT_DIR = "snapshots"
KEY = ["day", "carrier", "flight", "origin"]  # the flight key (features.FLIGHT_KEY)
# Tags and params the model run records, read back to find a run's snapshots.
TRAINING_DIGEST_TAG = "training_set.digest"
TRAINING_PATH_TAG = "training_set.path"
HOLDOUT_DIGEST_TAG = "holdout_set.digest"
HOLDOUT_PATH_TAG = "holdout_set.path"
TABLE_VERSIONS_TAG = "training_set.table_versions"   # JSON {table: version} of every table the model read


class SnapshotError(Exception):
    """A snapshot that is missing or whose content no longer matches its digest."""


@dataclass(frozen=True)
class Snapshot:
    path: Path
    digest: str
    rows: int


def canonical(frame: pd.DataFrame, contract=FEATURES_CONTRACT) -> pd.DataFrame:
    """The frame in contract column order and dtypes, rows sorted by the flight key. Columns already
    in their dtype and rows already in order are not copied (a training window holds millions of rows)."""
    import pandas as pd

    columns = {}
    for name, col in contract.columns.items():
        values = frame[name]
        sql = contracts.sql_type(col)
        if sql == "VARCHAR":
            if values.dtype != object or values.isna().sum() != (values.to_numpy() == None).sum():  # noqa: E711
                values = values.astype(object).where(values.notna(), None)
        elif sql in ("INTEGER", "BIGINT"):
            values = values.astype("Int64", copy=False)
        elif sql == "DOUBLE":
            values = values.astype("float64", copy=False)
        elif sql == "BOOLEAN":
            values = values.astype("boolean", copy=False)
        elif sql == "DATE":
            values = pd.to_datetime(values).astype("datetime64[ns]", copy=False)
        elif sql == "TIMESTAMPTZ":
            values = pd.to_datetime(values, utc=True).astype("datetime64[ns, UTC]", copy=False)
        columns[name] = values.reset_index(drop=True)
    result = pd.DataFrame(columns, copy=False)
    if pd.MultiIndex.from_frame(result[KEY]).is_monotonic_increasing:
        return result
    return result.sort_values(KEY, kind="mergesort").reset_index(drop=True)


def digest(frame: pd.DataFrame) -> str:
    """SHA-256 over column names, dtypes and every row of a canonical frame."""
    import pandas as pd

    hasher = hashlib.sha256()
    hasher.update(repr([(name, str(dtype)) for name, dtype in frame.dtypes.items()]).encode())
    hasher.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return hasher.hexdigest()


def snapshot_dir() -> Path:
    path = home_path(SNAPSHOT_DIR)
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_snapshot(frame: pd.DataFrame) -> Snapshot:
    """Write the rows once under their digest (an existing snapshot is reused, never rewritten)."""
    frame = canonical(frame)
    content = digest(frame)
    path = snapshot_dir() / f"{content}.parquet"
    if not path.exists():
        handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        os.close(handle)
        try:
            frame.to_parquet(temporary, index=False)
            os.chmod(temporary, 0o444)
            os.replace(temporary, path)  # atomic: readers see no file or the whole file
        finally:
            if os.path.exists(temporary):
                os.remove(temporary)
    return Snapshot(path=path, digest=content, rows=len(frame))


def read_snapshot(path: str | Path, expected_digest: Optional[str] = None) -> pd.DataFrame:
    """A snapshot's rows; with `expected_digest`, refuses content that does not match it."""
    import pandas as pd

    path = Path(path)
    if not path.exists():
        raise SnapshotError(f"snapshot {path} does not exist")
    frame = canonical(pd.read_parquet(path))
    if expected_digest is not None and digest(frame) != expected_digest:
        raise SnapshotError(f"snapshot {path} does not match its digest {expected_digest}: it was modified")
    return frame


def read_feature_window(conn, first: dt.date, last: dt.date) -> pd.DataFrame:
    """Feature rows of days first..last from the warehouse, canonical (sorted and typed on the way in:
    Arrow to pandas holds a window once, where DuckDB's own conversion held it about twice)."""
    import pandas as pd
    import pyarrow as pa

    conn.complete()  # a relation's result needs the connection free of an earlier, unfinished one
    table = conn.sql(f"SELECT * FROM {FEATURES_CONTRACT.name} WHERE day BETWEEN ? AND ? ORDER BY {', '.join(KEY)}",
                     params=[first, last]).to_arrow_table()
    nullable = {pa.int8(): pd.Int64Dtype(), pa.int16(): pd.Int64Dtype(), pa.int32(): pd.Int64Dtype(),
                pa.int64(): pd.Int64Dtype(), pa.bool_(): pd.BooleanDtype()}
    frame = table.to_pandas(types_mapper=nullable.get, date_as_object=False, self_destruct=True, split_blocks=True)
    del table
    return canonical(frame)


def stored_feature_days(conn) -> list[dt.date]:
    """Every day with feature rows, oldest first."""
    from data_platform.storage import table_exists

    if not table_exists(conn, FEATURES_CONTRACT.name):
        return []
    return [row[0] for row in conn.execute(f"SELECT DISTINCT day FROM {FEATURES_CONTRACT.name} ORDER BY day").fetchall()]


def missing_feature_days(conn, first: dt.date, last: dt.date) -> list[dt.date]:
    """Days of first..last without feature rows (never materialized, or failed upstream)."""
    from data_platform.partitions import days_between
    from data_platform.storage import table_exists

    if not table_exists(conn, FEATURES_CONTRACT.name):
        return days_between(first, last)
    present = {
        row[0] for row in conn.execute(
            f"SELECT DISTINCT day FROM {FEATURES_CONTRACT.name} WHERE day BETWEEN ? AND ?", [first, last]
        ).fetchall()
    }
    return [day for day in days_between(first, last) if day not in present]


def run_snapshots(mlflow_store, run_id: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(training rows, holdout rows) recorded by an MLflow model run, digests verified."""
    tags = mlflow_store.client().get_run(run_id).data.tags
    training = read_snapshot(tags[TRAINING_PATH_TAG], tags[TRAINING_DIGEST_TAG])
    holdout = read_snapshot(tags[HOLDOUT_PATH_TAG], tags[HOLDOUT_DIGEST_TAG])
    return training, holdout


def load_champion_reference(mlflow_resource) -> pd.DataFrame | None:
    """The training snapshot of the model holding the `champion` alias, or None without champion.

    The frame has the features contract's columns (FLIGHT_KEY, CATEGORICAL_FEATURES,
    NUMERICAL_FEATURES, LABEL of data_platform.features, plus bookkeeping columns).
    """
    version = mlflow_resource.version_by_alias()
    if version is None or not version.run_id:
        return None
    tags = mlflow_resource.client().get_run(version.run_id).data.tags
    return read_snapshot(tags[TRAINING_PATH_TAG], tags.get(TRAINING_DIGEST_TAG))


def pinned_table_versions(mlflow_store) -> dict[str, list[int]]:
    """Table versions that a registered model version was trained on: never vacuumed."""
    import json

    mlflow_store.setup()
    client = mlflow_store.client()
    pinned: dict[str, list[int]] = {}
    for version in client.search_model_versions(f"name = '{mlflow_store.model_name}'"):
        tags = client.get_run(version.run_id).data.tags if version.run_id else {}
        for table, number in json.loads(tags.get(TABLE_VERSIONS_TAG, "{}")).items():
            pinned.setdefault(table, []).append(int(number))
    return pinned


def read_back(mlflow_store, model_version: str) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, int]]:
    """(training rows, holdout rows, table versions) of a registered model version, read from the
    tables at the versions it was trained on; raises SnapshotError when they differ from its digests."""
    import json

    from data_platform import storage

    mlflow_store.setup()
    client = mlflow_store.client()
    try:
        version = client.get_model_version(mlflow_store.model_name, str(model_version))
    except Exception as error:
        raise SnapshotError(f"registered model {mlflow_store.model_name!r} has no version {model_version}") from error
    run = client.get_run(version.run_id)
    tags, params = run.data.tags, run.data.params
    if TABLE_VERSIONS_TAG not in tags:
        raise SnapshotError(f"version {model_version} of {mlflow_store.model_name!r} was trained before table "
                            "versions were recorded; its snapshot files are its only copy of the training set")
    versions = {table: int(number) for table, number in json.loads(tags[TABLE_VERSIONS_TAG]).items()}
    windows = [dt.date.fromisoformat(params[name]) for name in ("train_first", "train_last", "holdout_first", "holdout_last")]
    with storage.connection() as conn:
        for table, number in versions.items():
            storage.attach(conn, table, version=number)
        training = read_feature_window(conn, windows[0], windows[1])
        holdout = read_feature_window(conn, windows[2], windows[3])
    for name, frame, tag in (("training", training, TRAINING_DIGEST_TAG), ("holdout", holdout, HOLDOUT_DIGEST_TAG)):
        if digest(frame) != tags[tag]:
            raise SnapshotError(f"the {name} set read at table versions {versions} does not match the digest "
                                f"model version {model_version} recorded ({tags[tag][:12]}...)")
    return training, holdout, versions


def read_back_command(model_version: str, output: Optional[str]) -> int:
    """`python -m data_platform training-set MODEL_VERSION`."""
    import sys

    from data_platform.mlflow_store import MlflowStore
    from data_platform.storage import StorageError

    try:
        training, holdout, versions = read_back(MlflowStore.from_env(), model_version)
    except (SnapshotError, StorageError) as error:
        print(f"training-set: {error}", file=sys.stderr)
        return 1
    print(f"model version {model_version}: read at " + ", ".join(f"{t} version {v}" for t, v in versions.items()))
    for name, frame in (("training", training), ("holdout", holdout)):
        print(f"{name}: {len(frame):,} rows, {frame['day'].min():%Y-%m-%d}..{frame['day'].max():%Y-%m-%d}, "
              f"sha256 {digest(frame)} (equal to the recorded digest)")
        if output:
            path = Path(output) / f"{name}_set_v{model_version}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            frame.to_parquet(path, index=False)
            print(f"  written to {path}")
    return 0
