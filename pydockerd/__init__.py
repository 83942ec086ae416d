"""pydockerd: the Docker Engine API on top of containerd.

A daemon that speaks the Engine API on a unix socket, so that the real
``docker`` CLI and docker-py work against it, while every image (and, later,
container) lives in a containerd — pycontainerd's or the real one — reached
over its gRPC API.  Run it as ``pydockerd`` or ``python -m pydockerd``.
"""

from __future__ import annotations

from ._api import VERSION, EngineAPI, EngineOptions
from ._daemon import Daemon, DaemonConfig
from ._images import ImageService
from ._version import MAX_VERSION, MIN_VERSION

__all__ = [
    "MAX_VERSION",
    "MIN_VERSION",
    "VERSION",
    "Daemon",
    "DaemonConfig",
    "EngineAPI",
    "EngineOptions",
    "ImageService",
]
