"""A check kind is one file: a new one, written as a module outside the platform, is read from a
contract's customProperties (validated against its schema, its problems at their line) and runs
in a real Dagster run beside the platform's own checks."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import pytest
import yaml
from dagster import materialize

from data_platform import settings
from data_platform.checks import kinds
from data_platform.components.datasets import dataset_definitions
from data_platform.datasets.load import ContractError, read_contract
from data_platform.datasets.scaffold import new_contract

GRUNFELD = Path(importlib.util.find_spec("statsmodels").origin).parent / "datasets" / "grunfeld" / "grunfeld.csv"

# The whole kind: its contract property and schema, what it reads, its evaluator and its words.
CEILING_KIND = '''
from data_platform.checks.framework import WARN, Check, Evaluation, Verdict, day_column, label, per_partition, scope
from data_platform.checks.kinds import CheckKind, register
from data_platform.datasets.profile import NAME, NUMBER, object_schema


def read(value, dataset, problem):
    if value["column"] not in {p.name for p in dataset.properties}:
        problem(("column",), f"ceiling column {value['column']!r} is not a property of {dataset.name}")
    return (value["column"], value["maximum"])


def checks(dataset, ceiling):
    column, maximum = ceiling

    def evaluate(conn, days):
        where, params = scope(days)
        over = dict(conn.execute(
            f'SELECT {day_column(days)}, count(*) FILTER (WHERE "{column}" > ?) FROM {dataset.cleaned.name} '
            f"{where} GROUP BY ALL", [maximum, *params]).fetchall())
        return Evaluation(per_partition(days, lambda day: Verdict(
            label(day), not over.get(day), f"{over.get(day, 0)} row(s) with {column} over {maximum}",
            {"over": over.get(day, 0)})))

    return [Check(f"{column}_at_most_{maximum}", f"Asserts that {column} never exceeds {maximum}. WARN.",
                  WARN, evaluate, partitioned=dataset.partitioned)]


register(CheckKind("ceiling", checks, property="ceiling",
                   schema=object_schema({"column": NAME, "maximum": NUMBER}, required=("column", "maximum")),
                   read=read))
'''


@pytest.fixture
def contracts(platform_home, tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "contracts"
    monkeypatch.setenv(settings.DATASETS_ENV, str(folder))
    return folder


@pytest.fixture
def ceiling_kind(tmp_path, monkeypatch):
    """The kind's file, imported as any module would be; registered for this test only."""
    kinds.registered()
    monkeypatch.setattr(kinds, "_KINDS", dict(kinds._KINDS))
    path = tmp_path / "ceiling_kind.py"
    path.write_text(CEILING_KIND)
    spec = importlib.util.spec_from_file_location("ceiling_kind", path)
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
    return kinds.by_property()["ceiling"]


def _with_ceiling(path: Path, value: dict) -> None:
    document = yaml.safe_load(path.read_text())
    document["schema"][0].setdefault("customProperties", []).append({"property": "ceiling", "value": value})
    path.write_text(yaml.safe_dump(document, sort_keys=False))


def test_a_new_check_kind_is_one_file_read_from_the_contract_and_run(contracts, ceiling_kind, instance, resources):
    invest = [float(row["invest"]) for row in csv.DictReader(GRUNFELD.open(newline=""))]
    path = new_contract("grunfeld", GRUNFELD)
    _with_ceiling(path, {"column": "invest", "maximum": 1000})
    dataset = read_contract(path)
    assert dataset.checks["ceiling"] == ("invest", 1000)

    definitions = dataset_definitions(dataset)
    result = materialize([*definitions.assets, *definitions.asset_checks], instance=instance, resources=resources)
    assert result.success
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    ceiling = evaluations["invest_at_most_1000"]
    assert ceiling.asset_key.to_user_string() == "cleaned/grunfeld"
    over = sum(value > 1000 for value in invest)
    assert over > 0 and not ceiling.passed
    assert ceiling.description == f"FAILED on 1 of 1 partition(s) — table: {over} row(s) with invest over 1000"
    assert ceiling.metadata["failed_partition_keys"].value == "table"
    # The platform's own kinds ran beside it, from the same contract.
    assert {"matches_cleaned_contract", "key_unique", "rows_conserved"} <= set(evaluations)
    assert evaluations["matches_cleaned_contract"].passed


def test_the_kinds_property_is_validated_like_the_profiles_own(contracts, ceiling_kind, monkeypatch):
    path = new_contract("grunfeld", GRUNFELD)
    drafted = path.read_text()
    _with_ceiling(path, {"column": "invest", "maximum": "high"})
    with pytest.raises(ContractError) as raised:
        read_contract(path)
    assert [problem.message for problem in raised.value.problems] == ["ceiling: 'high' is not of type 'number'"]

    path.write_text(drafted)
    _with_ceiling(path, {"column": "investment", "maximum": 1})
    with pytest.raises(ContractError) as raised:
        read_contract(path)
    (problem,) = raised.value.problems
    assert problem.message == "ceiling column 'investment' is not a property of grunfeld"
    assert path.read_text().splitlines()[problem.line - 1].strip() == "column: investment"

    # Without the kind, the property is unknown to the profile: an error, never ignored.
    monkeypatch.setattr(kinds, "_KINDS", {k: v for k, v in kinds._KINDS.items() if k != "ceiling"})
    with pytest.raises(ContractError, match="unknown platform property 'ceiling' on a schema"):
        read_contract(path)


def test_a_kinds_property_cannot_shadow_another():
    with pytest.raises(ValueError, match="'volume' is already read"):
        kinds.register(kinds.CheckKind("my_volume", property="volume", schema={"type": "object"}))
    assert "my_volume" not in {kind.name for kind in kinds.registered()}
