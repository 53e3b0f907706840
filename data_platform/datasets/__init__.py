"""Datasets declared as ODCS contract files: discovery, validation and the registry the engine serves.

`load_datasets()` reads every `*.odcs.yaml` in the repository's `datasets/` folder and in
`DATA_PLATFORM_DATASETS_DIR`, validates each (see `load.py`) and then the set as a whole (unique
names, references to datasets and columns that exist). Any problem raises `ContractError` listing
every file and line at fault: the code location does not load with a broken contract.
"""

from __future__ import annotations

import functools
from pathlib import Path

from data_platform import settings
from data_platform.datasets.load import SUFFIX, ContractError, Problem, line_of, read_contract, read_document
from data_platform.datasets.model import Dataset

__all__ = ["ContractError", "Dataset", "contract_files", "load_datasets", "validate_set"]


def contract_files(folders: list[Path] | None = None) -> list[Path]:
    folders = settings.datasets_dirs() if folders is None else folders
    return [path for folder in folders if folder.is_dir() for path in sorted(folder.glob(f"*{SUFFIX}"))]


def load_datasets(files: list[Path] | None = None) -> dict[str, Dataset]:
    """Every dataset by name; ContractError naming each broken file and line."""
    files = contract_files() if files is None else files
    datasets, problems = [], []
    for file in files:
        try:
            datasets.append(read_contract(file))
        except ContractError as error:
            problems.extend(error.problems)
    problems.extend(validate_set(datasets))
    if problems:
        raise ContractError(problems)
    return {dataset.name: dataset for dataset in datasets}


def validate_set(datasets: list[Dataset]) -> list[Problem]:
    """Problems between contracts: one name twice, references to unknown datasets or columns."""
    problems = []
    by_name: dict[str, Dataset] = {}
    for dataset in datasets:
        if dataset.name in by_name:
            _, lines = read_document(dataset.path)
            problems.append(Problem(dataset.path, line_of(lines, ("name",)), "name", f"dataset {dataset.name!r} is "
                                    f"also declared in {by_name[dataset.name].path}; a name can be declared once"))
        by_name.setdefault(dataset.name, dataset)
    for dataset in datasets:
        data, lines = read_document(dataset.path)
        declared = [prop.get("name") for prop in data["schema"][0].get("properties") or []]
        for prop in dataset.properties:
            index = declared.index(prop.name)
            for n, reference in enumerate(prop.references):
                path = ("schema", 0, "properties", index, "relationships", n, "to")
                target = by_name.get(reference.dataset)
                if target is None:
                    known = ", ".join(sorted(by_name)) or "none"
                    message = f"references dataset {reference.dataset!r}, which no contract declares (known: {known})"
                elif reference.target not in {p.name for p in target.properties}:
                    message = f"references column {reference.target!r}, which {reference.dataset} does not have"
                elif target.partitioned:
                    message = f"references {reference.dataset}, a partitioned dataset; references point at reference tables"
                elif not _has_ids(target, reference.target):
                    message = (f"ODCS tools resolve the reference by ids: give {target.path.name}'s schema object "
                               f"`id: {reference.dataset}` and its property {reference.target} `id: {reference.target}`")
                else:
                    continue
                problems.append(Problem(dataset.path, line_of(lines, path), "schema[0].properties"
                                        f"[{index}].relationships[{n}].to", message))
    return problems


def _has_ids(target: Dataset, column: str) -> bool:
    """The target contract's schema object and column carry the ids a fully qualified reference names."""
    data, _ = read_document(target.path)
    table = data["schema"][0]
    return table.get("id") == target.name and any(
        prop.get("id") == column and prop.get("name") == column for prop in table.get("properties") or [])


def registry() -> dict[str, Dataset]:
    """The datasets of the current contract files (re-read when a file changes)."""
    files = contract_files()
    return _registry(tuple((path, path.stat().st_mtime_ns) for path in files))


@functools.lru_cache(maxsize=4)
def _registry(files: tuple) -> dict[str, Dataset]:
    return load_datasets([path for path, _ in files])


def dataset(name: str) -> Dataset:
    found = registry().get(name)
    if found is None:
        raise KeyError(f"no dataset {name!r}; declared: {', '.join(sorted(registry()))}")
    return found
