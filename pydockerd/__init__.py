"""pydockerd: the Docker Engine API on top of containerd.

A daemon that speaks the Engine API on a unix socket, so that the real
``docker`` CLI and docker-py work against it, while every image (and, later,
container) lives in a containerd — pycontainerd's or the real one — reached
over its gRPC API.  Run it as ``pydockerd`` or ``python -m pydockerd``.
"""

from __future__ import annotations

from pycontainerd._grpctune import tune_grpc

tune_grpc()  # before grpc loads: local mode serves pycontainerd's services in this process

from ._backend import Backend, EngineOptions  # noqa: E402
from ._daemon import Daemon, DaemonConfig  # noqa: E402
from ._images import ImageService  # noqa: E402
from ._version import MAX_VERSION, MIN_VERSION, VERSION  # noqa: E402
from .routes import build_router  # noqa: E402

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
