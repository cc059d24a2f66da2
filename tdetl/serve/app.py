"""The REST API of ``tdetl serve`` (FastAPI): tasks, their logs and counters, the drivers' parameter
specs, health and Prometheus metrics. DSNs are shown masked; every call needs the token
(``Authorization: Bearer <token>``, or the page's cookie: guard.py), and a task may touch files only
where the operator allowed (confine.py)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from ..drivers import SINKS, SOURCES, driver_class
from ..dsn import paths_relative_to
from ..durable import make_dirs
from ..errors import TdetlError
from ..version import __version__
from .confine import Confinement
from .guard import Guard, json_body
from .metrics import registry
from .models import REFUSALS, PreviewRequest, TaskDefinition, body_of
from .preview import preview
from .store import Store
from .supervisor import Supervisor
from .tasks import shown, validate

STATIC = Path(__file__).parent / "static"


def rfc3339(epoch: float | None) -> str | None:
    """An instant as the API shows it: RFC 3339 in UTC, to the millisecond."""
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def create_app(data_dir: Path, token: str, cluster: str | None = None, files: list[Path] | None = None,
               bound: str = "127.0.0.1", max_running: int | None = None) -> FastAPI:
    """The service over ``data_dir``; tasks may use files under ``files`` (default ``files/`` in it)."""
    data_dir = Path(os.path.abspath(data_dir.expanduser()))  # tasks run elsewhere (in a --files directory)
    store = Store(data_dir)
    confinement = Confinement(files or [data_dir / "files"])
    for root in confinement.roots:
        make_dirs(root)
    sup = Supervisor(store, data_dir, cluster, confinement.home, max_running)
    metrics = registry(sup)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        sup.start()
        yield
        sup.close()

    # no /docs: its page loads from a CDN, which an offline host lacks; /openapi.json documents the API
    app = FastAPI(title="tdetl serve", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None)
    app.middleware("http")(Guard(token, bound))

    @app.exception_handler(TdetlError)
    async def bad_task(request: Request, e: TdetlError) -> JSONResponse:
        return JSONResponse({"detail": str(e)}, status_code=422)

    def view(t: dict[str, Any]) -> dict[str, Any]:
        scheduled = t["definition"].get("schedule") and t["wanted"] == "running"
        return {"id": t["id"], "name": t["name"], "state": t["state"], "wanted": t["wanted"],
                "last_error": t["last_error"], "restarts": t["restarts"], "created": rfc3339(t["created"]),
                "updated": rfc3339(t["updated"]), "definition": shown(t["definition"]), "counters": sup.status(t["id"]),
                "totals": sup.totals(t["id"]), "next_run": rfc3339(sup.next_run(t)) if scheduled else None,
                "last_success": rfc3339(sup.last_success(t["id"]))}

    def found(tid: str) -> dict[str, Any]:
        t = store.get(tid)
        if t is None:
            raise HTTPException(404, f"no task {tid!r}")
        return t

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "version": __version__, "tasks": len(store.all())}

    @app.post("/api/tasks", status_code=201, openapi_extra=body_of(TaskDefinition), responses=REFUSALS)
    async def create(request: Request) -> dict[str, Any]:
        """A task from its definition; started at once unless ``start`` is false."""
        body = await json_body(request)
        start = bool(body.pop("start", True)) if isinstance(body, dict) else True
        definition = validate(body, confinement)
        tid = store.add(definition["name"], definition, "running" if start else "stopped")
        sup.wake()
        return view(found(tid))

    @app.post("/api/tasks/validate", openapi_extra=body_of(TaskDefinition), responses=REFUSALS)
    async def check(request: Request) -> dict[str, Any]:
        """The form's inline validation: 200 when the definition would be accepted, else 422."""
        body = await json_body(request)
        if isinstance(body, dict):
            body.pop("start", None)
        return {"ok": True, "name": validate(body, confinement)["name"]}

    @app.post("/api/parser/preview", responses=REFUSALS, openapi_extra=body_of(PreviewRequest))
    async def parser_preview(request: Request) -> dict[str, Any]:
        """Sample messages or CSV lines through a parser: the tables, types, first rows and
        situations a run would make of them. Nothing is written."""
        body = await json_body(request)
        if not isinstance(body, dict):
            raise HTTPException(422, "preview: expected a JSON object with 'parser', 'samples' and 'kind'")
        confinement.check_parser(body.get("parser"))

        def where_tasks_run() -> dict[str, Any]:  # a parser's @file as a task would read it
            with paths_relative_to(confinement.home):
                return preview(body.get("parser"), body.get("samples"), body.get("kind", "message"),
                               str(body.get("on_error") or "error"))
        return await asyncio.to_thread(where_tasks_run)

    @app.get("/api/tasks/{tid}/history")
    def history(tid: str) -> dict[str, Any]:
        found(tid)
        return {"points": [[round(t, 3), round(r, 1)] for t, r in sup.history.get(tid, ())]}

    @app.get("/api/tasks")
    def listing() -> list[dict[str, Any]]:
        return [view(t) for t in store.all()]

    @app.get("/api/tasks/{tid}")
    def one(tid: str) -> dict[str, Any]:
        return view(found(tid))

    @app.patch("/api/tasks/{tid}", responses=REFUSALS,
               openapi_extra={"requestBody": {"content": {"application/json": {"schema": {"type": "object"}}},
                                              "description": "fields of the definition to change"}})
    async def change(tid: str, request: Request) -> dict[str, Any]:
        t = found(tid)
        if t["state"] in ("running", "restarting", "stopping"):
            raise HTTPException(409, f"task {tid!r} is {t['state']}: stop it before changing it")
        body = await json_body(request)
        merged = {**t["definition"], **body} if isinstance(body, dict) else body
        definition = validate(merged, confinement)
        store.update(tid, definition=definition, name=definition["name"])
        return view(found(tid))

    @app.delete("/api/tasks/{tid}", status_code=204)
    def remove(tid: str) -> None:
        found(tid)
        sup.want(tid, "stopped")
        sup.forget(tid)
        store.delete(tid)

    @app.post("/api/tasks/{tid}/start")
    def start(tid: str) -> dict[str, Any]:
        found(tid)
        sup.want(tid, "running")
        return view(found(tid))

    @app.post("/api/tasks/{tid}/stop")
    def stop(tid: str) -> dict[str, Any]:
        found(tid)
        sup.want(tid, "stopped")
        return view(found(tid))

    @app.get("/api/tasks/{tid}/logs/stream")
    async def follow(tid: str, request: Request, tail: int = 10) -> StreamingResponse:
        """The log's last ``tail`` lines, then the log as it grows, as tail -f shows it
        (text/event-stream: one event per line)."""
        found(tid)
        path = sup.task_dir(tid) / "log.txt"
        pos = path.stat().st_size if path.exists() else 0
        first: list[str] = []
        if pos and tail > 0:  # the last lines before pos: nothing falls between them and what follows
            with path.open("rb") as fh:
                fh.seek(max(0, pos - 64 * 1024))
                first = fh.read(pos - fh.tell()).decode("utf-8", "replace").splitlines()[-min(tail, 10_000):]

        async def lines() -> AsyncIterator[str]:
            nonlocal pos
            for line in first:
                yield f"data: {line}\n\n"
            while not await request.is_disconnected():
                if path.exists() and path.stat().st_size > pos:
                    with path.open("rb") as fh:
                        fh.seek(pos)
                        chunk = fh.read()
                    cut = chunk.rfind(b"\n") + 1
                    pos += cut
                    for line in chunk[:cut].decode("utf-8", "replace").splitlines():
                        yield f"data: {line}\n\n"
                await asyncio.sleep(0.5)
        return StreamingResponse(lines(), media_type="text/event-stream")

    @app.get("/api/tasks/{tid}/logs")
    def logs(tid: str, tail: int = 100) -> dict[str, Any]:
        found(tid)
        return {"lines": sup.log_tail(tid, max(0, min(tail, 10_000)))}

    @app.get("/api/drivers")
    def drivers() -> list[dict[str, Any]]:
        out = []
        for name in sorted(set(SOURCES) | set(SINKS)):
            for role in ("source", "target"):
                cls = driver_class(name, role)
                if cls is None:
                    continue
                out.append({"driver": name, "role": role, "protocols": [p or "" for p in cls.protocols],
                            "params": [{"name": p.name, "kind": p.kind, "form": p.form, "default": p.default,
                                        "help": p.help, "secret": p.secret, "choices": list(p.choices)}
                                       for p in cls.spec]})
        return out

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/metrics")
    def prometheus() -> PlainTextResponse:
        return PlainTextResponse(generate_latest(metrics).decode(), media_type=CONTENT_TYPE_LATEST)

    return app
