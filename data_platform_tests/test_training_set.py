"""Training set snapshots: content-addressed, immutable, digest over every row."""

from __future__ import annotations

import os

import pytest

from data_platform import training_set
from data_platform.runner import materialize_days
from data_platform_tests.ml_fixtures import seeded_home, seeded_warehouse  # noqa: F401  (fixtures)


def test_snapshots_are_content_addressed_immutable_and_hash_every_row(seeded_home, instance, resources, warehouse):
    materialize_days(["features/flight_features"], "2013-01-01", "2013-01-21", instance=instance, resources=resources)
    with warehouse() as conn:
        frame = training_set.read_feature_window(conn, *map(__import__("datetime").date.fromisoformat, ("2013-01-01", "2013-01-21")))
    assert len(frame) > 15_000

    snapshot = training_set.write_snapshot(frame)
    assert snapshot.path.parent == seeded_home / "snapshots" and snapshot.path.stem == snapshot.digest
    assert snapshot.rows == len(frame)
    assert oct(snapshot.path.stat().st_mode & 0o777) == oct(0o444)
    # Row order does not matter; the same rows give the same file, which is not rewritten.
    mtime = snapshot.path.stat().st_mtime_ns
    again = training_set.write_snapshot(frame.sample(frac=1.0, random_state=1))
    assert again == snapshot and snapshot.path.stat().st_mtime_ns == mtime
    # One value in a row past the first 10,000 (all MLflow's own digest looks at) changes the digest.
    changed = frame.copy()
    changed.loc[15_000, "wx_temp"] = changed.loc[15_000, "wx_temp"] + 0.1
    assert training_set.digest(training_set.canonical(changed)) != snapshot.digest
    # Reading verifies content against the digest.
    assert training_set.read_snapshot(snapshot.path, snapshot.digest).equals(training_set.canonical(frame))
    os.chmod(snapshot.path, 0o644)
    training_set.canonical(changed).to_parquet(snapshot.path, index=False)
    with pytest.raises(training_set.SnapshotError, match="does not match its digest"):
        training_set.read_snapshot(snapshot.path, snapshot.digest)


def test_a_registered_model_reads_its_training_set_back_bit_for_bit_after_the_tables_changed(
        seeded_home, instance, resources, warehouse, monkeypatch, capsys):
    import datetime as dt
    import json

    from data_platform.__main__ import main
    from data_platform.mlflow_store import MlflowStore
    from data_platform.resources import build_resources
    from data_platform.storage import delta
    from data_platform_tests.test_ml import SMALL, WINDOWS, model_metadata, train

    materialize_days(["features/flight_features"], "2013-01-01", "2013-01-21", instance=instance, resources=resources)
    trained = train(instance, resources, **WINDOWS, **SMALL)
    version = model_metadata(trained)["model_version"]
    store = MlflowStore.from_env()
    tags = store.client().get_run(store.client().get_model_version(store.model_name, version).run_id).data.tags
    assert json.loads(tags[training_set.TABLE_VERSIONS_TAG]) == {"features.flight_features": 0}

    # the tables change under it: the same days re-run on half of the flights
    monkeypatch.setenv("DATA_PLATFORM_SAMPLE_FRACTION", "0.5")
    materialize_days(["raw/flights", "cleaned/flights", "features/flight_features"], "2013-01-01", "2013-01-21",
                     instance=instance, resources=build_resources())
    with warehouse() as conn:
        now = training_set.read_feature_window(
            conn, dt.date.fromisoformat(WINDOWS["train_first"]), dt.date.fromisoformat(WINDOWS["train_last"]))
    assert training_set.digest(now) != tags[training_set.TRAINING_DIGEST_TAG]

    training, holdout, versions = training_set.read_back(store, version)
    assert versions == {"features.flight_features": 0}
    assert training_set.digest(training) == tags[training_set.TRAINING_DIGEST_TAG]
    assert training_set.digest(holdout) == tags[training_set.HOLDOUT_DIGEST_TAG]
    # the version it was trained on survives a vacuum that keeps nothing else
    monkeypatch.setenv("DATA_PLATFORM_RETENTION_DAYS", "0")
    assert main(["table", "vacuum", "features.flight_features"]) == 0
    assert "kept versions [0] (registered models)" in capsys.readouterr().out
    assert main(["training-set", version]) == 0
    assert f"sha256 {tags[training_set.TRAINING_DIGEST_TAG]} (equal to the recorded digest)" in capsys.readouterr().out
    assert len(delta.history("features.flight_features")) == 2

