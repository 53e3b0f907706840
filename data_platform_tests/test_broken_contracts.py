"""Broken contracts: each mistake a person makes gives one clear error naming the file and the line,
through `read_contract`/`load_datasets`, through `python -m data_platform dataset check` (exit code 1),
and through loading the code location (it refuses to load; nothing is skipped silently)."""

from __future__ import annotations

import os
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


def test_the_code_location_refuses_to_load_a_broken_contract(contracts):
    path, line, message = broken(contracts, "misspelled_key")
    env = {**os.environ, settings.DATASETS_ENV: str(contracts)}
    done = subprocess.run([sys.executable, "-c", "import data_platform.definitions"], cwd=settings.PROJECT_ROOT,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "ContractError" in done.stderr and f"{path}:{line}: " in done.stderr and message in done.stderr, done.stderr


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
