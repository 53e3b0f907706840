"""The online scoring service: `python -m data_platform serve` (FastAPI on 127.0.0.1:8000 by default).

It reads the online store (`ml/online_features`) and the MLflow registry, never the warehouse file.

* `POST /predict`: one flight -> probability, model version, cut-off, the features as of the cut-off,
  staleness, flags (unknown categories, facts not in the published schedule).
* `POST /predict/batch`: `{"flights": [...]}` (up to 1,000) -> `{"predictions": [...]}` in order.
* `GET /health`: model version, the store's as-of time and staleness; 503 when either is missing.

Model versions: a background thread polls the `champion` alias (every DATA_PLATFORM_SERVING_POLL_SECONDS,
default 10) and swaps in a newly aliased version once it is loaded and verified; a request takes the
current (version, model) pair once, so one request never mixes two versions.

Every prediction is logged (`data_platform.online.prediction_log`) for the serving-skew check.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Annotated, Any, Optional

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictInt, StrictStr

from data_platform.online import assemble as A
from data_platform.online import store as S
from data_platform.online.prediction_log import PredictionLog

log = logging.getLogger("data_platform.serving")

POLL_ENV = "DATA_PLATFORM_SERVING_POLL_SECONDS"
MAX_BODY_ENV = "DATA_PLATFORM_SERVING_MAX_BODY_BYTES"
MAX_BATCH = 1000
DEFAULT_MAX_BODY = 1_000_000  # a batch of 1,000 flights is about 200 KB


class Flight(BaseModel):
    """A flight to score: published identity and scheduled departure (ISO 8601 with an offset)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    carrier: Annotated[StrictStr, Field(pattern=r"^[A-Z0-9]{2}$", description="IATA carrier code, e.g. B6")]
    flight: Annotated[StrictInt, Field(ge=1, le=9999, description="Flight number")]
    origin: Annotated[StrictStr, Field(pattern=r"^[A-Z]{3}$", description="Origin airport (FAA code)")]
    dest: Annotated[StrictStr, Field(pattern=r"^[A-Z]{3}$", description="Destination airport (FAA code)")]
    scheduled_departure: Annotated[AwareDatetime, Field(description="Scheduled departure with a UTC offset")]
    tailnum: Annotated[Optional[StrictStr], Field(default=None, pattern=r"^[A-Z0-9]{2,8}$")] = None


class Batch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    flights: Annotated[list[Flight], Field(min_length=1, max_length=MAX_BATCH)]


@dataclass(frozen=True)
class LoadedModel:
    version: str
    model: Any  # CompiledModel


class ModelHolder:
    """The champion, reloaded when the alias moves; `current` is swapped as one reference."""

    def __init__(self, mlflow_store, poll_seconds: float):
        self.mlflow_store = mlflow_store
        self.poll_seconds = poll_seconds
        self.current: Optional[LoadedModel] = None
        self.error: Optional[str] = None
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def refresh(self) -> None:
        try:
            version = self.mlflow_store.version_by_alias()
        except Exception as error:  # registry unreachable: keep serving the loaded version
            self.error = f"registry: {error}"
            return
        if version is None:
            self.error = f"no version of {self.mlflow_store.model_name} holds the champion alias"
            return
        if self.current is not None and self.current.version == str(version.version):
            return
        import mlflow.sklearn

        from data_platform.serving.model import CompiledModel

        pipeline = mlflow.sklearn.load_model(f"models:/{self.mlflow_store.model_name}/{version.version}")
        compiled = CompiledModel(pipeline)
        compiled.verify()
        previous = self.current.version if self.current else None
        self.current = LoadedModel(str(version.version), compiled)
        self.error = None
        log.warning("serving model version %s (was %s)", version.version, previous)

    def start(self) -> None:
        def loop():
            while not self._stop.wait(self.poll_seconds):
                try:
                    self.refresh()
                except Exception as error:
                    self.error = f"loading the champion failed: {error}"
                    log.exception("loading the champion failed")

        self._thread = threading.Thread(target=loop, name="champion-poller", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()


def _errors(exc: RequestValidationError) -> list[dict]:
    """One message per wrong field (pydantic may report several for one)."""
    seen, errors = set(), []
    for error in exc.errors():
        location = [str(part) for part in error.get("loc", ()) if part != "body"]
        field = ".".join(location) or "body"
        if field in seen:
            continue
        seen.add(field)
        message = error.get("msg", "invalid")
        if error.get("type") == "timezone_aware":
            message = "must include a UTC offset, e.g. 2013-01-31T05:44:00-05:00"
        errors.append({"field": field, "message": message})
    return errors


class BodyLimit:
    """ASGI middleware refusing request bodies above `limit` bytes with 413 (declared or streamed)."""

    def __init__(self, app, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            if int(declared) <= DRAIN_FACTOR * self.limit:
                await _discard_body(receive)  # else the client, still sending, meets a reset, not the 413
            return await self._refuse(send)
        received = 0

        async def limited():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise _TooLarge()
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await self._refuse(send)

    async def _refuse(self, send):
        body = json.dumps({"errors": [{"field": "body", "message": f"request body above {self.limit} bytes"}]}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    pass


# A body declared at most this many times the limit is read and discarded before the 413: closing
# a connection with unread data resets it, and the client loses the answer. Larger ones are cut off.
DRAIN_FACTOR = 16


async def _discard_body(receive) -> None:
    while True:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body"):
            return


class StoreUnavailable(Exception):
    pass


def _json(payload: Any, status: int = 200) -> Response:
    return Response(content=json.dumps(payload, separators=(",", ":")), status_code=status, media_type="application/json")


def create_app(store_url: Optional[str] = None, mlflow_store=None, poll_seconds: Optional[float] = None,
               max_body: Optional[int] = None, log_predictions: bool = True) -> FastAPI:
    from threadpoolctl import threadpool_limits

    from data_platform.mlflow_store import MlflowStore

    # One OpenMP thread for the process: the default threads made single-row p99 ~0.25-0.5 s here.
    threadpool_limits(limits=1, user_api="openmp")
    store_url = store_url or S.default_url()
    mlflow_store = mlflow_store or MlflowStore.from_env()
    poll_seconds = float(poll_seconds if poll_seconds is not None else os.environ.get(POLL_ENV, 10))
    max_body = int(max_body if max_body is not None else os.environ.get(MAX_BODY_ENV, DEFAULT_MAX_BODY))

    holder = ModelHolder(mlflow_store, poll_seconds)
    holidays = A.Holidays()
    cache = A.LookupCache()
    state: dict[str, Any] = {"store": None}
    prediction_log = PredictionLog() if log_predictions else None

    def store() -> S.OnlineStore:
        if state["store"] is None:
            state["store"] = S.open_store(store_url, readonly=True)
        return state["store"]

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        try:
            holder.refresh()
        except Exception as error:
            holder.error = f"loading the champion failed: {error}"
            log.exception("loading the champion failed")
        holder.start()
        yield
        holder.stop()
        if prediction_log:
            prediction_log.close()
        if state["store"] is not None:
            state["store"].close()

    app = FastAPI(title="data_platform online scoring", version="1", lifespan=lifespan)
    app.state.holder = holder

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        return JSONResponse({"errors": _errors(exc)}, status_code=422)

    def unavailable() -> Optional[Response]:
        if holder.current is None:
            return _json({"error": holder.error or "no model loaded"}, 503)
        try:
            store()
        except Exception as error:  # a missing file, an unreachable Redis
            return _json({"error": f"online store unavailable: {error}"}, 503)
        return None

    def beyond_horizon(flights: list[Flight], field: str) -> Optional[Response]:
        """422 for scheduled departures too far from the store's days to score (`A.HORIZON_DAYS`)."""
        try:
            state = A.store_state(store())
        except Exception as error:
            return _json({"error": f"online store unavailable: {error}"}, 503)
        errors = []
        for index, flight in enumerate(flights):
            reason = A.outside_horizon(state, flight.scheduled_departure)
            if reason:
                errors.append({"field": field.format(index=index), "message": reason})
        return JSONResponse({"errors": errors}, status_code=422) if errors else None

    def score(flights: list[Flight]) -> list[bytes]:
        """Each flight's answer as JSON text; the same text goes to the prediction log (serialized once)."""
        loaded = holder.current  # one version for the whole request
        online = store()
        requests = [A.FlightRequest(f.carrier, f.flight, f.origin, f.dest, f.scheduled_departure, f.tailnum)
                    for f in flights]
        try:
            assembled = A.assemble(online, requests, holidays, cache=cache)
        except Exception as error:  # the store went away (file removed, Redis down): 503, not 500
            log.exception("online store lookup failed")
            raise StoreUnavailable(f"online store unavailable: {error}") from error
        scored = loaded.model.score([a.features for a in assembled])
        now = orjson.dumps(dt.datetime.now(dt.timezone.utc).isoformat()).decode()
        answers, lines = [], []
        for flight, features, result in zip(flights, assembled, scored):
            # orjson writes timestamps as ISO 8601 with their offset (all UTC here), dates as YYYY-MM-DD.
            answer = orjson.dumps({
                "probability": result.probability,
                "model_version": loaded.version,
                "cutoff": features.cutoff,
                "features": features.features,
                "stale": features.stale_seconds > 0,
                "stale_seconds": features.stale_seconds,
                "unknown_categories": result.unknown,
                "flags": [f"unknown category {u}: scored as missing, as in training" for u in result.unknown]
                + features.flags,
            })
            answers.append(answer)
            request = orjson.dumps(flight.model_dump(mode="json")).decode()
            lines.append((features.features["day"].isoformat(), f'{{"logged_at":{now},"request":{request},{answer[1:].decode()}'))
        if prediction_log:
            prediction_log.write(lines)
        return answers

    @app.post("/predict")
    async def predict(flight: Flight):
        problem = unavailable() or beyond_horizon([flight], "scheduled_departure")
        if problem:
            return problem
        try:
            answers = score([flight])
        except StoreUnavailable as error:
            return _json({"error": str(error)}, 503)
        return Response(content=answers[0], media_type="application/json")

    @app.post("/predict/batch")
    async def predict_batch(batch: Batch):
        problem = unavailable() or beyond_horizon(batch.flights, "flights.{index}.scheduled_departure")
        if problem:
            return problem
        try:
            answers = score(batch.flights)
        except StoreUnavailable as error:
            return _json({"error": str(error)}, 503)
        return Response(content=b'{"predictions":[' + b",".join(answers) + b"]}", media_type="application/json")

    @app.get("/health")
    async def health():
        body: dict[str, Any] = {"model_version": holder.current.version if holder.current else None,
                                "model_error": holder.error, "store": S.redacted(store_url)}
        ok = holder.current is not None
        try:
            current = A.store_state(store())
            meta = store().meta()
        except Exception as error:  # a missing file, an unreachable Redis
            current, meta = None, {}
            body["store_error"] = str(error)
        if current is None or current.newest_day is None:
            ok = False
            body["store_error"] = body.get("store_error") or "the online store is empty: materialize ml/online_features"
        else:
            now = dt.datetime.now(dt.timezone.utc)
            body.update({
                "store_newest_day": current.newest_day.isoformat(),
                "store_as_of": current.as_of.isoformat(),
                "store_staleness_seconds": (now - current.as_of).total_seconds(),
                "store_updated_at": meta.get("updated_at"),
                "store_update_age_seconds": (now - dt.datetime.fromisoformat(meta["updated_at"])).total_seconds()
                if meta.get("updated_at") else None,
            })
        body["status"] = "ok" if ok else "unavailable"
        return _json(body, 200 if ok else 503)

    return BodyLimit(app, max_body)


def serve(host: str = "127.0.0.1", port: int = 8000) -> int:
    import uvicorn

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    uvicorn.run(create_app(), host=host, port=port, log_level="warning", access_log=False,
                loop="uvloop", http="httptools")
    return 0
