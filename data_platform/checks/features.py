"""Checks on the feature and ML tables, built with the quality checks' rules and factory.

The feature contract check is ERROR and blocking: a model must not train, nor predictions be made,
on rows that break it (types, ranges, the unique flight key, and the point-in-time rules the
contract states: weather observed at or before the cut-off, cut-off 2 h before departure).
The model's own check (beats the base rate) is declared on ml/delay_model in assets/ml.py.
"""

from dagster import AssetChecksDefinition

from data_platform import contracts
from data_platform.assets.features import CONTRACT as FEATURES_CONTRACT, FLIGHT_KEY
from data_platform.checks.quality import (
    ERROR,
    Rule,
    contract_evaluation,
    duplicate_key_evaluation,
    quality_checks_for,
)

FEATURE_RULES: dict[str, list[Rule]] = {
    "features/flight_features": [
        Rule(
            "matches_features_contract",
            f"Asserts that {FEATURES_CONTRACT.name} matches its pandera contract: types, ranges (rates in 0..1, "
            "hours, days), nullability, and the point-in-time rules (no weather observed after a flight's cut-off; "
            "cut-off exactly 2 h before scheduled departure). ERROR and blocking: the model and the predictions "
            "must not use rows that break it.",
            ERROR, contract_evaluation(FEATURES_CONTRACT), blocking=True,
        ),
        Rule(
            "flight_key_unique",
            f"Asserts that ({', '.join(FLIGHT_KEY)}) is unique in {FEATURES_CONTRACT.name}, per partition. ERROR "
            "and blocking: a duplicated flight would be trained on and scored twice.",
            ERROR, duplicate_key_evaluation(FEATURES_CONTRACT.name, FLIGHT_KEY, with_source=False), blocking=True,
        ),
    ],
    "ml/delay_predictions": [
        Rule(
            "matches_predictions_contract",
            f"Asserts that {contracts.PREDICTIONS.name} matches its contract: one probability in 0..1 per flight "
            "key, with the model name and version that produced it. ERROR and blocking: performance must not be "
            "computed from malformed predictions.",
            ERROR, contract_evaluation(contracts.PREDICTIONS), blocking=True,
        ),
    ],
    "ml/model_performance": [
        Rule(
            "matches_performance_contract",
            f"Asserts that {contracts.PERFORMANCE.name} matches its contract (metrics within their ranges). ERROR, "
            "not blocking: nothing is built on it, but a metric out of range means the computation is wrong.",
            ERROR, contract_evaluation(contracts.PERFORMANCE),
        ),
    ],
}

feature_checks: list[AssetChecksDefinition] = [
    quality_checks_for(asset, rules) for asset, rules in FEATURE_RULES.items()
]
