"""pydockerd: the Docker Engine API on top of containerd.

A daemon that speaks the Engine API on a unix socket, so that the real
``docker`` CLI and docker-py work against it, while every image (and, later,
container) lives in a containerd — pycontainerd's or the real one — reached
over its gRPC API.  Run it as ``pydockerd`` or ``python -m pydockerd``.
"""

from __future__ import annotations

from ._backend import Backend, EngineOptions
from ._daemon import Daemon, DaemonConfig
from ._images import ImageService
from ._version import MAX_VERSION, MIN_VERSION, VERSION
from .routes import build_router

__all__ = [
    "MAX_VERSION",
    "MIN_VERSION",
    "VERSION",
    "Backend",
    "Daemon",
    "DaemonConfig",
    "EngineOptions",
    "ImageService",
    "build_router",
]
