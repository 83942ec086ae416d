"""Container endpoints: create, start, wait, attach, logs, stop, kill, restart, pause, remove, inspect, list,
top, stats, rename, resize.

Thin: parse the query, call the container service (on the loop: it calls
containerd in threads itself), shape the answer.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

from pycontainerd.errors import ContainerdError, InvalidArgument, NotFound

from .._backend import Backend
from .._filters import parse_filters
from .._http import Request, Response
from .._router import Router
from ..containers import AttachOptions, ContainerService, LogOptions, attach, logs, parse_tail
from ..containers._state import NotModified
from ..containers._stats import empty_stats, parse_ps, stats_json, system_cpu_ns
from ..containers._views import LIST_FILTERS, filter_records, inspect, summary
from .system import parse_time

__all__ = ["register", "service"]

RAW = "application/vnd.docker.raw-stream"
MULTIPLEXED = "application/vnd.docker.multiplexed-stream"


def service(b: Backend) -> ContainerService:
    if b.containers is None:
        raise ContainerdError("the container service is not running")
    return b.containers


def register(r: Router, b: Backend) -> None:
    r.add("GET", "/containers/json", partial(containers_list, b))
    r.add("POST", "/containers/create", partial(containers_create, b))
    r.add("GET", "/containers/{id}/json", partial(containers_inspect, b))
    r.add("GET", "/containers/{id}/logs", partial(containers_logs, b))
    r.add("GET", "/containers/{id}/top", partial(containers_top, b))
    r.add("GET", "/containers/{id}/stats", partial(containers_stats, b))
    r.add("POST", "/containers/{id}/start", partial(containers_start, b))
    r.add("POST", "/containers/{id}/stop", partial(containers_stop, b))
    r.add("POST", "/containers/{id}/restart", partial(containers_restart, b))
    r.add("POST", "/containers/{id}/kill", partial(containers_kill, b))
    r.add("POST", "/containers/{id}/pause", partial(containers_pause, b))
    r.add("POST", "/containers/{id}/unpause", partial(containers_unpause, b))
    r.add("POST", "/containers/{id}/wait", partial(containers_wait, b))
    r.add("POST", "/containers/{id}/attach", partial(containers_attach, b))
    r.add("POST", "/containers/{id}/rename", partial(containers_rename, b))
    r.add("POST", "/containers/{id}/resize", partial(containers_resize, b))
    r.add("DELETE", "/containers/{id}", partial(containers_delete, b))


def _int_arg(req: Request, name: str) -> int | None:
    text = req.arg(name).strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise InvalidArgument(f"invalid value for {name}: {text!r}") from None


async def containers_create(b: Backend, req: Request) -> Response:
    return Response.json(await service(b).create(req.json(), req.arg("name")), 201)


async def containers_list(b: Backend, req: Request) -> Response:
    svc = service(b)
    filters = parse_filters(req.arg("filters"), LIST_FILTERS)

    def ancestors(ref: str) -> set[str]:
        try:
            _, same, _ = b.images.resolve(ref)
        except (NotFound, InvalidArgument):
            return set()
        return {v.id for v in same}

    wanted = {r: await b.call(ancestors, r) for r in filters.get("ancestor", [])}
    records = filter_records(
        list(svc.store),
        filters,
        show_all=req.flag("all"),
        limit=_int_arg(req, "limit") or 0,
        resolve=svc.get,
        ancestors=lambda ref: wanted.get(ref, set()),
    )
    now = time.time_ns()
    size = req.flag("size")
    sizes = [await b.call(svc.remove_size, r) if size else None for r in records]
    return Response.json([summary(r, now, s) for r, s in zip(records, sizes, strict=True)])


async def containers_inspect(b: Backend, req: Request) -> Response:
    svc = service(b)
    record = svc.get(req.params["id"])
    size = await b.call(svc.remove_size, record) if req.flag("size") else None
    execs = sorted(svc.slot(record).execs)
    return Response.json(inspect(record, paths=svc.paths(record), exec_ids=execs, size=size))


async def containers_start(b: Backend, req: Request) -> Response:
    try:
        await service(b).start(req.params["id"])
    except NotModified:
        return Response(304)
    return Response(204)


async def containers_stop(b: Backend, req: Request) -> Response:
    try:
        await service(b).stop(req.params["id"], req.arg("signal"), _int_arg(req, "t"))
    except NotModified:
        return Response(304)
    return Response(204)


async def containers_restart(b: Backend, req: Request) -> Response:
    await service(b).restart(req.params["id"], req.arg("signal"), _int_arg(req, "t"))
    return Response(204)


async def containers_kill(b: Backend, req: Request) -> Response:
    await service(b).kill(req.params["id"], req.arg("signal"))
    return Response(204)


async def containers_pause(b: Backend, req: Request) -> Response:
    await service(b).pause(req.params["id"])
    return Response(204)


async def containers_unpause(b: Backend, req: Request) -> Response:
    await service(b).unpause(req.params["id"])
    return Response(204)


async def containers_delete(b: Backend, req: Request) -> Response:
    await service(b).remove(req.params["id"], req.flag("force"))
    return Response(204)


async def containers_rename(b: Backend, req: Request) -> Response:
    await service(b).rename(req.params["id"], req.arg("name"))
    return Response(204)


async def containers_resize(b: Backend, req: Request) -> Response:
    h, w = _int_arg(req, "h") or 0, _int_arg(req, "w") or 0
    if h < 0 or w < 0:
        raise InvalidArgument("height and width must be positive")
    await service(b).resize(req.params["id"], h, w)
    return Response(200)


async def containers_wait(b: Backend, req: Request) -> Response:
    """The head goes out at once (the CLI starts the container only then); the body when the condition holds."""
    svc = service(b)
    condition = req.arg("condition")
    svc.get(req.params["id"])  # 404 before the head
    waiting = asyncio.ensure_future(svc.wait(req.params["id"], condition))

    async def chunks() -> AsyncIterator[bytes]:
        try:
            yield b""
            try:
                code = await waiting
                doc: dict[str, Any] = {"Error": None, "StatusCode": code}
            except ContainerdError as e:
                doc = {"Error": {"Message": e.message}, "StatusCode": -1}
            yield json.dumps(doc).encode() + b"\n"
        finally:
            waiting.cancel()

    return Response.stream(chunks())


def _time_arg(req: Request, name: str) -> int:
    return parse_time(req.arg(name), time.time()) or 0


async def containers_logs(b: Backend, req: Request) -> Response:
    opts = LogOptions(
        stdout=req.flag("stdout"),
        stderr=req.flag("stderr"),
        follow=req.flag("follow"),
        timestamps=req.flag("timestamps"),
        tail=parse_tail(req.arg("tail")),
        since_ns=_time_arg(req, "since"),
        until_ns=_time_arg(req, "until"),
    )
    tty, chunks = logs(service(b), req.params["id"], opts)
    return Response.stream(chunks, RAW if tty else MULTIPLEXED)


async def containers_attach(b: Backend, req: Request) -> Response:
    opts = AttachOptions(
        stdin=req.flag("stdin"),
        stdout=req.flag("stdout"),
        stderr=req.flag("stderr"),
        logs=req.flag("logs"),
        stream=req.flag("stream"),
    )
    tty, run = attach(service(b), req.params["id"], opts)
    return Response.hijack(run, RAW if tty else MULTIPLEXED)


async def containers_top(b: Backend, req: Request) -> Response:
    svc = service(b)
    record = svc.get(req.params["id"])
    record.state.check_running(record.id, "top")
    args = req.arg("ps_args").split() or ["-ef"]
    pids = [pid for pid, _ in await b.call(svc.client.tasks.pids, record.id)]

    def ps() -> str:
        r = subprocess.run(["ps", *args], capture_output=True, text=True, timeout=30, check=False)
        if r.returncode != 0:
            raise ContainerdError(f"ps: {r.stderr.strip() or 'exit ' + str(r.returncode)}")
        return r.stdout

    return Response.json(parse_ps(await b.call(ps), pids))


def _host_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return 0


async def containers_stats(b: Backend, req: Request) -> Response:
    """One sample (``stream=0``: two, a second apart, so the CPU use can be computed) or one a second."""
    svc = service(b)
    record = svc.get(req.params["id"])
    stream = req.arg("stream", "1").strip().lower() not in ("0", "false")
    one_shot = req.flag("one-shot")

    async def sample(previous: dict[str, Any] | None) -> dict[str, Any]:
        if not record.state.running:
            return empty_stats(record.id, record.name)
        found = await b.call(svc.client.tasks.metrics, [record.id])
        if not found:
            return empty_stats(record.id, record.name)
        return stats_json(
            record.id, record.name, found[0][1], read_ns=time.time_ns(), system_ns=system_cpu_ns(),
            ncpu=svc.ncpu, host_memory=_host_memory(), previous=previous,
        )  # fmt: skip

    def line(doc: dict[str, Any]) -> bytes:
        return json.dumps(doc).encode() + b"\n"

    if not stream:
        first = await sample(None)
        if one_shot or not record.state.running:
            return Response.json(first)
        await asyncio.sleep(1.0)
        return Response.json(await sample(first))

    async def chunks() -> AsyncIterator[bytes]:
        previous: dict[str, Any] | None = None
        while True:
            doc = await sample(previous)
            yield line(doc)
            if not record.state.running:
                return
            previous = doc
            await asyncio.sleep(1.0)

    return Response.stream(chunks())
