"""Where a run's data work happens: in the step process (the default), or on a Dask cluster.

`DATA_PLATFORM_DASK_SCHEDULER` (the `compute` resource's `scheduler`) says where:

* unset: the work runs in the step process (Dask is not imported);
* `local:N`: a `LocalCluster` of N worker processes (one thread each) is started for the run;
* `tcp://HOST:PORT`: an existing cluster (`dask scheduler`, `dask worker --nthreads 1`).

Everywhere, a run over a day range is split into chunks of days, and each chunk is the same function
(`run_chunk`: DuckDB over the Delta tables) that commits its own days in one commit. In process the
chunks (31 days) run one after another, so the memory a step needs is that of a chunk whatever the
length of the range; on a cluster the chunks (7 days) run side by side on the workers, and disjoint
days commit side by side. A worker that dies mid-chunk has its chunk run again elsewhere (a chunk
replaces its days, so a re-run never duplicates rows). A chunk that raises fails the step with its
days and error (on a cluster once the other chunks are done); the days committed before are
consistent and a re-run completes the rest. The Dagster run, its checks and lineage are the same on
every setting.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import threading
import time
from dataclasses import dataclass
from typing import Any, Iterator, Optional

from dagster import ConfigurableResource, Failure, InitResourceContext, MetadataValue, RetryRequested
from pydantic import Field, PrivateAttr

from data_platform import settings
from data_platform.partitions import day_chunks

SCHEDULER_ENV = "DATA_PLATFORM_DASK_SCHEDULER"
CONNECT_TIMEOUT = "10s"
CLUSTER_CHUNK_DAYS = 7     # a month is 5 chunks: enough to keep every worker busy
PROCESS_CHUNK_DAYS = 31    # what one chunk holds in memory: 10x the bundled data stays far below 4 GiB
CHUNK_RETRIES = 2          # a chunk that raises is run again this often before the step fails
_ENVIRONMENT = threading.Lock()   # a worker serves one chunk at a time: the chunk's settings are its process's


@dataclass(frozen=True)
class Chunk:
    """What one chunk did: its days, its outcome, where and how long it ran."""

    first: dt.date
    last: dt.date
    outcome: Any
    rows: int
    worker: str
    seconds: float


def run_chunk(task: str, name: str, first: dt.date, last: dt.date, writer: dict, environment: dict,
              source: Optional[dict] = None, conn=None) -> Chunk:
    """One task over days first..last of dataset `name`, in this process; commits those days.
    `source`: the `source` resource's configuration (ingestion); `conn`: a storage connection to work
    in (in process, the chunks of a step share one), else one is opened for the chunk."""
    from data_platform import storage
    from data_platform.assets.raw import ingest
    from data_platform.cleaning import clean
    from data_platform.datasets import dataset
    from data_platform.ingest import SourceResource

    started = time.perf_counter()
    with _environment(environment), (contextlib.nullcontext(conn) if conn else storage.connection()) as conn:
        storage.record_writer(conn, writer)
        if task == "ingest":
            outcome = ingest(conn, SourceResource(**source), dataset(name), first, last, writer.get("dagster_run_id", ""))
            rows = outcome
        elif task == "clean":
            outcome = clean(conn, dataset(name), first, last, writer.get("dagster_run_id", ""))
            rows = sum(outcome["raw_rows"].values())
        elif task == "features":
            from data_platform.assets.features import CONTRACT, compute_features

            outcome = compute_features(conn, first, last)
            rows = _rows(conn, CONTRACT.name, first, last)
        else:
            raise ValueError(f"unknown task {task!r}")
    return Chunk(first, last, outcome, int(rows), _worker_address(), time.perf_counter() - started)


def _rows(conn, table: str, first: dt.date, last: dt.date) -> int:
    return conn.execute(f"SELECT count(*) FROM {table} WHERE day BETWEEN ? AND ?", [first, last]).fetchall()[0][0]


@contextlib.contextmanager
def _environment(values: dict) -> Iterator[None]:
    """The run's settings (data home, landing folder, sample) in this process while a chunk runs."""
    with _ENVIRONMENT:
        saved = {key: os.environ.get(key) for key in values}
        os.environ.update({key: value for key, value in values.items() if value is not None})
        for key in [key for key, value in values.items() if value is None]:
            os.environ.pop(key, None)
        try:
            yield
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def _worker_address() -> str:
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return f"step process {os.getpid()}"


def settings_environment() -> dict:
    """The settings a chunk needs, as environment values (None: unset)."""
    names = (settings.HOME_ENV, settings.LANDING_ENV, settings.SAMPLE_ENV, settings.CONTRACTS_ENV, settings.DATASETS_ENV,
             settings.MEMORY_LIMIT_ENV)
    values = {name: os.environ.get(name) for name in names}
    values[settings.HOME_ENV] = str(settings.data_home())
    return values


class ComputeResource(ConfigurableResource):
    """Runs a task over a day range in chunks of days: one after another in the step process, or
    side by side on a Dask cluster."""

    scheduler: str = Field(default="", description="'' (in process), 'local:N' or 'tcp://HOST:PORT'")
    chunk_days: Optional[int] = Field(
        default=None, ge=1,
        description=f"days per chunk (default {CLUSTER_CHUNK_DAYS} on a cluster, where chunks are spread over the workers; "
                    f"{PROCESS_CHUNK_DAYS} in process, where they bound the memory a step needs)")
    _opened: Optional[contextlib.ExitStack] = PrivateAttr(default=None)
    _client: Any = PrivateAttr(default=None)

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        if self._opened is not None:  # the run's client, and its LocalCluster (local:N)
            self._opened.close()
            self._opened = self._client = None

    @classmethod
    def from_env(cls) -> "ComputeResource":
        return cls(scheduler=os.environ.get(SCHEDULER_ENV, "").strip())

    def run(self, context, task: str, name: str, first: dt.date, last: dt.date,
            source=None) -> tuple[list[Chunk], dict]:
        """Run `task` over first..last; returns the chunks and metadata saying how it was spread.
        `source`: the run's `SourceResource` (ingestion reads with its configuration)."""
        from data_platform import storage

        storage.refuse_unmigrated_home_in_runs()
        writer = storage.writer_of(context)
        environment = settings_environment()
        source = {"landing_dir": source.landing_dir, "sample_fraction": source.sample_fraction} if source else None
        if not self.scheduler:
            return self._in_process(context, task, name, first, last, writer, environment, source)
        return self._on_cluster(context, self.client(), task, name, first, last, writer, environment, source)

    def _in_process(self, context, task, name, first, last, writer, environment, source):
        """The chunks one after another; an error is raised as the task raised it (retry policies see it)."""
        from data_platform import storage

        size = self.chunk_days or PROCESS_CHUNK_DAYS
        if task == "ingest" and not _reads_daily_files(name, source):
            size = (last - first).days + 1  # one source file: every chunk would read all of it, so read it once
        ranges = day_chunks(first, last, size)
        done = []
        # One connection for the step: each chunk's commit re-reads the table it wrote; the tables it
        # reads stay at the versions the step started from.
        with storage.connection() as conn:
            for a, b in ranges:
                try:
                    chunk = run_chunk(task, name, a, b, writer, environment, source, conn)
                except storage.ConcurrentWrite as error:
                    context.log.warning(str(error))
                    raise RetryRequested(max_retries=storage.CONFLICT_RETRIES, seconds_to_wait=1) from error
                except Exception:
                    if done:
                        context.log.warning(f"{task} {name}: chunk {a}..{b} failed; committed before it: "
                                            + ", ".join(f"{c.first}..{c.last}" for c in done))
                    raise
                done.append(chunk)
                if len(ranges) > 1:
                    context.log.info(_finished(chunk, len(done), len(ranges)))
        metadata = {"compute": "in process", "chunks_in_run": len(done)}
        if len(done) > 1:
            metadata["chunk_log"] = _chunk_log(done)
        return done, metadata

    def _on_cluster(self, context, client, task, name, first, last, writer, environment, source):
        from distributed import as_completed

        size = self.chunk_days or CLUSTER_CHUNK_DAYS
        ranges = day_chunks(first, last, size)
        # a local:N cluster (and its dashboard) ends with the run: its link is for watching the run only
        ephemeral = self.scheduler.startswith("local:")
        dashboard = client.dashboard_link if _dashboard(client) else None
        context.log.info(f"{task} {name} {first}..{last}: {len(ranges)} chunk(s) of up to {size} day(s) "
                         f"on {len(client.scheduler_info()['workers'])} worker(s) of {self._address(client)}"
                         + (f"; Dask dashboard {dashboard}" + (" (until the run ends)" if ephemeral else "")
                            if dashboard else ""))
        futures = {client.submit(run_chunk, task, name, a, b, writer, environment, source, pure=False,
                                 retries=CHUNK_RETRIES, key=f"{task}-{name}-{a}-{b}-{writer.get('dagster_run_id', '')}"): (a, b)
                   for a, b in ranges}
        done, failed = [], []
        for future in as_completed(futures):
            a, b = futures[future]
            try:
                chunk = future.result()
            except Exception as error:  # the chunk's own error, raised on the worker
                failed.append(((a, b), error))
                context.log.error(f"chunk {a}..{b} failed: {type(error).__name__}: {error}")
                continue
            done.append(chunk)
            context.log.info(_finished(chunk, len(done), len(ranges)))
        if failed:
            committed = sorted(f"{c.first}..{c.last}" for c in done)
            raise Failure(
                description=f"{len(failed)} of {len(ranges)} chunk(s) of {task} {name} failed: "
                + "; ".join(f"{a}..{b}: {type(error).__name__}: {error}" for (a, b), error in failed)
                + f". Committed: {', '.join(committed) or 'none'} (each chunk is one commit); re-run the range.",
                allow_retries=False,
            )
        done.sort(key=lambda c: c.first)
        workers = sorted({c.worker for c in done})
        metadata = {
            "compute": f"dask {self._address(client)}",
            "chunks_in_run": len(done), "workers_in_run": len(workers),
            "chunk_log": _chunk_log(done),
        }
        if dashboard and not ephemeral:
            metadata["dask_dashboard"] = MetadataValue.url(dashboard)
        return done, metadata

    def _address(self, client) -> str:
        return self.scheduler if not self.scheduler.startswith("local:") else f"{self.scheduler} ({client.scheduler.address})"

    def client(self):
        """The run's Dask client: connected (or its LocalCluster started) on first use, closed after the run."""
        if self._client is not None:
            return self._client
        from distributed import Client, LocalCluster

        opened = contextlib.ExitStack()
        if self.scheduler.startswith("local:"):
            cluster = opened.enter_context(LocalCluster(
                n_workers=_worker_count(self.scheduler), threads_per_worker=1, processes=True, host="127.0.0.1",
                dashboard_address="127.0.0.1:0" if _has_dashboard() else None))
            client = opened.enter_context(Client(cluster))
        elif self.scheduler.startswith("tcp://"):
            try:
                client = opened.enter_context(Client(self.scheduler, timeout=CONNECT_TIMEOUT))
            except OSError as error:
                raise Failure(description=f"Dask scheduler {self.scheduler} is unreachable ({SCHEDULER_ENV}): {error}",
                              allow_retries=False) from error
        else:
            raise Failure(description=f"{SCHEDULER_ENV}={self.scheduler!r}: expected local:N or tcp://HOST:PORT",
                          allow_retries=False)
        self._opened, self._client = opened, client
        return client


def _reads_daily_files(name: str, source: Optional[dict]) -> bool:
    from data_platform.datasets import dataset
    from data_platform.ingest import SourceResource

    return SourceResource(**source).effective(dataset(name)).type == "landing"


def _finished(chunk: Chunk, count: int, total: int) -> str:
    return (f"chunk {chunk.first}..{chunk.last}: {chunk.rows:,} rows on {chunk.worker} "
            f"in {chunk.seconds:.1f} s ({count}/{total})")


def _chunk_log(done: list[Chunk]):
    return MetadataValue.md("| days | rows | worker | seconds |\n|---|---|---|---|\n" + "\n".join(
        f"| {c.first}..{c.last} | {c.rows:,} | {c.worker} | {c.seconds:.1f} |" for c in done))


def _worker_count(scheduler: str) -> int:
    try:
        count = int(scheduler.split(":", 1)[1])
    except ValueError:
        count = 0
    if count < 1:
        raise Failure(description=f"{SCHEDULER_ENV}={scheduler!r}: local:N needs N >= 1 workers", allow_retries=False)
    return count


def _has_dashboard() -> bool:
    import importlib.util

    return importlib.util.find_spec("bokeh") is not None


def _dashboard(client) -> bool:
    """Whether the scheduler serves its dashboard (it needs bokeh, and may be started without it)."""
    return "dashboard" in client.scheduler_info().get("services", {})


def merged(chunks_done: list[Chunk]) -> Any:
    """The chunks' outcomes as one: row counts summed, per-day figures ({name: {day: value}}) joined."""
    outcomes = [c.outcome for c in chunks_done]
    if all(isinstance(o, int) for o in outcomes):
        return sum(outcomes)
    joined: dict = {}
    for outcome in outcomes:
        for name, per_day in outcome.items():
            joined.setdefault(name, {}).update(per_day)
    return joined
