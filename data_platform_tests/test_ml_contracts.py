"""The tables the ML graph computes have ODCS contracts, read and validated like dataset contracts:
the ODCS schema, then the platform profile's types and rules, every problem at its file and line."""

from __future__ import annotations

import pytest

from data_platform.contracts import column_schema
from data_platform.datasets.load import ContractError, read_table_contract
from data_platform.ml_contracts import FOLDER, PERFORMANCE, PREDICTIONS


def test_the_ml_contracts_are_the_odcs_files_the_assets_use():
    assert PREDICTIONS.name == "ml.delay_predictions" and PERFORMANCE.name == "ml.model_performance"
    assert PREDICTIONS.unique == ("carrier", "flight", "origin", "day") and PERFORMANCE.unique == ("day",)
    assert list(PREDICTIONS.columns) == ["day", "carrier", "flight", "origin", "probability", "model_name",
                                         "model_version"]
    probability = {c.name: c for c in column_schema(PREDICTIONS).columns}["probability"]
    assert probability.type == "DOUBLE" and not probability.constraints.nullable
    assert probability.constraints.other == ["between 0 and 1"]
    roc_auc, flights = PERFORMANCE.columns["roc_auc"], PERFORMANCE.columns["flights"]
    assert roc_auc.nullable and [r.text() for r in roc_auc.rules] == ["between 0 and 1"]
    assert flights.sql_type == "INTEGER" and [r.text() for r in flights.rules] == ["at least 0"]


@pytest.mark.parametrize("old, new, message, line", [
    ("{minimum: 0.0, maximum: 1.0}\n        description: Predicted", "{maximum: 1.0}\n        description: Predicted",
     "a maximum needs a minimum in the platform profile", "logicalTypeOptions: {maximum: 1.0}"),
    ("- name: model_name", "- name: model name", "column name 'model name' must match", "- name: model name"),
    ("physicalName: ml.delay_predictions", "physicalName: delay_predictions",
     "with physicalName: <layer>.delay_predictions", "physicalName: delay_predictions"),
    ("description: Flight number.", "description: Flight number.\n        transformLogic: flight + 1",
     "a computed table's column has a type, rules and a description only", "- name: flight"),
    ("status: active", "status: active\nsla: none", "unknown key 'sla'", "sla: none"),
])
def test_a_mistake_in_an_ml_contract_is_reported_at_its_line(platform_home, tmp_path, old, new, message, line):
    text = (FOLDER / "delay_predictions.odcs.yaml").read_text()
    assert text.count(old) == 1
    path = tmp_path / "delay_predictions.odcs.yaml"
    path.write_text(text.replace(old, new))
    with pytest.raises(ContractError) as raised:
        read_table_contract(path)
    found = [p for p in raised.value.problems if message in p.message]
    assert len(found) == 1, [str(p) for p in raised.value.problems]
    assert found[0].file == path and path.read_text().splitlines()[found[0].line - 1].strip() == line
