"""`make dev` as a test fixture: the real processes on free loopback ports in a temporary data home,
driven through the GraphQL API the UI uses, and stopped the way a terminal or a supervisor stops it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

from data_platform.settings import PROJECT_ROOT

FINISHED = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}
PORTS = ("DAGSTER_UI_PORT", "DAGSTER_CODE_PORT", "MLFLOW_UI_PORT", "REPORTS_PORT")

ASSETS = """{ assetNodes { assetKey { path } isPartitioned isExecutable opName
  byDay: assetMaterializations(partitions: %s) { ...materialization }
  latest: assetMaterializations(limit: 1) { ...materialization }
  assetChecksOrError { ... on AssetChecks { checks { name blocking
    executionForLatestMaterialization { status evaluation { success severity description } } } } } } }
fragment materialization on MaterializationEvent { partition runId
  metadataEntries { label __typename ... on IntMetadataEntry { intValue } ... on TextMetadataEntry { text }
    ... on UrlMetadataEntry { url } } }"""
LAUNCH = """mutation($params: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $params) {
  __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message stack }
  ... on InvalidSubsetError { message } ... on PartitionSetNotFoundError { message } } }"""
BACKFILL = """query($id: String!) { partitionBackfillOrError(backfillId: $id) { __typename
  ... on PartitionBackfill { status error { message } numPartitions
    runs(limit: 100) { id status tags { key value } assetSelection { path } }
    assetBackfillData { assetBackfillStatuses { __typename
      ... on AssetPartitionsStatusCounts { assetKey { path } numPartitionsTargeted numPartitionsMaterialized numPartitionsFailed } } } }
  ... on PythonError { message } } }"""
PARTITIONS = """query($key: AssetKeyInput!) { assetNodeOrError(assetKey: $key) { ... on AssetNode {
  assetMaterializations { partition } } } }"""
SENSOR = """query($selector: SensorSelector!) { sensorOrError(sensorSelector: $selector) { __typename
  ... on Sensor { sensorState { status ticks(limit: 20) { status timestamp skipReason runIds error { message } } } } } }"""
RUNS = """query($filter: RunsFilter) { runsOrError(filter: $filter) {
  ... on Runs { results { runId status endTime assetSelection { path } tags { key value } } } } }"""
WORKSPACE = """{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus
  locationOrLoadError { __typename ... on RepositoryLocation { repositories { name } } ... on PythonError { message } } } } } }"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class DevStack:
    """`make dev` (honcho: code server, webserver, daemon, MLflow UI, report server) in its own
    process group, with its own data home and free ports."""

    def __init__(self, root: Path):
        self.root = root
        self.data_home = root / "data"
        self.dagster_home = self.data_home / "dagster"
        self.ports = {name: free_port() for name in PORTS}
        self.ui = f"http://127.0.0.1:{self.ports['DAGSTER_UI_PORT']}"
        self.mlflow_ui = f"http://127.0.0.1:{self.ports['MLFLOW_UI_PORT']}"
        self.reports = f"http://127.0.0.1:{self.ports['REPORTS_PORT']}"
        self.log = root / "make_dev.log"
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("DATA_PLATFORM_", "DAGSTER_")) and k not in PORTS}
        self.env = {**env, **{name: str(port) for name, port in self.ports.items()},
                    "DATA_PLATFORM_HOME": str(self.data_home)}
        self.process: subprocess.Popen | None = None
        self.stop_seconds: float | None = None

    def start(self) -> "DevStack":
        with self.log.open("w") as log:
            self.process = subprocess.Popen(
                ["make", "--no-print-directory", "-s", "dev"], cwd=PROJECT_ROOT, env=self.env,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        return self

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        request = urllib.request.Request(f"{self.ui}/graphql", data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            answer = json.loads(response.read())
        assert "errors" not in answer, answer["errors"]
        return answer["data"]

    def wait_until(self, what: str, probe, timeout: float, every: float = 2.0):
        deadline = time.monotonic() + timeout
        while True:
            assert self.process.poll() is None, f"make dev exited while waiting for {what}:\n{self.tail()}"
            try:
                found = probe()
            except (OSError, AssertionError):
                found = None
            if found:
                return found
            assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}:\n{self.tail()}"
            time.sleep(every)

    def tail(self) -> str:
        return self.log.read_text()[-4000:] if self.log.exists() else ""

    def loaded_location(self):
        entries = self.graphql(WORKSPACE)["workspaceOrError"]["locationEntries"]
        for entry in entries:
            location = entry["locationOrLoadError"]
            assert location is None or location["__typename"] != "PythonError", location
            if entry["loadStatus"] == "LOADED" and location and location["__typename"] == "RepositoryLocation":
                return entry["name"], location["repositories"][0]["name"]
        return None

    def wait_until_up(self, timeout: float = 240) -> tuple[str, str]:
        location = self.wait_until("the code location to load", self.loaded_location, timeout)
        for url in (self.mlflow_ui, self.reports):
            self.wait_until(url, lambda: urllib.request.urlopen(url, timeout=5).status == 200, 120)
        return location

    def launch_backfill(self, params: dict) -> dict:
        launched = self.graphql(LAUNCH, {"params": params})["launchPartitionBackfill"]
        assert launched["__typename"] == "LaunchBackfillSuccess", launched
        backfill_id = launched["backfillId"]

        def finished():
            backfill = self.graphql(BACKFILL, {"id": backfill_id})["partitionBackfillOrError"]
            return backfill if backfill["status"] in FINISHED else None

        return {"id": backfill_id, **self.wait_until(f"backfill {params.get('title')}", finished, 600, every=3)}

    def automated_runs(self) -> list[dict]:
        """The runs the automation sensor launched, found by the run tags its definition sets."""
        from data_platform import automation
        from data_platform.definitions import defs

        sensor = defs.get_repository_def().get_sensor_def(automation.AUTOMATION_SENSOR)
        tags = [{"key": key, "value": value} for key, value in sensor.run_tags.items()]
        assert tags, "the automation sensor sets no run tags to find its runs by"
        return self.graphql(RUNS, {"filter": {"tags": tags}})["runsOrError"]["results"]

    def sensor_state(self, name: str) -> dict:
        location, repository = self.loaded_location()
        selector = {"repositoryLocationName": location, "repositoryName": repository, "sensorName": name}
        return self.graphql(SENSOR, {"selector": selector})["sensorOrError"]["sensorState"]

    def materialized_partitions(self, key: str) -> set[str]:
        node = self.graphql(PARTITIONS, {"key": {"path": key.split("/")}})["assetNodeOrError"]
        return {event["partition"] for event in node["assetMaterializations"]}

    def processes(self) -> list[int]:
        """Every process on this machine whose environment points at this stack's data home."""
        marker = f"DATA_PLATFORM_HOME={self.data_home}".encode()
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and int(entry.name) != os.getpid():
                try:
                    if marker in (entry / "environ").read_bytes().split(b"\0"):
                        found.append(int(entry.name))
                except (FileNotFoundError, PermissionError, ProcessLookupError):
                    pass
        return found

    def stop(self, how: signal.Signals = signal.SIGTERM, grace: float = 30) -> float:
        """`how` to make's process group, as a terminal sends Ctrl-C (SIGINT) and systemd (its default
        KillMode) or a CI runner stops a job (SIGTERM); honcho's processes have process groups of their
        own and are stopped by honcho. Seconds until none of its processes is left; anything still
        alive after `grace` seconds is killed (and the caller's assertion fails)."""
        if self.process is None or self.process.poll() is not None:
            return self.stop_seconds or 0.0
        started = time.monotonic()
        os.killpg(self.process.pid, how)
        while (self.process.poll() is None or self.processes()) and time.monotonic() - started < grace:
            time.sleep(0.2)
        self.stop_seconds = time.monotonic() - started
        for pid in self.processes():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)
        return self.stop_seconds


def metadata(entries: list[dict]) -> dict:
    return {entry["label"]: entry.get("intValue", entry.get("text", entry.get("url"))) for entry in entries}
