"""Disk space: ``GET /system/df`` (``docker system df [-v]``) and ``POST /containers/prune``."""

from __future__ import annotations

import time
from functools import partial
from typing import Any

from pycontainerd.errors import ContainerdError, InvalidArgument

from .._backend import Backend
from .._diskusage import CONTAINER_PRUNE_FILTERS, build_cache, image_usage, prune_chosen
from .._filters import parse_filters
from .._http import Request, Response
from .._router import Router
from ..containers._views import summary
from .system import parse_time

__all__ = ["register"]

_TYPES = ("container", "image", "volume", "build-cache")


def register(r: Router, b: Backend) -> None:
    r.add("GET", "/system/df", partial(system_df, b))
    r.add("POST", "/containers/prune", partial(containers_prune, b))


async def system_df(b: Backend, req: Request) -> Response:
    wanted = set(req.query.get("type", [])) or set(_TYPES)
    for t in wanted - set(_TYPES):
        raise InvalidArgument(f"unknown object type: {t}")
    svc = b.containers
    out: dict[str, Any] = {}
    if "image" in wanted:
        users = svc.users_of if svc is not None else (lambda _id: [])
        out["LayersSize"], out["Images"] = await b.call(image_usage, b.images, req.version, users)
    if "container" in wanted:
        containers = []
        now = time.time_ns()
        for record in list(svc.store) if svc is not None else []:
            size = await b.call(svc.remove_size, record) if svc is not None else (0, 0)
            containers.append(summary(record, now, size))
        out["Containers"] = containers
    if "volume" in wanted:
        out["Volumes"] = []
    if "build-cache" in wanted:
        out["BuildCache"] = await b.call(build_cache, b.client)
    return Response.json(out)


async def containers_prune(b: Backend, req: Request) -> Response:
    filters = parse_filters(req.arg("filters"), CONTAINER_PRUNE_FILTERS)
    until_ns = None
    for value in filters.get("until", []):
        until_ns = parse_time(value, time.time())
        if until_ns is None:
            raise InvalidArgument(f"invalid filter 'until={value}'")
    deleted: list[str] = []
    reclaimed = 0
    svc = b.containers
    for record in list(svc.store) if svc is not None else []:
        assert svc is not None
        if record.state.running or record.state.status == "removing":
            continue
        labels = {str(k): str(v) for k, v in (record.config.get("Labels") or {}).items()}
        if not prune_chosen(labels, record.created_ns, filters, until_ns):
            continue
        rw, _ = await b.call(svc.remove_size, record)
        try:
            await svc.remove(record.id, force=False)
        except ContainerdError:
            continue  # started or removed meanwhile
        deleted.append(record.id)
        reclaimed += rw
    b.events.publish("container", "prune", "", {"reclaimed": str(reclaimed)})
    return Response.json({"ContainersDeleted": deleted or None, "SpaceReclaimed": reclaimed})
