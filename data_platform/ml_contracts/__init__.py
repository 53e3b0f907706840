"""Contracts of the tables the ML graph computes: ODCS files beside this module, read and validated
like dataset contracts (`read_table_contract`: the ODCS schema, then the platform profile's types and
rules). The features table's contract is derived from the feature declarations instead (one per
column, `data_platform.features.CONTRACT`) and published as ODCS like these.
"""

from pathlib import Path

from data_platform.datasets.load import read_table_contract

FOLDER = Path(__file__).parent
PREDICTIONS = read_table_contract(FOLDER / "delay_predictions.odcs.yaml")
PERFORMANCE = read_table_contract(FOLDER / "model_performance.odcs.yaml")
