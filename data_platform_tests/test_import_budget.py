"""Every process that loads the code location (code server, daemon, each run worker) imports
`data_platform.definitions`; its budget is 1.5x a bare `import dagster` (`make bench` measures both).
What keeps it there and can be checked exactly: the heavy libraries are imported inside the functions
that use them, and `make install` leaves the package's bytecode compiled."""

import importlib.util
import json
import subprocess
import sys

from data_platform.settings import PROJECT_ROOT

# The platform's own heavy dependencies (and tomlkit, which the component tree would parse
# pyproject.toml with): none is needed to build the definitions.
HEAVY = ["pandas", "numpy", "pyarrow", "deltalake", "polars", "sklearn", "scipy", "mlflow", "evidently",
         "jsonschema", "dask", "distributed", "fastapi", "redis", "tomlkit"]


def fresh(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()[-1]


def test_the_code_location_imports_no_heavy_library():
    loaded = json.loads(fresh("import sys, json; import data_platform.definitions; "
                              f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"))
    assert loaded == []


def test_make_install_leaves_every_module_of_the_package_compiled():
    """Timestamp bytecode that Python uses as it is: the magic number of this interpreter, the
    source's modification time and size."""
    done = subprocess.run(["make", "-s", "install"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    stale = []
    for source in sorted((PROJECT_ROOT / "data_platform").rglob("*.py")):
        compiled = source.parent / "__pycache__" / f"{source.stem}.{sys.implementation.cache_tag}.pyc"
        header = compiled.read_bytes()[:16] if compiled.exists() else b""
        stat = source.stat()
        expected = (importlib.util.MAGIC_NUMBER + bytes(4) + (int(stat.st_mtime) & 0xFFFFFFFF).to_bytes(4, "little")
                    + (stat.st_size & 0xFFFFFFFF).to_bytes(4, "little"))
        if header != expected:
            stale.append(str(source.relative_to(PROJECT_ROOT)))
    assert not stale, stale

