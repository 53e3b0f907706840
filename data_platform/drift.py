"""Drift monitoring engine: policies, the reference, per-partition measurement and stored reports.

No Dagster here (the checks in `data_platform.checks.drift` drive it) and no Evidently at import
time: `data_platform.drift_evidently` is imported inside the functions that run a report.

How a partition is judged
- Every column has a policy: its type (declared, never inferred), an effect-size method
  (Wasserstein distance normed by the reference's standard deviation, PSI, Jensen-Shannon distance
  or the KS statistic; never a p-value) and a threshold. Columns that are constant within a daily
  partition by construction (day of week, day of year, ...) are listed with the reason they are not
  scored: one day against months always "drifts" on them.
- Thresholds are fixed numbers or calibrated: a daily partition is one day of weather and of
  trailing delay rates, so it differs from a months-long reference even when nothing changed. A
  calibrated threshold is `max(floor, margin * quantile of the leave-one-day-out scores of the
  reference's own days)`: a partition drifts on a column when it is further from the training data
  than the training days themselves are. The floor is the method's usual default (0.1).
- Severity: no drifted column passes; one or more is WARN; ERROR when the share of drifted columns
  reaches `error_share`, or when a column with an `error_factor` scores that many times its
  threshold.

Speed
- The reference is sampled deterministically (rows ranked by a hash of their key, so the sample
  does not depend on row order) to `reference_rows`; sample and calibrated thresholds are cached on
  disk per reference digest and policy, and in memory per process.
- Each column is scored once, by Evidently's registered stattests, in one report per partition.

Storage, under `$DATA_PLATFORM_HOME/reports/drift/`
- `<check>/<day>.json`: the Evidently snapshot of every checked partition (tens of kilobytes);
- `<check>/<day>.html`: rendered for failing partitions, the latest partition of a run, and on
  request (`python -m data_platform drift-report DAY`); every HTML file loads one shared copy of
  Evidently's JS bundle from `lib/` instead of inlining 4 MB;
- `reference/`: cached reference samples and calibrations;
- `workspace/`: an Evidently workspace rebuilt from the snapshots by
  `python -m data_platform drift-report --workspace`, for `evidently ui`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional


from data_platform.settings import home_path, reports_url

NUMERICAL = "numerical"
CATEGORICAL = "categorical"
KINDS = (NUMERICAL, CATEGORICAL)

# Effect sizes only: each grows with the size of the change, not with the number of rows.
METHODS = {
    "wasserstein": ("Wasserstein distance normed by the reference's standard deviation", (NUMERICAL,)),
    "psi": ("population stability index over reference-binned values", (NUMERICAL, CATEGORICAL)),
    "jensenshannon": ("Jensen-Shannon distance between the binned distributions", (NUMERICAL, CATEGORICAL)),
    "ks_statistic": ("Kolmogorov-Smirnov statistic, the largest gap between the two CDFs", (NUMERICAL,)),
}
DEFAULT_FLOOR = 0.1  # the usual default threshold of all four methods in Evidently
CONFIG_ENV = "DATA_PLATFORM_DRIFT_CONFIG"
REFERENCE_ENV = "DATA_PLATFORM_DRIFT_REFERENCE"
WARN, ERROR = "WARN", "ERROR"


# --- policies ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ColumnPolicy:
    """How one column is compared with the reference."""

    column: str
    kind: str                              # NUMERICAL or CATEGORICAL, declared
    method: Optional[str] = None           # None: not scored (`reason` says why)
    threshold: Optional[float] = None      # fixed threshold; None: calibrated from the reference
    floor: float = DEFAULT_FLOOR           # lowest calibrated threshold
    error_factor: Optional[float] = None   # score >= factor * threshold makes the result ERROR
    reason: str = ""

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"column {self.column}: kind must be one of {KINDS}, got {self.kind!r}")
        if self.method is not None:
            if self.method not in METHODS:
                raise ValueError(
                    f"column {self.column}: method {self.method!r} is not an effect size; use one of {sorted(METHODS)}"
                )
            if self.kind not in METHODS[self.method][1]:
                raise ValueError(f"column {self.column}: {self.method} does not apply to {self.kind} columns")

    @property
    def monitored(self) -> bool:
        return self.method is not None


@dataclass(frozen=True)
class DriftPolicy:
    """Columns, methods, thresholds and severity rule of one drift check."""

    name: str                               # the check name; also the report folder
    columns: tuple[ColumnPolicy, ...]
    key: tuple[str, ...] = ()               # identifies a row; the reference sample hashes it
    error_share: Optional[float] = 0.25     # None: no share rule (a single-column check)
    reference_rows: int = 10_000
    calibration_quantile: float = 1.0
    calibration_margin: float = 1.0
    calibration_days: int = 92

    @property
    def monitored(self) -> list[ColumnPolicy]:
        return [c for c in self.columns if c.monitored]

    def column(self, name: str) -> ColumnPolicy:
        return next(c for c in self.columns if c.column == name)

    def fingerprint(self) -> str:
        """Changes whenever anything that shapes the reference sample or the thresholds changes."""
        payload = json.dumps(dataclasses.asdict(self), sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()[:12]

    def with_overrides(self, overrides: dict) -> "DriftPolicy":
        """A copy with settings and per-column fields replaced, e.g.
        {"error_share": 0.3, "columns": {"wx_temp": {"method": "ks_statistic", "threshold": 0.6}}}."""
        overrides = dict(overrides or {})
        per_column = overrides.pop("columns", {}) or {}
        unknown = set(per_column) - {c.column for c in self.columns}
        if unknown:
            raise ValueError(f"{self.name}: drift settings name unknown column(s) {sorted(unknown)}")
        columns = tuple(
            dataclasses.replace(c, **per_column[c.column]) if c.column in per_column else c for c in self.columns
        )
        return dataclasses.replace(self, columns=columns, **overrides)


def configured(policy: DriftPolicy) -> DriftPolicy:
    """The policy with the overrides of the JSON file named by DATA_PLATFORM_DRIFT_CONFIG, if any.

    The file maps check names to overrides: {"feature_drift": {"error_share": 0.3, "columns":
    {"wx_temp": {"threshold": 3.0}}}}.
    """
    path = os.environ.get(CONFIG_ENV)
    if not path:
        return policy
    with open(Path(path).expanduser(), encoding="utf-8") as handle:
        settings = json.load(handle)
    return policy.with_overrides(settings.get(policy.name, {}))


def reference_window() -> Optional[tuple[dt.date, dt.date]]:
    """DATA_PLATFORM_DRIFT_REFERENCE=FIRST..LAST compares with those feature partitions instead of
    the champion's training set (useful before any model exists); unset or `champion`: the champion."""
    value = os.environ.get(REFERENCE_ENV, "").strip()
    if not value or value == "champion":
        return None
    try:
        first, last = (dt.date.fromisoformat(part) for part in value.split(".."))
    except ValueError:
        raise ValueError(f"{REFERENCE_ENV} must be 'champion' or FIRST..LAST (YYYY-MM-DD), got {value!r}") from None
    if first > last:
        raise ValueError(f"{REFERENCE_ENV}: {first} is after {last}")
    return first, last


# --- the reference ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Reference:
    """The sampled reference rows and the resolved threshold of every scored column."""

    sample: pd.DataFrame
    thresholds: dict[str, float]
    digest: str            # identity of the full reference (e.g. the training snapshot digest)
    rows: int              # rows of the full reference
    source: str            # what it is, for people
    calibration: dict = field(default_factory=dict)  # column -> {"quantile_score", "days"}


def typed(frame: pd.DataFrame, policy: DriftPolicy) -> pd.DataFrame:
    """The policy's columns with the declared types (numericals float64, categoricals text), the
    key columns as they are and `day` as a date."""
    import pandas as pd

    out = pd.DataFrame(index=frame.index)
    for name in policy.key:
        if name in frame.columns and name != "day":
            out[name] = frame[name]
    for column in policy.columns:
        values = frame[column.column]
        if column.kind == NUMERICAL:
            out[column.column] = pd.to_numeric(values, errors="coerce").astype("float64")
        else:
            out[column.column] = values.astype(object).where(values.notna(), None)
    if "day" in frame.columns:
        out["day"] = pd.to_datetime(frame["day"]).dt.date
    return out


def sample_rows(frame: pd.DataFrame, key: tuple[str, ...], rows: int) -> pd.DataFrame:
    """`rows` rows chosen by the smallest hash of their key: the same rows whatever the row order."""
    import numpy as np
    import pandas as pd

    if len(frame) <= rows:
        return frame.reset_index(drop=True)
    names = [name for name in key if name in frame.columns] or list(frame.columns)
    hashes = pd.util.hash_pandas_object(frame[names].astype(str), index=False).to_numpy()
    chosen = np.sort(np.argsort(hashes, kind="stable")[:rows])
    return frame.iloc[chosen].reset_index(drop=True)


def frame_digest(frame: pd.DataFrame) -> str:
    """Content hash of a frame (used when the reference has no digest of its own)."""
    import pandas as pd

    hasher = hashlib.sha256(repr(list(frame.columns)).encode())
    hasher.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return hasher.hexdigest()


_REFERENCES: dict[tuple, Reference] = {}


def reference_dir() -> Path:
    path = home_path("reports", "drift", "reference")
    path.mkdir(parents=True, exist_ok=True)
    return path


def prepare_reference(policy: DriftPolicy, digest: str, source: str, load) -> Reference:
    """The sampled, calibrated reference for `digest`; `load()` returns the full reference frame and
    is only called when neither this process nor the disk cache has it."""
    import pandas as pd

    cache_key = (policy.name, policy.fingerprint(), digest)
    if cache_key in _REFERENCES:
        return _REFERENCES[cache_key]
    folder = reference_dir() / f"{policy.name}-{digest[:16]}-{policy.fingerprint()}"
    sample_file, calibration_file = folder / "sample.parquet", folder / "calibration.json"
    if sample_file.exists() and calibration_file.exists():
        saved = json.loads(calibration_file.read_text())
        sample = pd.read_parquet(sample_file)
        reference = Reference(sample, saved["thresholds"], digest, saved["rows"], source, saved["calibration"])
    else:
        full = typed(load(), policy)
        sample = sample_rows(full, policy.key, policy.reference_rows)
        thresholds, calibration = calibrate(full, sample, policy)
        reference = Reference(sample, thresholds, digest, len(full), source, calibration)
        folder.mkdir(parents=True, exist_ok=True)
        _atomic_write(sample_file, lambda path: sample.to_parquet(path, index=False))
        payload = {"thresholds": thresholds, "calibration": calibration, "rows": len(full), "source": source}
        _atomic_write(calibration_file, lambda path: Path(path).write_text(json.dumps(payload, indent=1)))
    _REFERENCES[cache_key] = reference
    return reference


def calibrate(full: pd.DataFrame, sample: pd.DataFrame, policy: DriftPolicy) -> tuple[dict, dict]:
    """Resolved threshold of every scored column: fixed, or from leave-one-day-out scores."""
    import numpy as np

    calibrated = [c for c in policy.monitored if c.threshold is None]
    thresholds = {c.column: float(c.threshold) for c in policy.monitored if c.threshold is not None}
    details: dict[str, dict] = {}
    days = sorted(full["day"].unique()) if "day" in full.columns else []
    if calibrated and len(days) >= 2:
        from data_platform import drift_evidently

        step = max(1, -(-len(days) // policy.calibration_days))
        chosen = days[::step]
        by_day = {day: rows for day, rows in full.groupby("day", sort=False)}
        scores: dict[str, list[float]] = {c.column: [] for c in calibrated}
        for day in chosen:
            rest = sample[sample["day"] != day]
            current = by_day[day]
            for column in calibrated:
                value = drift_evidently.score(column.method, column.kind, rest[column.column], current[column.column])
                if value is not None:
                    scores[column.column].append(value)
        for column in calibrated:
            observed = scores[column.column]
            typical = float(np.quantile(observed, policy.calibration_quantile)) if observed else 0.0
            thresholds[column.column] = max(column.floor, policy.calibration_margin * typical)
            details[column.column] = {"quantile_score": round(typical, 6), "days": len(observed)}
    else:
        for column in calibrated:  # no days to learn from: the method's usual default
            thresholds[column.column] = column.floor
            details[column.column] = {"quantile_score": None, "days": 0}
    return thresholds, details


def _atomic_write(path: Path, write) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    write(str(temporary))
    os.replace(temporary, path)


# --- measuring one partition --------------------------------------------------------------------


@dataclass(frozen=True)
class ColumnOutcome:
    column: str
    kind: str
    method: Optional[str]
    score: Optional[float]
    threshold: Optional[float]
    drifted: bool
    note: str = ""


@dataclass
class PartitionDrift:
    day: dt.date
    rows: int
    columns: list[ColumnOutcome]
    error_share: Optional[float]
    snapshot: Optional[Path] = None
    html: Optional[Path] = None
    error_columns: list[str] = field(default_factory=list)

    @property
    def scored(self) -> list[ColumnOutcome]:
        return [c for c in self.columns if c.score is not None]

    @property
    def drifted(self) -> list[str]:
        return [c.column for c in self.columns if c.drifted]

    @property
    def share(self) -> float:
        return len(self.drifted) / len(self.scored) if self.scored else 0.0

    @property
    def severity(self) -> Optional[str]:
        if not self.drifted:
            return None
        if (self.error_share is not None and self.share >= self.error_share) or self.error_columns:
            return ERROR
        return WARN

    @property
    def passed(self) -> bool:
        return self.severity is None

    def summary(self) -> str:
        if self.rows == 0:
            return f"{self.day}: no rows"
        if self.passed:
            return f"{self.day}: no drift ({len(self.scored)} columns)"
        top = sorted((c for c in self.columns if c.drifted), key=lambda c: -c.score / c.threshold)
        names = ", ".join(f"{c.column} {c.score:.2f}>={c.threshold:.2f}" for c in top[:5])
        more = f" and {len(top) - 5} more" if len(top) > 5 else ""
        return f"{self.day}: {self.severity} {len(top)}/{len(self.scored)} drifted ({names}{more})"


class ReportStore:
    """Where snapshots and HTML reports of each check live."""

    def __init__(self, root: Optional[Path] = None):
        self.root = root or home_path("reports", "drift")

    def folder(self, check: str) -> Path:
        path = self.root / check
        path.mkdir(parents=True, exist_ok=True)
        return path

    def snapshot_path(self, check: str, day: dt.date) -> Path:
        return self.folder(check) / f"{day.isoformat()}.json"

    def html_path(self, check: str, day: dt.date) -> Path:
        return self.folder(check) / f"{day.isoformat()}.html"

    @property
    def lib_dir(self) -> Path:
        return self.root / "lib"

    @property
    def workspace_dir(self) -> Path:
        return self.root / "workspace"

    def checks(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and any(p.glob("*.json"))) if self.root.exists() else []

    def render(self, check: str, day: dt.date) -> Path:
        """Render the stored snapshot of `day` as HTML (raises FileNotFoundError without one)."""
        from data_platform import drift_evidently

        snapshot_file = self.snapshot_path(check, day)
        if not snapshot_file.exists():
            raise FileNotFoundError(f"no {check} snapshot for {day} at {snapshot_file}: run the check for that partition first")
        html = self.html_path(check, day)
        drift_evidently.save_html(drift_evidently.load_snapshot(str(snapshot_file)), str(html), str(self.lib_dir))
        return html


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    # Evidently's dataset statistics divide by zero for an all-missing column: harmless, noisy.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


class DriftMeter:
    """Scores partitions of one check against one reference, keeping the reference dataset built."""

    def __init__(self, policy: DriftPolicy, reference: Reference, store: ReportStore):
        self.policy = policy
        self.reference = reference
        self.store = store

    def measure(self, day: dt.date, current: pd.DataFrame, render: bool = False, metadata: Optional[dict] = None) -> PartitionDrift:
        """Drift of one partition's rows; writes its snapshot, and its HTML when failing or `render`."""
        from data_platform import drift_evidently

        current = typed(current, self.policy)
        outcomes, scored = [], []
        for column in self.policy.columns:
            if not column.monitored:
                outcomes.append(ColumnOutcome(column.column, column.kind, None, None, None, False, column.reason))
            elif current[column.column].notna().sum() == 0:
                outcomes.append(ColumnOutcome(column.column, column.kind, column.method, None,
                                              self.reference.thresholds[column.column], False, "no values in this partition"))
            elif self.reference.sample[column.column].notna().sum() == 0:
                outcomes.append(ColumnOutcome(column.column, column.kind, column.method, None,
                                              self.reference.thresholds[column.column], False, "no values in the reference"))
            else:
                scored.append(column)
        result = PartitionDrift(day=day, rows=len(current), columns=outcomes, error_share=self.policy.error_share)
        if len(current) == 0 or not scored:
            result.columns = outcomes
            return result
        names = [c.column for c in scored]
        numerical = [c.column for c in scored if c.kind == NUMERICAL]
        categorical = [c.column for c in scored if c.kind == CATEGORICAL]
        with _quiet():
            reference_dataset = self._reference_dataset(tuple(names), numerical, categorical)
            snapshot = drift_evidently.run_report(
                current=drift_evidently.dataset(current[names], numerical, categorical),
                reference=reference_dataset,
                columns=[{"column": c.column, "method": c.method, "threshold": self.reference.thresholds[c.column]} for c in scored],
                error_share=self.policy.error_share,
                metadata={
                    "check": self.policy.name, "partition": day.isoformat(), "rows": len(current),
                    "reference": self.reference.source, "reference_digest": self.reference.digest,
                    "reference_rows": self.reference.rows, "reference_sample_rows": len(self.reference.sample),
                    **(metadata or {}),
                },
                tags=[self.policy.name, f"partition:{day.isoformat()}"],
                timestamp=dt.datetime.combine(day, dt.time(12)),
                name=f"{self.policy.name} {day.isoformat()}",
            )
        scores = drift_evidently.column_scores(snapshot)
        by_name = {c.column: c for c in scored}
        final = []
        for outcome in outcomes:
            final.append(outcome)
        for name in names:
            column, threshold, value = by_name[name], self.reference.thresholds[name], scores[name]
            final.append(ColumnOutcome(name, column.kind, column.method, value, threshold, value >= threshold))
            if column.error_factor is not None and value >= column.error_factor * threshold:
                result.error_columns.append(name)
        order = {c.column: i for i, c in enumerate(self.policy.columns)}
        result.columns = sorted(final, key=lambda c: order[c.column])
        result.snapshot = self.store.snapshot_path(self.policy.name, day)
        drift_evidently.save_snapshot(snapshot, str(result.snapshot))
        if render or not result.passed:
            result.html = self.store.html_path(self.policy.name, day)
            drift_evidently.save_html(snapshot, str(result.html), str(self.store.lib_dir))
        return result

    def _reference_dataset(self, names: tuple, numerical: list[str], categorical: list[str]):
        from data_platform import drift_evidently

        key = (self.policy.name, self.policy.fingerprint(), self.reference.digest, names)
        if key not in _REFERENCE_DATASETS:
            frame = self.reference.sample[list(names)]
            _REFERENCE_DATASETS[key] = drift_evidently.dataset(frame, numerical, categorical)
        return _REFERENCE_DATASETS[key]


_REFERENCE_DATASETS: dict[tuple, object] = {}  # Evidently datasets of reference samples, per process


def measure_days(meter: DriftMeter, frame: pd.DataFrame, days: list[dt.date], render_last: bool = True,
                 render_all: bool = True) -> list[PartitionDrift]:
    """Drift of each day of `frame` (a `day` column) in `days`; every day's HTML is rendered (each
    result links to its report), or with `render_all=False` only the last day's and failing ones."""
    import pandas as pd

    groups = {day: rows for day, rows in frame.groupby(pd.to_datetime(frame["day"]).dt.date, sort=False)} if len(frame) else {}
    empty = frame.iloc[0:0]
    return [
        meter.measure(day, groups.get(day, empty), render=render_all or (render_last and day == days[-1]))
        for day in days
    ]


def report_url(path: Optional[Path | str]) -> Optional[str]:
    """The browser URL of a stored report: the report server (`make dev`) serves
    `$DATA_PLATFORM_HOME/reports` at DATA_PLATFORM_REPORTS_URL (default http://127.0.0.1:8080).
    None for no path or a path outside the reports folder."""
    if not path:
        return None
    root = home_path("reports")
    try:
        relative = Path(path).resolve().relative_to(root)
    except ValueError:
        return None
    return f"{reports_url()}/{relative.as_posix()}"


# --- the Evidently workspace ---------------------------------------------------------------------


def sync_workspace(store: Optional[ReportStore] = None) -> Path:
    """Rebuild the Evidently workspace from the stored snapshots: one project per check, with a
    dashboard plotting the drift share over the partitions. Idempotent."""
    import shutil

    from evidently.core.report import Snapshot
    from evidently.sdk.models import PanelMetric
    from evidently.sdk.panels import DashboardPanelPlot
    from evidently.ui.workspace import Workspace

    store = store or ReportStore()
    if store.workspace_dir.exists():
        shutil.rmtree(store.workspace_dir)
    workspace = Workspace.create(str(store.workspace_dir))
    for check in store.checks():
        project = workspace.create_project(check, description=f"data_platform drift check {check}, one run per partition")
        project.dashboard.add_panel(
            DashboardPanelPlot(
                title="Share of drifted columns per partition",
                size="full",
                values=[PanelMetric(legend="drift share", metric="DriftedColumnsShare")],
                plot_params={"plot_type": "line"},
            )
        )
        for path in sorted(store.folder(check).glob("*.json")):
            workspace.add_run(project.id, Snapshot.load(str(path)))
    return store.workspace_dir


def report_command(day: Optional[str], check: str, workspace: bool) -> int:
    """`python -m data_platform drift-report [DAY] [--check NAME] [--workspace]`."""
    store = ReportStore()
    if not day and not workspace:
        print("name a partition (YYYY-MM-DD) to render, or --workspace to rebuild the Evidently workspace")
        return 2
    if day:
        try:
            html = store.render(check, dt.date.fromisoformat(day))
        except (FileNotFoundError, ValueError) as error:
            print(error)
            return 1
        print(f"{check} report for {day}: {html}")
    if workspace:
        path = sync_workspace(store)
        print(f"Evidently workspace rebuilt from {store.root}: open it with\n"
              f"  .venv/bin/evidently ui --workspace {path} --host 127.0.0.1 --port 8090")
    return 0
