"""Build endpoints: ``POST /build`` (the classic builder, context as the streamed body) and ``POST /build/prune``."""

from __future__ import annotations

import asyncio
import json
import tempfile
import threading
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

from pycontainerd.errors import InvalidArgument, Unavailable

from .._auth import decode_auth
from .._backend import Backend
from .._errors import RequestTooLarge, status_and_message
from .._http import Request, Response
from .._progress import Message, error_message
from .._router import Router
from ..builder import MAX_UPLOAD, BuildOptions, BuildService

__all__ = ["register"]


def register(r: Router, b: Backend) -> None:
    r.add("POST", "/build", partial(build, b), stream=True)
    r.add("POST", "/build/prune", partial(prune, b))


def _line(msg: Message) -> bytes:
    return json.dumps(msg).encode() + b"\r\n"


def _json_map(req: Request, name: str) -> dict[str, Any]:
    raw = req.arg(name)
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as e:
        raise InvalidArgument(f"invalid {name} value {raw!r}: {e}") from None
    if not isinstance(value, dict):
        raise InvalidArgument(f"invalid {name} value {raw!r}: want a JSON object")
    return value


def options_of(req: Request) -> BuildOptions:
    """The query of ``POST /build`` (400 for what cannot be a build)."""
    if req.arg("remote"):
        raise InvalidArgument("remote build contexts are not supported: send the context as the request body")
    args = _json_map(req, "buildargs")
    labels = _json_map(req, "labels")
    for k, v in args.items():
        if v is not None and not isinstance(v, str):
            raise InvalidArgument(f"invalid buildargs value for {k}: want a string")
    return BuildOptions(
        dockerfile=req.arg("dockerfile") or "Dockerfile",
        tags=tuple(t for t in req.query.get("t", []) if t),
        build_args=args,
        no_cache=req.flag("nocache"),
        quiet=req.flag("q"),
        labels={str(k): str(v) for k, v in labels.items()},
        target=req.arg("target"),
        pull=req.flag("pull"),
        platform=req.arg("platform"),
        auth=decode_auth(req.headers.get("x-registry-auth", "")),
    )


def _service(b: Backend) -> BuildService:
    if b.builds is None:
        raise Unavailable("the builder is not available")
    return b.builds


async def build(b: Backend, req: Request) -> Response:
    """Spool the context, then build in a worker; errors before the first message get their own status."""
    service = _service(b)
    options = options_of(req)
    spool = tempfile.TemporaryFile(prefix="pydockerd-context-")  # noqa: SIM115 -- the worker closes it
    try:
        size = 0
        async for chunk in req.stream():
            size += len(chunk)
            if size > MAX_UPLOAD:
                raise RequestTooLarge(f"build context larger than {MAX_UPLOAD} bytes")
            spool.write(chunk)
    except BaseException:
        spool.close()
        raise
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes | None] = asyncio.Queue()
    cancel = threading.Event()

    def emit(msg: Message) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, _line(msg))

    def run() -> None:
        try:
            service.build(spool, options, emit, cancel)
        finally:
            spool.close()
            loop.call_soon_threadsafe(queue.put_nowait, None)

    done = loop.run_in_executor(None, run)
    first = await queue.get()
    if first is None:
        await done  # failed before it said anything: the router answers with the error's status
        return Response.json([])

    async def chunks() -> AsyncIterator[bytes]:
        try:
            yield first
            while (item := await queue.get()) is not None:
                yield item
            try:
                await done
            except Exception as e:
                yield _line(error_message(status_and_message(e)[1]))
        finally:
            cancel.set()  # the client went away (or the build is over): stop what still runs

    return Response.stream(chunks())


async def prune(b: Backend, req: Request) -> Response:
    return Response.json(await b.call(_service(b).prune))
