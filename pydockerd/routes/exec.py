"""Exec endpoints: create, start (hijacked, or detached), resize, inspect."""

from __future__ import annotations

from functools import partial

from pycontainerd.errors import InvalidArgument

from .._backend import Backend
from .._http import Request, Response
from .._router import Router
from .containers import MULTIPLEXED, RAW, service

__all__ = ["register"]


def register(r: Router, b: Backend) -> None:
    r.add("POST", "/containers/{id}/exec", partial(exec_create, b))
    r.add("POST", "/exec/{id}/start", partial(exec_start, b))
    r.add("POST", "/exec/{id}/resize", partial(exec_resize, b))
    r.add("GET", "/exec/{id}/json", partial(exec_inspect, b))


async def exec_create(b: Backend, req: Request) -> Response:
    return Response.json(service(b).execs.create(req.params["id"], req.json()), 201)


async def exec_start(b: Backend, req: Request) -> Response:
    body = req.json() or {}
    if not isinstance(body, dict):
        raise InvalidArgument("exec start config must be a JSON object")
    detach, tty = body.get("Detach", False), body.get("Tty")
    if not isinstance(detach, bool) or not isinstance(tty, (bool, type(None))):
        raise InvalidArgument("Detach and Tty must be booleans")
    size = body.get("ConsoleSize") or [0, 0]
    if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and v >= 0 for v in size)):
        raise InvalidArgument("ConsoleSize must be [height, width]")
    execs = service(b).execs
    run = await execs.start(req.params["id"], detach, tty, (size[0], size[1]))
    if run is None:
        return Response(200)
    framed = not (execs.get(req.params["id"]).tty if tty is None else tty)
    return Response.hijack(run, MULTIPLEXED if framed else RAW)


async def exec_resize(b: Backend, req: Request) -> Response:
    try:
        h, w = int(req.arg("h") or 0), int(req.arg("w") or 0)
    except ValueError:
        raise InvalidArgument("height and width must be integers") from None
    if h < 0 or w < 0:
        raise InvalidArgument("height and width must be positive")
    await service(b).execs.resize(req.params["id"], h, w)
    return Response(200)


async def exec_inspect(b: Backend, req: Request) -> Response:
    return Response.json(service(b).execs.inspect(req.params["id"]))
