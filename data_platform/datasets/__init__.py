"""Datasets declared as ODCS contract files: discovery, validation and the registry the engine serves.

`declared()` reads every `*.odcs.yaml` in the contracts folders (`settings.datasets_dirs()`: the
datasets component's `contracts_dirs`, or DATA_PLATFORM_CONTRACTS_DIRS, then DATA_PLATFORM_DATASETS_DIR),
validates each (see `load.py`) and then the set as a whole (unique names, references to datasets and
columns that exist). A file with problems is a `BrokenContract`:
it disables its own dataset only (the component shows it as broken, with every file and line at
fault), never the others. `load_datasets()` is the strict form: any problem raises `ContractError`.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from data_platform import settings
from data_platform.datasets.load import SUFFIX, ContractError, Problem, line_of, read_contract, read_document
from data_platform.datasets.model import Dataset

__all__ = ["BrokenContract", "ContractError", "Dataset", "Declared", "contract_files", "dataset_name", "declared",
           "load_datasets", "read_declared", "validate_set"]


@dataclass(frozen=True)
class BrokenContract:
    """A contract file that does not validate: the dataset it names and every problem in it."""

    name: str
    path: Path
    problems: tuple[Problem, ...]

    def report(self) -> str:
        return f"{len(self.problems)} problem(s) in {self.path}:\n" + "\n".join(map(str, self.problems))


@dataclass(frozen=True)
class Declared:
    """The contract files read as a whole: the datasets that validate, and the broken ones by name."""

    datasets: dict[str, Dataset]
    broken: dict[str, BrokenContract]


def contract_files(folders: list[Path] | None = None) -> list[Path]:
    folders = settings.datasets_dirs() if folders is None else folders
    return [path for folder in folders if folder.is_dir() for path in sorted(folder.glob(f"*{SUFFIX}"))]


def read_declared(files: list[Path] | None = None) -> Declared:
    """Every contract file: a broken one (its own problems, or a clash with the set) is set aside."""
    files = contract_files() if files is None else files
    datasets, problems = [], {}
    for file in files:
        try:
            datasets.append(read_contract(file))
        except ContractError as error:
            problems[file] = list(error.problems)
    broken_names = {dataset_name(file) for file in problems}
    for problem in validate_set(datasets, broken_names):
        problems.setdefault(Path(problem.file), []).append(problem)
    good = {d.name: d for d in datasets if d.path not in problems}
    broken = {}
    for file, found in problems.items():
        name = dataset_name(file)
        if name in good or name in broken:  # a second file of a declared name: keyed by its file
            name = f"{name}_{hashlib.sha256(str(file).encode()).hexdigest()[:8]}"
        broken[name] = BrokenContract(name, file, tuple(found))
    return Declared(good, broken)


def dataset_name(file: Path) -> str:
    """The dataset a contract file declares (its name must match the file name), usable as an asset key."""
    stem = file.name[: -len(SUFFIX)] if file.name.endswith(SUFFIX) else file.stem
    return re.sub(r"[^a-z0-9_]", "_", stem.lower()) or "unnamed"


def load_datasets(files: list[Path] | None = None) -> dict[str, Dataset]:
    """Every dataset by name; ContractError naming each broken file and line."""
    found = read_declared(files)
    if found.broken:
        raise ContractError([p for broken in found.broken.values() for p in broken.problems])
    return found.datasets


def validate_set(datasets: list[Dataset], broken: set[str] = frozenset()) -> list[Problem]:
    """Problems between contracts: one name twice, references to unknown datasets or columns.

    A reference to a dataset whose own contract is broken is not the referrer's problem: its columns
    cannot be known until that file is fixed.
    """
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
                if target is None and reference.dataset in broken:
                    continue
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
    """The datasets of the current contract files that validate (re-read when a file changes)."""
    return declared().datasets


def declared(folders: list[Path] | None = None) -> Declared:
    """The current contract files, read once per version of the set of files."""
    files = contract_files(folders)
    return _declared(tuple((path, path.stat().st_mtime_ns) for path in files))


@functools.lru_cache(maxsize=4)
def _declared(files: tuple) -> Declared:
    return read_declared([path for path, _ in files])


def dataset(name: str) -> Dataset:
    found = registry().get(name)
    if found is None:
        raise KeyError(f"no dataset {name!r}; declared: {', '.join(sorted(registry()))}")
    return found
