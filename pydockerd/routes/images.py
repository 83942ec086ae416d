"""Image endpoints: list, inspect, history, create (pull), tag, delete."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import queue
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from functools import partial

from pycontainerd.errors import InvalidArgument

from .._auth import decode_auth
from .._backend import Backend
from .._errors import status_and_message
from .._filters import parse_filters
from .._http import Request, Response
from .._imageprune import PRUNE_FILTERS
from .._images import IMAGE_FILTERS
from .._progress import Message, error_message
from .._router import Router
from .system import parse_time

__all__ = ["register"]

log = logging.getLogger("pydockerd")


def register(r: Router, b: Backend) -> None:
    r.add("GET", "/images/json", partial(images_list, b))
    r.add("POST", "/images/create", partial(images_create, b))
    r.add("GET", "/images/{name:.+}/json", partial(images_inspect, b))
    r.add("GET", "/images/{name:.+}/history", partial(images_history, b))
    r.add("POST", "/images/{name:.+}/tag", partial(images_tag, b))
    r.add("POST", "/images/{name:.+}/push", partial(images_push, b))
    r.add("GET", "/images/get", partial(images_save, b))
    r.add("POST", "/images/prune", partial(images_prune, b))
    r.add("POST", "/images/load", partial(images_load, b), stream=True)
    r.add("GET", "/images/{name:.+}/get", partial(images_save, b))
    r.add("DELETE", "/images/{name:.+}", partial(images_delete, b))


def _line(msg: Message) -> bytes:
    return json.dumps(msg).encode() + b"\r\n"


async def images_prune(b: Backend, req: Request) -> Response:
    filters = parse_filters(req.arg("filters"), PRUNE_FILTERS)
    until_ns = None
    for value in filters.get("until", []):
        until_ns = parse_time(value, time.time())
        if until_ns is None:
            raise InvalidArgument(f"invalid filter 'until={value}'")
    return Response.json(await b.call(b.images.prune, filters, until_ns))


async def images_list(b: Backend, req: Request) -> Response:
    filters = parse_filters(req.arg("filters"), IMAGE_FILTERS)
    return Response.json(await b.call(b.images.summaries, filters, req.version))


async def images_inspect(b: Backend, req: Request) -> Response:
    return Response.json(await b.call(b.images.inspect, req.params["name"], req.version, _platform_arg(req)))


async def images_history(b: Backend, req: Request) -> Response:
    return Response.json(await b.call(b.images.history, req.params["name"], _platform_arg(req)))


async def images_tag(b: Backend, req: Request) -> Response:
    await b.call(b.images.tag, req.params["name"], req.arg("repo"), req.arg("tag"))
    return Response(201)


async def images_delete(b: Backend, req: Request) -> Response:
    """``docker rmi``; with ``platforms`` (or X-Requested-Platform) only those platforms' content goes."""
    wanted = [p for p in req.query.get("platforms", []) if p]
    if not wanted and req.headers.get("x-requested-platform"):
        wanted = [req.headers["x-requested-platform"]]
    if wanted:
        return Response.json(await b.call(b.images.delete_platforms, req.params["name"], wanted))
    return Response.json(await b.call(b.images.delete, req.params["name"], req.flag("force")))


async def _progress(b: Backend, work: Callable[[Callable[[Message], None]], None]) -> Response:
    """Run ``work(emit)`` in a thread and stream what it emits as JSON lines.

    An error before the first message gets its own status (the router
    answers it); a later one ends the stream with Docker's error message.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes | None] = asyncio.Queue()

    def emit(msg: Message) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, _line(msg))

    def run() -> None:
        try:
            work(emit)
        finally:
            loop.call_soon_threadsafe(queue.put_nowait, None)

    done = loop.run_in_executor(None, run)
    first = await queue.get()
    if first is None:
        await done  # failed before it said anything: the router answers with the error's status
        return Response.json([])

    async def chunks() -> AsyncIterator[bytes]:
        yield first
        while (item := await queue.get()) is not None:
            yield item
        try:
            await done
        except Exception as e:
            yield _line(error_message(status_and_message(e)[1]))

    return Response.stream(chunks())


def _platform_arg(req: Request) -> str:
    """The platform a request asks for: the ``platform`` query (JSON), else the X-Requested-Platform header."""
    return req.arg("platform") or req.headers.get("x-requested-platform", "")


async def images_create(b: Backend, req: Request) -> Response:
    """A pull."""
    auth = decode_auth(req.headers.get("x-registry-auth", ""))
    job = b.images.prepare_pull(req.arg("fromImage"), req.arg("tag"), req.arg("platform"), auth)
    return await _progress(b, partial(b.images.pull, job))


async def images_push(b: Backend, req: Request) -> Response:
    """A push: an unknown tag is a 404 before the stream starts."""
    auth = decode_auth(req.headers.get("x-registry-auth", ""))
    job = await b.call(b.images.prepare_push, req.params["name"], req.arg("tag"), _platform_arg(req), auth)
    return await _progress(b, partial(b.images.push, job))


async def _in_thread(b: Backend, produce: Callable[[], Iterator[bytes]]) -> AsyncIterator[bytes]:
    """The chunks of ``produce()``, made in a worker thread, a few at a time (the client sets the pace).

    A failure after the first chunk cannot change the status any more: it is
    logged and the connection dropped, so the client sees a cut stream, not
    a complete one.
    """
    chunks: queue.Queue[bytes | BaseException | None] = queue.Queue(maxsize=8)
    stop = threading.Event()

    def put(item: bytes | BaseException | None) -> bool:
        while not stop.is_set():
            try:
                chunks.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def run() -> None:
        try:
            for chunk in produce():
                if not put(chunk):
                    return
        except BaseException as e:
            put(e)
            return
        put(None)

    loop = asyncio.get_running_loop()
    worker = loop.run_in_executor(None, run)
    try:
        while True:
            item = await loop.run_in_executor(None, chunks.get)
            if item is None:
                break
            if isinstance(item, BaseException):
                log.error("image archive stream failed: %s", status_and_message(item)[1])
                raise ConnectionAbortedError("image archive stream failed") from item
            yield item
    finally:
        stop.set()
        await worker


async def images_save(b: Backend, req: Request) -> Response:
    """``docker save``: one image (``/images/{name}/get``) or several (``names``), as one tar stream."""
    names = [req.params["name"]] if "name" in req.params else list(req.query.get("names", []))
    job = await b.call(b.images.prepare_save, names, _platform_arg(req))
    return Response.stream(_in_thread(b, partial(b.images.save_chunks, job)), "application/x-tar")


_LOAD_CHUNK = 1 << 20


class _BodyGone(ConnectionError):
    """The client went away in the middle of the archive."""


async def images_load(b: Backend, req: Request) -> Response:
    """``docker load``: the body (of any size) handed to a worker a MiB at a time, as it arrives.

    The worker's refusal stops the reading (the router answers its status;
    the HTTP layer drains or drops the rest); the lines come at the end, as
    Docker sends them.
    """
    loop = asyncio.get_running_loop()
    pipe: queue.Queue[bytes | BaseException | None] = queue.Queue(maxsize=4)

    def chunks() -> Iterator[bytes]:
        while True:
            item = pipe.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    work = loop.run_in_executor(None, b.images.load, chunks(), _platform_arg(req))

    async def put(item: bytes | BaseException | None) -> bool:
        while True:
            try:
                pipe.put_nowait(item)
                return True
            except queue.Full:
                if work.done():
                    return False
                await asyncio.wait({work}, timeout=0.01)

    try:
        buf = bytearray()
        async for chunk in req.stream():
            buf += chunk
            if len(buf) >= _LOAD_CHUNK:
                if not await put(bytes(buf)):
                    break
                buf.clear()
        else:
            if not buf or await put(bytes(buf)):
                await put(None)
    except BaseException as e:
        await put(_BodyGone(f"the request body ended early: {e}"))
        with contextlib.suppress(BaseException):
            await work
        raise
    lines = await work
    body = b"".join(_line({"stream": line + "\n"}) for line in lines)
    return Response(200, body, [("Content-Type", "application/json")])
