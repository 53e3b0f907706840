"""Broken contracts: each mistake a person makes gives one clear error naming the file and the line,
through `read_contract`/`load_datasets`, through `python -m data_platform dataset check` (exit code 1),
and in the code location, where a broken contract disables its own dataset only: its assets stay,
marked broken with every problem, and every other dataset loads."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from data_platform import settings
from data_platform.datasets import ContractError, load_datasets
from data_platform.datasets.load import read_contract

# The declared partition column (optional; the key is complete as written with it).
PARTITION_COLUMN = """\
      - name: day
        logicalType: date
        required: true
        primaryKey: true
        primaryKeyPosition: 2
        partitioned: true
        transformSourceObjects: [taken_on]
"""

VALID = """\
apiVersion: v3.1.0
kind: DataContract
id: urn:data-platform:dataset:readings
name: readings
version: 1.0.0
status: active
schema:
  - name: readings
    physicalType: table
    customProperties:
      - property: source
        value: {type: file, path: readings.csv}
      - property: partitioning
        value: {cadence: daily, start: "2013-01-01", end: "2013-01-31", column: taken_on}
      - property: drift
        value: {columns: [level], reference: {start: "2013-01-01", end: "2013-01-07"}}
    properties:
""" + PARTITION_COLUMN + """\
      - name: taken_on
        logicalType: date
        required: true
        primaryKey: true
        primaryKeyPosition: 1
        logicalTypeOptions: {format: yyyy/MM/dd}
      - name: carrier
        logicalType: string
        relationships:
          - type: foreignKey
            to: airlines.odcs.yaml#/schema/airlines/properties/carrier
      - name: level
        logicalType: number
"""

# name -> (what is replaced, by what, what the error must say); the error names the replaced line.
BROKEN = {
    "misspelled_key": ("        required: true\n        primaryKey: true\n        primaryKeyPosition: 1\n",
                       "        requird: true\n        primaryKey: true\n        primaryKeyPosition: 1\n",
                       "unknown key 'requird'"),
    "unknown_type": ("        logicalType: number\n", "        logicalType: decimal\n", "decimal"),
    "drift_on_missing_column": ("columns: [level]", "columns: [levels]", "drift column 'levels' is not a property"),
    "partition_on_missing_column": ("column: taken_on}", "column: taken_at}",
                                    "partition column 'taken_at' is not a property"),
    "reference_to_unknown_dataset": ("to: airlines.odcs.yaml#/schema/airlines/",
                                     "to: airline.odcs.yaml#/schema/airline/",
                                     "references dataset 'airline', which no contract declares"),
    # The forms of earlier releases: each error says exactly what to write instead.
    "source_name_as_physical_name": ("        logicalType: number\n", "        physicalName: Level\n        logicalType: number\n",
                                     "replace `physicalName: Level` with `customProperties: [{property: sourceName, "
                                     "value: Level}]`"),
    "reference_to_a_table_of_this_contract": (
        "to: airlines.odcs.yaml#/schema/airlines/properties/carrier", "to: airlines.carrier",
        "`to: airlines.odcs.yaml#/schema/airlines/properties/carrier`"),
    "relationship_without_type": ("          - type: foreignKey\n            to:", "          - to:",
                                  "a relationship needs `type: foreignKey`"),
    "partition_column_not_last_in_key": ("primaryKeyPosition: 2\n        partitioned", "primaryKeyPosition: 1\n        partitioned",
                                         "the partition column comes last in the key: primaryKeyPosition: 2"),
    "malformed_date_format": ("{format: yyyy/MM/dd}", "{format: yyyy/MM/dq}", "malformed date format"),
}


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.odcs.yaml"
    path.write_text(text.replace("readings", name))
    (folder / f"{name}.csv").write_text("taken_on,carrier,level\n2013/01/02,UA,1.5\n")  # the source it reads
    return path


def broken(folder: Path, case: str) -> tuple[Path, int, str]:
    """A contract with one mistake: its path, the line of the mistake, the expected message."""
    old, new, message = BROKEN[case]
    assert VALID.count(old) == 1
    text = VALID.replace(old, new)
    line = text[: text.index(new)].count("\n") + 1
    return write(folder, case, text), line, message


@pytest.fixture
def contracts(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "contracts"
    monkeypatch.setenv(settings.DATASETS_ENV, str(folder))
    return folder


def test_the_valid_contract_loads_with_the_repository_set(contracts):
    path = write(contracts, "readings", VALID)
    dataset = read_contract(path)
    assert dataset.partitioning.column == "taken_on" and dataset.prop("taken_on").time_format == "%Y/%m/%d"
    assert "readings" in load_datasets() and "flights" in load_datasets()


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_each_mistake_names_its_file_and_line(contracts, case):
    path, line, message = broken(contracts, case)
    with pytest.raises(ContractError) as raised:
        load_datasets()
    problems = raised.value.problems
    assert len(problems) == 1, "\n".join(map(str, problems))
    problem = problems[0]
    assert (problem.file, problem.line) == (path, line), str(problem)
    assert message in problem.message, str(problem)
    assert str(problem).startswith(f"{path}:{line}: ")


def test_a_name_declared_twice_names_both_files(contracts):
    # The repository declares `weather`; a second contract with that name elsewhere is refused.
    copy = contracts / "weather.odcs.yaml"
    contracts.mkdir()
    copy.write_text((settings.REPOSITORY_DATASETS / "weather.odcs.yaml").read_text())
    with pytest.raises(ContractError) as raised:
        load_datasets()
    (problem,) = raised.value.problems
    name_line = copy.read_text().splitlines().index("name: weather") + 1
    assert (problem.file, problem.line) == (copy, name_line)
    assert "'weather' is also declared in" in problem.message
    assert str(settings.REPOSITORY_DATASETS / "weather.odcs.yaml") in problem.message


def test_dataset_check_lists_every_problem_and_exits_1(contracts):
    expected = [broken(contracts, case) for case in sorted(BROKEN)]
    good = write(contracts, "readings", VALID)
    env = {**os.environ, settings.DATASETS_ENV: str(contracts)}
    run = lambda *files: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "data_platform", "dataset", "check", *map(str, files)],
        cwd=settings.PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120)

    whole_set = run()  # no file: every contract, like the code location
    assert whole_set.returncode == 1, whole_set.stdout + whole_set.stderr
    for path, line, message in expected:
        assert any(row.startswith(f"{path}:{line}: ") and message in row for row in whole_set.stdout.splitlines()), (
            path, line, whole_set.stdout)
    assert f"OK readings ({good})" in whole_set.stdout and "OK flights (" in whole_set.stdout
    assert f"{len(expected)} problem(s) in {len(expected)} contract(s)" in whole_set.stdout

    one = run(good)  # one file, checked against the set: its references resolve, the others are not its problem
    assert one.returncode == 0 and one.stdout.strip() == f"OK readings ({good})", one.stdout + one.stderr


def test_a_broken_contract_disables_only_its_own_dataset(contracts):
    """The code location loads: every other dataset, the ML graph and the automation are defined, and
    the broken dataset is present, marked broken, with its problem in words; the load prints it."""
    path, line, message = broken(contracts, "misspelled_key")
    write(contracts, "readings", VALID)  # another user's good contract beside it
    env = {**os.environ, settings.DATASETS_ENV: str(contracts)}
    script = """
import json
from data_platform.definitions import defs
graph = defs.resolve_asset_graph()
nodes = {key.to_user_string(): graph.get(key) for key in graph.get_all_asset_keys()}
print(json.dumps({
    "assets": {name: [node.group_name, node.description, {k: str(getattr(v, "value", v)) for k, v in node.metadata.items()}]
               for name, node in nodes.items()},
    "checks": sorted(k.to_user_string() for k in graph.asset_check_keys),
    "sensors": sorted(s.name for s in defs.sensors), "schedules": sorted(s.name for s in defs.schedules),
}))
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=settings.PROJECT_ROOT, env=env, capture_output=True,
                          text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.splitlines()[-1])
    where = f"{path}:{line}: "
    # The load says what is broken, where, before anything else.
    assert f"dataset 'misspelled_key' is disabled: 1 problem(s) in {path}" in done.stderr
    assert where in done.stderr and message in done.stderr
    assets = found["assets"]
    for name in ("raw/flights", "cleaned/flights", "cleaned/weather", "features/flight_features", "ml/delay_model",
                 "raw/readings", "cleaned/readings"):
        assert name in assets and assets[name][0] != "broken_contracts", name
    for layer in ("raw", "cleaned"):
        group, description, metadata = assets[f"{layer}/misspelled_key"]
        assert group == "broken_contracts"
        assert description.startswith("BROKEN CONTRACT: misspelled_key.odcs.yaml does not validate")
        assert where in description and message in description
        assert where in metadata["contract_problems"] and metadata["problem_count"] == "1"
        assert f"{layer}/misspelled_key:contract_is_valid" in found["checks"]
    assert "cleaned/readings:key_unique" in found["checks"] and "cleaned/flights:key_unique" in found["checks"]
    assert found["sensors"] and found["schedules"]

    # Fixed, the same keys are the dataset again.
    path.write_text(path.read_text().replace("requird: true", "required: true"))
    fixed = subprocess.run([sys.executable, "-c", script], cwd=settings.PROJECT_ROOT, env=env, capture_output=True,
                           text=True, timeout=180)
    assets = json.loads(fixed.stdout.splitlines()[-1])["assets"]
    assert assets["cleaned/misspelled_key"][0] == "cleaned" and "disabled" not in fixed.stderr


def test_a_broken_contracts_assets_fail_with_its_problems(contracts, instance):
    from dagster import AssetSelection, materialize

    from data_platform.assets.broken_contract import broken_contract_definitions
    from data_platform.datasets import read_declared

    path, line, message = broken(contracts, "unknown_type")
    declared = read_declared([path])
    assert not declared.datasets and list(declared.broken) == ["unknown_type"]
    defs = broken_contract_definitions(declared.broken["unknown_type"])
    result = materialize([*defs.assets, *defs.asset_checks], instance=instance, raise_on_error=False)
    assert not result.success
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    shown = failure.step_failure_data.user_failure_data.description
    assert shown.startswith(f"1 problem(s) in {path}:\n{path}:{line}: ") and message in shown
    # The checks alone (what *Execute checks* runs): each fails, ERROR, with the problems as its description.
    checked = materialize([*defs.assets, *defs.asset_checks], instance=instance, raise_on_error=False,
                          selection=AssetSelection.all_asset_checks())
    evaluations = [e.event_specific_data for e in checked.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    assert sorted((e.asset_key.to_user_string(), e.check_name, e.passed, e.severity.value) for e in evaluations) == [
        ("cleaned/unknown_type", "contract_is_valid", False, "ERROR"),
        ("raw/unknown_type", "contract_is_valid", False, "ERROR")]
    assert all(f"{path}:{line}: " in e.description for e in evaluations)


def test_a_reference_to_a_broken_dataset_is_not_the_referrers_problem(contracts):
    from data_platform.datasets import read_declared

    airlines = (settings.REPOSITORY_DATASETS / "airlines.odcs.yaml").read_text()
    (contracts / "x").mkdir(parents=True)
    broken_airlines = contracts / "x" / "airlines.odcs.yaml"
    broken_airlines.write_text(airlines.replace("logicalType: string", "logicalType: strng", 1))
    good = write(contracts, "readings", VALID)  # references airlines.carrier
    files = [p for p in (settings.REPOSITORY_DATASETS).glob("*.odcs.yaml") if p.name != "airlines.odcs.yaml"]
    declared = read_declared([*files, broken_airlines, good])
    assert "readings" in declared.datasets and "flights" in declared.datasets
    assert list(declared.broken) == ["airlines"]
    # A second file of a declared name is broken under a name of its own: the first keeps its assets.
    copy = contracts / "weather.odcs.yaml"
    copy.write_text((settings.REPOSITORY_DATASETS / "weather.odcs.yaml").read_text())
    declared = read_declared([*sorted(settings.REPOSITORY_DATASETS.glob("*.odcs.yaml")), copy])
    (name,) = declared.broken
    assert "weather" in declared.datasets and name.startswith("weather_") and declared.broken[name].path == copy
    assert "'weather' is also declared in" in declared.broken[name].problems[0].message


def test_a_contract_without_a_key_is_refused(contracts):
    # Cleaning deduplicates on the key: without one every row would "conflict" with every other.
    text = VALID.replace("        primaryKey: true\n        primaryKeyPosition: 1\n", "").replace(PARTITION_COLUMN, "")
    path = write(contracts, "keyless", text)
    with pytest.raises(ContractError) as raised:
        read_contract(path)
    (problem,) = raised.value.problems
    assert problem.line == text.splitlines().index("    properties:") + 1
    assert "a dataset needs a key" in problem.message and "primaryKey" in problem.message


def test_dataset_check_compares_the_source_header_with_the_contract(contracts):
    path = write(contracts, "readings", VALID)
    (contracts / "readings.csv").write_text("taken_on,carrier\n2013/01/02,UA\n")  # `level` is missing
    done = subprocess.run([sys.executable, "-m", "data_platform", "dataset", "check", str(path)],
                          cwd=settings.PROJECT_ROOT, env={**os.environ, settings.DATASETS_ENV: str(contracts)},
                          capture_output=True, text=True, timeout=120)
    source_line = VALID.splitlines().index("        value: {type: file, path: readings.csv}") + 1
    assert done.returncode == 1
    assert f"{path}:{source_line}: schema[0].customProperties.source: " in done.stdout, done.stdout
    assert "missing required column(s) ['level']" in done.stdout


def test_a_misspelled_logical_type_key_says_what_is_missing(contracts):
    text = VALID.replace("        logicalType: number\n", "        logicalTyp: number\n")
    path = write(contracts, "typo", text)
    with pytest.raises(ContractError) as raised:
        read_contract(path)
    line = text.splitlines().index("        logicalTyp: number") + 1
    messages = {(p.line, p.message.split(";")[0]) for p in raised.value.problems}
    # Not the ODCS schema's "'map' is a required property" (its if/then also fires without a logicalType).
    assert messages == {(line - 1, "a property needs a logicalType: one of string, integer, number, boolean, date, "
                                   "timestamp"), (line, "unknown key 'logicalTyp'")}, messages


def test_the_pre_commit_hook_checks_the_changed_contracts(contracts):
    """`.pre-commit-hooks.yaml` as pre-commit runs it: its entry, on the staged files its `files` matches."""
    import re
    import shlex

    import yaml

    (hook,) = yaml.safe_load((settings.PROJECT_ROOT / ".pre-commit-hooks.yaml").read_text())
    assert hook["id"] == "dataset-check" and hook["language"] == "python"
    good = write(contracts, "readings", VALID)
    path, line, message = broken(contracts, "misspelled_key")
    staged = [good, path, contracts / "readings.csv", settings.PROJECT_ROOT / "README.md"]
    env = {**os.environ, settings.DATASETS_ENV: str(contracts)}

    def commit(files):
        matched = [str(f) for f in files if re.search(hook["files"], str(f))]
        entry = shlex.split(hook["entry"])
        assert entry[0] == "python"  # pre-commit's environment has the package installed, like our venv
        return subprocess.run([sys.executable, *entry[1:], *matched], cwd=settings.PROJECT_ROOT, env=env,
                              capture_output=True, text=True, timeout=120), matched

    refused, matched = commit(staged)
    assert matched == [str(good), str(path)]
    assert refused.returncode == 1 and f"{path}:{line}: " in refused.stdout and message in refused.stdout
    accepted, _ = commit([good, contracts / "readings.csv"])
    assert accepted.returncode == 0 and f"OK readings ({good})" in accepted.stdout, accepted.stdout


def test_a_broken_flights_contract_leaves_the_other_datasets_and_the_ml_graph_loaded(tmp_path):
    """The ML graph follows the flights calendar: with flights' contract broken it keeps the calendar the
    file declares, and every other dataset, sensor and schedule loads."""
    repository = tmp_path / "datasets"
    shutil.copytree(settings.REPOSITORY_DATASETS, repository)
    flights = repository / "flights.odcs.yaml"
    flights.write_text(flights.read_text().replace("logicalType: integer", "logicalTyp: integer", 1))
    script = f"""
import json
from data_platform import settings
settings.datasets_dirs = lambda configured=None: [settings.Path({str(repository)!r})]
from data_platform.definitions import defs
from data_platform.assets.features import PARTITIONS
graph = defs.resolve_asset_graph()
print(json.dumps({{"groups": {{k.to_user_string(): graph.get(k).group_name for k in graph.get_all_asset_keys()}},
                   "calendar": [PARTITIONS.get_first_partition_key(), PARTITIONS.get_last_partition_key()],
                   "sensors": len(defs.sensors), "schedules": len(defs.schedules)}}))
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=settings.PROJECT_ROOT, capture_output=True, text=True,
                          timeout=180, env={k: v for k, v in os.environ.items() if k != settings.DATASETS_ENV})
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.splitlines()[-1])
    assert found["groups"]["raw/flights"] == found["groups"]["cleaned/flights"] == "broken_contracts"
    assert found["groups"]["cleaned/weather"] == "cleaned" and found["groups"]["features/flight_features"] == "features"
    assert found["calendar"] == ["2013-01-01", "2013-12-31"] and found["sensors"] and found["schedules"]
    assert f"dataset 'flights' is disabled" in done.stderr and f"{flights}:" in done.stderr
