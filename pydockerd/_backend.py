"""What every route handler reaches: the containerd client, the services over it, the daemon's options.

Handlers get one :class:`Backend` so that adding a service (containers,
builds) does not change every handler's signature.  Services block (gRPC),
so handlers run them with :meth:`Backend.call` in a worker thread; the event
loop only moves bytes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from pycontainerd.client import Client

from ._events import EventLog
from ._images import ImageService

if TYPE_CHECKING:
    from .builder import BuildService
    from .containers import ContainerService

__all__ = ["Backend", "EngineOptions"]

T = TypeVar("T")


@dataclass(frozen=True)
class EngineOptions:
    """What the daemon was started with, as /info and /version report it."""

    containerd_address: str
    namespace: str
    root: str = "/var/lib/pydockerd"
    insecure_registries: tuple[str, ...] = ()
    labels: tuple[str, ...] = field(default_factory=tuple)


@dataclass
class Backend:
    client: Client
    images: ImageService
    options: EngineOptions
    events: EventLog = field(default_factory=EventLog)
    builds: BuildService | None = None
    containers: ContainerService | None = None

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in a worker thread."""
        return await asyncio.get_running_loop().run_in_executor(None, fn, *args)
