"""The delay model: inputs, estimator, metrics and the base-rate baseline (scikit-learn).

scikit-learn is imported inside the functions: the code location must load fast.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from data_platform.features import CATEGORICAL_FEATURES, LABEL, NUMERICAL_FEATURES

METRICS = ["roc_auc", "pr_auc", "log_loss", "brier", "positive_rate", "predicted_positive_rate"]
# Types inside the fitted pipeline that skops must be told to trust when loading it.
SKOPS_TRUSTED_TYPES = [
    "functools.partial",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.utils.validation.check_array",
]


@dataclass(frozen=True)
class ModelParams:
    """Hyper-parameters of the gradient-boosted classifier (fixed seed: retraining reproduces)."""

    max_iter: int = 300
    learning_rate: float = 0.05
    max_leaf_nodes: int = 31
    min_samples_leaf: int = 100
    l2_regularization: float = 1.0
    random_state: int = 0

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_strings(cls, values: dict[str, str]) -> "ModelParams":
        """From MLflow params (strings), ignoring names that are not hyper-parameters."""
        defaults = cls()
        return cls(**{name: type(getattr(defaults, name))(values[name])
                      for name in cls.__dataclass_fields__ if name in values})


def model_inputs(frame: pd.DataFrame) -> pd.DataFrame:
    """The model's input columns: categoricals as text (missing = NaN), numericals as float64.

    The numericals are one float64 block: scikit-learn's column selection then takes them without
    copying column by column (at 10x, 2.4 M training rows, that is 0.6 GiB less at the fit's peak)."""
    numbers = np.empty((len(frame), len(NUMERICAL_FEATURES)), dtype="float64")
    for position, name in enumerate(NUMERICAL_FEATURES):
        numbers[:, position] = pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    inputs = pd.DataFrame(numbers, columns=NUMERICAL_FEATURES, index=frame.index, copy=False)
    for position, name in enumerate(CATEGORICAL_FEATURES):  # in front, in the order a fitted model expects
        values = frame[name].astype(object)
        inputs.insert(position, name, values.where(values.notna(), np.nan))
    return inputs


def labels(frame: pd.DataFrame) -> np.ndarray:
    return frame[LABEL].astype(bool).to_numpy().astype(int)


def build_model(params: ModelParams):
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OrdinalEncoder

    encode = OrdinalEncoder(
        handle_unknown="use_encoded_value", unknown_value=np.nan, encoded_missing_value=np.nan
    )
    prepare = ColumnTransformer(
        [("categorical", encode, CATEGORICAL_FEATURES), ("numerical", "passthrough", NUMERICAL_FEATURES)],
        verbose_feature_names_out=False,
    )
    classifier = HistGradientBoostingClassifier(
        categorical_features=list(range(len(CATEGORICAL_FEATURES))),
        early_stopping=False,
        **params.as_dict(),
    )
    return Pipeline([("prepare", prepare), ("classifier", classifier)])


# OpenMP threads for fitting and scoring. Measured on the 2-core machine while other processes ran:
# 100 boosting iterations on 80k rows took 6-7 s with 2 threads and 1.7-1.9 s with 1 (threads that
# wait for a busy core stall every other thread); on an idle machine 2 threads gain little more.
DEFAULT_THREADS = 1
PREDICT_BATCH_ROWS = 250_000


def fit(frame: pd.DataFrame, params: ModelParams, threads: int = DEFAULT_THREADS):
    """The pipeline fitted step by step, as `Pipeline.fit` does, so that the input frame is freed before
    the classifier bins its copy (at 10x, 2.4 M training rows, 0.7 GiB less at the peak)."""
    from threadpoolctl import threadpool_limits

    model = build_model(params)
    with threadpool_limits(limits=threads, user_api="openmp"):
        prepared = model.named_steps["prepare"].fit_transform(model_inputs(frame))
        model.named_steps["classifier"].fit(prepared, labels(frame))
    return model


def predict(model, frame: pd.DataFrame, threads: int = DEFAULT_THREADS) -> np.ndarray:
    """Probability of arriving more than 15 minutes late."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=threads, user_api="openmp"):  # in batches: scoring holds a batch's inputs
        return np.concatenate([model.predict_proba(model_inputs(frame.iloc[start:start + PREDICT_BATCH_ROWS]))[:, 1]
                               for start in range(0, max(len(frame), 1), PREDICT_BATCH_ROWS)])


def metrics(y: np.ndarray, probability: np.ndarray) -> dict[str, float]:
    """Classification metrics; ROC/PR AUC are NaN when only one class is present."""
    from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

    both = len(np.unique(y)) == 2
    return {
        "roc_auc": float(roc_auc_score(y, probability)) if both else float("nan"),
        "pr_auc": float(average_precision_score(y, probability)) if both else float("nan"),
        "log_loss": float(log_loss(y, probability, labels=[0, 1])),
        "brier": float(brier_score_loss(y, probability, pos_label=1)),
        "positive_rate": float(np.mean(y)),
        "predicted_positive_rate": float(np.mean(probability)),
    }


def baseline_metrics(train_y: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """The naive model: every flight gets the training set's positive rate."""
    return metrics(y, np.full(len(y), float(np.mean(train_y))))


def beats_baseline(model_metrics: dict[str, float], baseline: dict[str, float]) -> tuple[bool, str]:
    """A model is worth having only if it beats the base rate on log loss and Brier and ranks
    better than chance."""
    failures = []
    if not model_metrics["log_loss"] < baseline["log_loss"]:
        failures.append(f"log loss {model_metrics['log_loss']:.4f} >= base rate {baseline['log_loss']:.4f}")
    if not model_metrics["brier"] < baseline["brier"]:
        failures.append(f"Brier {model_metrics['brier']:.4f} >= base rate {baseline['brier']:.4f}")
    if not model_metrics["roc_auc"] > 0.5:
        failures.append(f"ROC AUC {model_metrics['roc_auc']:.4f} not above 0.5")
    if failures:
        return False, "worse than predicting the base rate: " + "; ".join(failures)
    return True, (
        f"beats the base rate: log loss {model_metrics['log_loss']:.4f} < {baseline['log_loss']:.4f}, "
        f"Brier {model_metrics['brier']:.4f} < {baseline['brier']:.4f}, ROC AUC {model_metrics['roc_auc']:.4f}"
    )
