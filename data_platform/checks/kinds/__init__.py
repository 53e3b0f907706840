"""Check kinds: one module each, registered by the contract property it reads.

A check kind is everything the platform knows about one kind of dataset check, in one file: every
module of this package is one, and any other module can add one with `register`.

* `property`: the schema object's customProperty it reads, with `schema`, that value's JSON Schema:
  both become part of the platform profile (an unknown or misspelled property stays an error).
  None: the kind reads what every contract declares (its columns, key, references) and
  applies to every dataset;
* `read(value, dataset, problem)`: the validated value as the kind's configuration, which the
  dataset keeps in `Dataset.checks[property]`; `problem(path, message)` reports what a schema cannot
  say (a column that does not exist), at its line in the contract;
* `checks(dataset, config)`: the checks (`framework.Check`: name, description, severity, evaluator)
  on raw/NAME and cleaned/NAME, which the framework runs;
* `definitions(dataset, config)`: optional, for a kind that needs assets or a check step of its own
  (drift records its figures on an asset): (assets, asset checks).

The datasets component (`data_platform/components/datasets.py`) asks every kind for each dataset.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from dataclasses import dataclass
from typing import Any, Callable, Optional


def _nothing(dataset, config) -> list:
    return []


def _as_given(value, dataset, problem):
    return value


@dataclass(frozen=True)
class CheckKind:
    name: str
    checks: Callable[[Any, Any], list] = _nothing
    property: Optional[str] = None
    schema: Optional[dict] = None
    read: Callable[[Any, Any, Callable], Any] = _as_given
    definitions: Optional[Callable[[Any, Any], tuple[list, list]]] = None

    def config(self, dataset) -> Any:
        """What the dataset's contract declares for this kind (None: the kind does not apply)."""
        return dataset.checks.get(self.property) if self.property else None

    def applies_to(self, dataset) -> bool:
        return self.property is None or self.property in dataset.checks


_KINDS: dict[str, CheckKind] = {}


def register(kind: CheckKind) -> CheckKind:
    """Add a kind; its property must be new to the profile and to every registered kind."""
    from data_platform.datasets.profile import SCHEMA_PROPERTIES

    if kind.property is not None:
        if kind.schema is None:
            raise ValueError(f"check kind {kind.name!r} reads {kind.property!r}: give its JSON Schema")
        taken = SCHEMA_PROPERTIES.keys() | {k.property for k in _KINDS.values() if k.name != kind.name}
        if kind.property in taken:
            raise ValueError(f"check kind {kind.name!r}: the contract property {kind.property!r} is already read "
                             "by the platform profile or another check kind")
    _KINDS[kind.name] = kind
    return kind


def registered() -> list[CheckKind]:
    """Every kind (this package's modules and those registered elsewhere), in name order."""
    _import_package()
    return sorted(_KINDS.values(), key=lambda kind: kind.name)


def by_property() -> dict[str, CheckKind]:
    return {kind.property: kind for kind in registered() if kind.property is not None}


@functools.lru_cache(maxsize=1)
def _import_package() -> None:
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        importlib.import_module(f"{__name__}.{module.name}")
