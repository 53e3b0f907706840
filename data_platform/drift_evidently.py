"""The Evidently side of drift monitoring: metrics, the KS-statistic method and report rendering.

This module imports `evidently` at module level (5-9 s): import it only inside the functions that
run a drift report (`data_platform.drift` does), never from a module the code location loads.

Why custom metrics instead of the stock `DataDriftPreset`/`ValueDrift`:
- the preset computes every column about three times (DriftedColumnsCount, ValueDrift, the render
  table); `ValueDrift` alone spends about 80 % of its time building plotly figures (a scatter of
  the current values over the row index and a distribution plot) and stores ~65 KB of widgets per
  column in the snapshot;
- here every column is computed once with Evidently's own registered stattests (the functions the
  preset calls, so the scores are the same numbers), its widget is a small precomputed histogram,
  and the dataset-level drift share is a metric of its own, so `evidently ui` can plot it.
"""

from __future__ import annotations

import json
import os
import uuid
from typing import Dict, List, Optional

import numpy as np
import pandas as pd
from evidently.core.datasets import Dataset
from evidently.core.metric_types import (
    ColumnMetric,
    MetricTestResult,
    SingleValue,
    SingleValueCalculation,
    SingleValueMetric,
)
from evidently.core.report import Context, Snapshot
from evidently.legacy.calculations.stattests.registry import (
    StatTest,
    get_registered_stattest,
    register_stattest,
)
from evidently.legacy.core import ColumnType
from evidently.legacy.renderers.html_widgets import (
    CounterData,
    WidgetSize,
    counter,
    plotly_data,
    table_data,
)
from evidently.legacy.tests.base_test import TestStatus
from scipy import stats

HIST_BINS = 20
TOP_CATEGORIES = 20
REFERENCE_COLOR = "#4d4d4d"
CURRENT_COLOR = "#ed0400"


# --- the KS statistic as an effect size -----------------------------------------------------
# Evidently's own "ks" method reports the p-value, which is tiny for any real difference at these
# sample sizes. The statistic itself (largest gap between the two empirical CDFs, 0..1) is an
# effect size and stays comparable across partition sizes.


def _ks_statistic(reference: pd.Series, current: pd.Series, feature_type, threshold: float):
    statistic = float(stats.ks_2samp(reference, current).statistic)
    return statistic, statistic >= threshold


KS_STATISTIC = StatTest(
    name="ks_statistic",
    display_name="K-S statistic",
    allowed_feature_types=[ColumnType.Numerical],
    default_threshold=0.1,
)
register_stattest(KS_STATISTIC, _ks_statistic)


def method_display_name(method: str, column_type: ColumnType) -> str:
    return get_registered_stattest(method, column_type).display_name


# --- per-column drift -----------------------------------------------------------------------


class ColumnDriftScore(ColumnMetric, SingleValueMetric):
    """Drift score of one column with an explicit method and threshold; drifted when score >= threshold."""

    method: str
    threshold: float


class ColumnDriftScoreCalculation(SingleValueCalculation[ColumnDriftScore]):
    def calculate(self, context: Context, current_data: Dataset, reference_data: Optional[Dataset]) -> SingleValue:
        if reference_data is None:
            raise ValueError("drift needs reference data")
        metric = self.metric
        column = current_data.column(metric.column)
        current = _finite(column.data)
        reference = _finite(reference_data.column(metric.column).data)
        if current.empty or reference.empty:
            raise ValueError(f"column {metric.column!r} has no values to compare (drop it before the report)")
        stattest = get_registered_stattest(metric.method, column.type)
        outcome = stattest(reference, current, column.type, metric.threshold)
        score = float(outcome.drift_score)
        drifted = score >= metric.threshold
        result = self.result(score)
        result.widget = _column_widgets(metric, stattest.display_name, column.type, reference, current, score, drifted)
        result.set_tests(
            [
                MetricTestResult(
                    id="drift",
                    name=f"Drift in column {metric.column}",
                    description=(
                        f"{stattest.display_name} is {score:.3f}; the column drifts at {metric.threshold:g} "
                        f"or more."
                    ),
                    metric_config=self.to_metric_config(),
                    test_config={"method": metric.method, "threshold": metric.threshold},
                    status=TestStatus.FAIL if drifted else TestStatus.SUCCESS,
                )
            ]
        )
        return result

    def display_name(self) -> str:
        return f"Drift of {self.metric.column} ({self.metric.method})"


def _finite(values: pd.Series) -> pd.Series:
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return pd.to_numeric(values, errors="coerce").astype("float64").replace([np.inf, -np.inf], np.nan).dropna()
    return values.dropna()


def _column_widgets(metric, method_name, column_type, reference, current, score, drifted) -> list:
    verdict = "drift detected" if drifted else "no drift"
    header = counter(
        counters=[
            CounterData(
                f"{metric.column}: {verdict}",
                f"{method_name} {score:.3f} (threshold {metric.threshold:g}); "
                f"{len(current):,} current vs {len(reference):,} reference values",
            )
        ],
        size=WidgetSize.HALF,
    )
    if column_type == ColumnType.Numerical:
        labels, ref_share, cur_share = _numeric_histogram(reference, current)
    else:
        labels, ref_share, cur_share = _category_shares(reference, current)
    figure = plotly_data(
        title="",
        data=[
            {"type": "bar", "name": "reference", "x": labels, "y": ref_share, "marker": {"color": REFERENCE_COLOR}},
            {"type": "bar", "name": "current", "x": labels, "y": cur_share, "marker": {"color": CURRENT_COLOR}},
        ],
        layout={
            "barmode": "group",
            "yaxis": {"title": "share of rows", "tickformat": ".0%"},
            "xaxis": {"title": metric.column, "type": "category"},
            "legend": {"orientation": "h", "y": 1.12},
            "height": 320,
        },
        size=WidgetSize.HALF,
    )
    return [header, figure]


def _numeric_histogram(reference: pd.Series, current: pd.Series):
    combined = np.concatenate([reference.to_numpy(), current.to_numpy()])
    low, high = float(np.min(combined)), float(np.max(combined))
    edges = np.linspace(low, high if high > low else low + 1.0, HIST_BINS + 1)
    ref_counts = np.histogram(reference, edges)[0] / len(reference)
    cur_counts = np.histogram(current, edges)[0] / len(current)
    labels = [f"{edges[i]:.4g}..{edges[i + 1]:.4g}" for i in range(HIST_BINS)]
    return labels, [round(float(v), 5) for v in ref_counts], [round(float(v), 5) for v in cur_counts]


def _category_shares(reference: pd.Series, current: pd.Series):
    ref_share = reference.astype(str).value_counts(normalize=True)
    cur_share = current.astype(str).value_counts(normalize=True)
    top = (ref_share.add(cur_share, fill_value=0)).sort_values(ascending=False).index[:TOP_CATEGORIES]
    labels = list(top)
    ref_values = [float(ref_share.get(k, 0.0)) for k in labels]
    cur_values = [float(cur_share.get(k, 0.0)) for k in labels]
    if len(ref_share.index.union(cur_share.index)) > len(labels):
        labels.append("(other)")
        ref_values.append(max(0.0, 1.0 - sum(ref_values)))
        cur_values.append(max(0.0, 1.0 - sum(cur_values)))
    return labels, [round(v, 5) for v in ref_values], [round(v, 5) for v in cur_values]


# --- dataset-level drift share ----------------------------------------------------------------


class DriftedColumnsShare(SingleValueMetric):
    """Share of monitored columns whose drift score reaches their threshold (0..1)."""

    columns: List[str]
    methods: Dict[str, str]
    thresholds: Dict[str, float]
    error_share: Optional[float] = None


class DriftedColumnsShareCalculation(SingleValueCalculation[DriftedColumnsShare]):
    def calculate(self, context: Context, current_data: Dataset, reference_data: Optional[Dataset]) -> SingleValue:
        metric = self.metric
        rows = []
        for name in metric.columns:
            column_metric = ColumnDriftScore(column=name, method=metric.methods[name], threshold=metric.thresholds[name])
            score = context.calculate_metric(column_metric.to_calculation()).value
            rows.append((name, metric.methods[name], float(score), metric.thresholds[name]))
        drifted = [row for row in rows if row[2] >= row[3]]
        share = len(drifted) / len(rows) if rows else 0.0
        result = self.result(share)
        ordered = sorted(rows, key=lambda row: (row[2] < row[3], -row[2] / row[3] if row[3] else 0.0))
        result.widget = [
            counter(
                counters=[
                    CounterData("drifted columns", f"{len(drifted)} of {len(rows)}"),
                    CounterData.float("drift share", share, 3),
                    CounterData("ERROR at share", "-" if metric.error_share is None else f"{metric.error_share:g}"),
                ],
            ),
            table_data(
                title="Per-column drift (drifted first)",
                column_names=["column", "method", "score", "threshold", "drifted"],
                data=[[n, m, f"{s:.4f}", f"{t:g}", "yes" if s >= t else ""] for n, m, s, t in ordered],
            ),
        ]
        result.set_tests(
            [
                MetricTestResult(
                    id="drift_share",
                    name="Share of drifted columns",
                    description=f"{len(drifted)} of {len(rows)} columns drifted (share {share:.3f}); "
                    + ("no share rule." if metric.error_share is None
                       else f"the dataset drifts at a share of {metric.error_share:g} or more."),
                    metric_config=self.to_metric_config(),
                    test_config={"error_share": metric.error_share},
                    status=TestStatus.FAIL if rows and metric.error_share is not None and share >= metric.error_share
                    else TestStatus.SUCCESS,
                )
            ]
        )
        return result

    def display_name(self) -> str:
        return "Share of drifted columns"


# --- running and storing ----------------------------------------------------------------------


def data_definition(numerical: list[str], categorical: list[str]):
    from evidently import DataDefinition

    return DataDefinition(numerical_columns=list(numerical), categorical_columns=list(categorical))


def dataset(frame: pd.DataFrame, numerical: list[str], categorical: list[str]) -> Dataset:
    return Dataset.from_pandas(frame, data_definition=data_definition(numerical, categorical))


def run_report(current: Dataset, reference: Dataset, columns: list[dict], error_share: Optional[float],
               metadata: dict, tags: list[str], timestamp, name: str) -> Snapshot:
    """One Evidently report: the drift share first, then every column. `columns` holds
    {"column", "method", "threshold"} for each column to score."""
    from evidently import Report

    share = DriftedColumnsShare(
        columns=[c["column"] for c in columns],
        methods={c["column"]: c["method"] for c in columns},
        thresholds={c["column"]: float(c["threshold"]) for c in columns},
        error_share=None if error_share is None else float(error_share),
    )
    per_column = [ColumnDriftScore(column=c["column"], method=c["method"], threshold=float(c["threshold"])) for c in columns]
    report = Report([share, *per_column], include_tests=True)
    return report.run(current_data=current, reference_data=reference, timestamp=timestamp,
                      metadata=metadata, tags=tags, name=name)


def column_scores(snapshot: Snapshot) -> dict[str, float]:
    """{column: score} of the per-column metrics of a snapshot (fresh or loaded from disk)."""
    scores = {}
    for result in snapshot.metric_results.values():
        params = result.metric_value_location.metric.params
        if params.get("type", "").endswith(":ColumnDriftScore"):
            scores[params["column"]] = float(result.value)
    return scores


def save_snapshot(snapshot: Snapshot, path: str) -> None:
    """The full snapshot (metrics, tests and widgets): enough to render the HTML report later."""
    from evidently.legacy.utils.numpy_encoder import NumpyEncoder

    model = snapshot.to_snapshot_model()
    # Each result's widgets are also the snapshot's top-level widgets (what renders): keep one copy.
    model.metric_results = {key: result.copy(update={"widget": None}) for key, result in model.metric_results.items()}
    tmp = f"{path}.{uuid.uuid4().hex}.tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(model.dict(), handle, cls=NumpyEncoder)
    os.replace(tmp, path)


def load_snapshot(path: str) -> Snapshot:
    return Snapshot.load(path)


def save_html(snapshot: Snapshot, path: str, lib_dir: str) -> None:
    """Render the report as HTML that loads Evidently's JS bundle from `lib_dir` (written once).

    Evidently's `save_html` inlines the ~4 MB bundle in every file; here each report is only its
    data, and the bundle and font are shared by every report.
    """
    from evidently.legacy.model.dashboard import DashboardInfo
    from evidently.legacy.model.widget import AdditionalGraphInfo
    from evidently.legacy.renderers.base_renderer import DetailsInfo
    from evidently.legacy.renderers.html_widgets import group_widget
    from evidently.legacy.utils.dashboard import SaveMode, TemplateParams, file_html_template, save_lib_files

    lib_file = os.path.join(lib_dir, "js", f"evidently.{_evidently_version()}.js")
    font_file = os.path.join(lib_dir, "js", "material-ui-icons.woff2")
    if not (os.path.exists(lib_file) and os.path.exists(font_file)):
        os.makedirs(lib_dir, exist_ok=True)
        save_lib_files(os.path.join(lib_dir, "index.html"), SaveMode.FOLDER)
    here = os.path.dirname(os.path.abspath(path))
    # as Snapshot.get_html_str and evidently.core.metric_types.render_widgets build it
    widgets = [group_widget(title="", widgets=snapshot._widgets)] + list(snapshot._tests_widgets)
    details = []
    for info in widgets:
        for graph in info.get_additional_graphs():
            if isinstance(graph, AdditionalGraphInfo):
                details.append(DetailsInfo(title="", info=graph.params, id=graph.id))
            else:
                details.append(DetailsInfo(title="", info=graph, id=graph.id))
    additional = {f"{d.id}": d.info.dict() if hasattr(d.info, "dict") else d.info for d in details}
    params = TemplateParams(
        dashboard_id="drift_" + uuid.uuid4().hex,
        dashboard_info=DashboardInfo(name="Report", widgets=widgets),
        additional_graphs=additional,
        embed_font=False,
        embed_lib=False,
        font_file=os.path.relpath(font_file, here),
        include_js_files=[os.path.relpath(lib_file, here)],
    )
    tmp = f"{path}.{uuid.uuid4().hex}.tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(file_html_template(params))
    os.replace(tmp, path)


def _evidently_version() -> str:
    import evidently

    return evidently.__version__


def snapshot_summary(snapshot: Snapshot) -> dict:
    """The compact metrics-and-tests view of a snapshot (Evidently's `Snapshot.dict()`)."""
    return json.loads(snapshot.json())


def score(method: str, kind: str, reference: pd.Series, current: pd.Series) -> Optional[float]:
    """One column's score with a registered stattest, outside a report (calibration, benchmarks)."""
    column_type = ColumnType.Numerical if kind == "numerical" else ColumnType.Categorical
    reference, current = _finite(reference), _finite(current)
    if reference.empty or current.empty:
        return None
    stattest = get_registered_stattest(method, column_type)
    return float(stattest(reference, current, column_type, None).drift_score)
