"""Checks on the feature and ML tables, run by the checks framework with the contract and key evaluators.

The feature contract check is ERROR and blocking: a model must not train, nor predictions be made,
on rows that break it (types, ranges, the unique flight key, and the point-in-time rules the
contract states: weather observed at or before the cut-off, cut-off 2 h before departure).
The model's own check (beats the base rate) is declared on ml/delay_model in assets/ml.py.
"""

from dagster import AssetChecksDefinition

from data_platform.features import CONTRACT as FEATURES_CONTRACT, FLIGHT_KEY
from data_platform.checks.framework import ERROR, Check, quality_checks_for
from data_platform.checks.kinds.contract import contract_evaluation
from data_platform.checks.kinds.keys import duplicate_key_evaluation
from data_platform.ml_contracts import PERFORMANCE, PREDICTIONS

FEATURE_CHECKS: dict[str, list[Check]] = {
    "features/flight_features": [
        Check(
            "matches_features_contract",
            f"Asserts that {FEATURES_CONTRACT.name} matches its pandera contract: types, ranges (rates in 0..1, "
            "hours, days), nullability, and the point-in-time rules (no weather observed after a flight's cut-off; "
            "cut-off exactly 2 h before scheduled departure). ERROR and blocking: the model and the predictions "
            "must not use rows that break it.",
            ERROR, contract_evaluation(FEATURES_CONTRACT), blocking=True,
        ),
        Check(
            "flight_key_unique",
            f"Asserts that ({', '.join(FLIGHT_KEY)}) is unique in {FEATURES_CONTRACT.name}, per partition. ERROR "
            "and blocking: a duplicated flight would be trained on and scored twice.",
            ERROR, duplicate_key_evaluation(FEATURES_CONTRACT.name, FLIGHT_KEY, with_source=False), blocking=True,
        ),
    ],
    "ml/delay_predictions": [
        Check(
            "matches_predictions_contract",
            f"Asserts that {PREDICTIONS.name} matches its contract: one probability in 0..1 per flight "
            "key, with the model name and version that produced it. ERROR and blocking: performance must not be "
            "computed from malformed predictions.",
            ERROR, contract_evaluation(PREDICTIONS), blocking=True,
        ),
    ],
    "ml/model_performance": [
        Check(
            "matches_performance_contract",
            f"Asserts that {PERFORMANCE.name} matches its contract (metrics within their ranges). ERROR, "
            "not blocking: nothing is built on it, but a metric out of range means the computation is wrong.",
            ERROR, contract_evaluation(PERFORMANCE),
        ),
    ],
}

feature_checks: list[AssetChecksDefinition] = [
    quality_checks_for(asset, checks) for asset, checks in FEATURE_CHECKS.items()
]
