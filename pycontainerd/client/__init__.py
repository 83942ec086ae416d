"""A Python client for containerd's v1 gRPC API: real containerd or pycontainerd.

``Client`` opens one channel; its ``content``, ``images``, ``leases`` and
``namespaces`` attributes are the same store interfaces the daemon is built
from, answered over gRPC.  Errors a server reports arrive as
:mod:`pycontainerd.errors` classes.
"""

from __future__ import annotations

from ._cio import Attached, FifoSet, fifo_set_of, new_fifo_set, remove_fifos_of
from ._client import DEFAULT_TIMEOUT, Client, InitError, PluginInfo
from ._containers import ContainerStore
from ._events import EventService
from ._images import ImageStore
from ._leases import LeaseManager, expire_label, random_lease_id
from ._namespaces import NamespaceStore
from ._rpc import Connection, translated
from ._tasks import TaskService
from ._transfer import Credentials, RegistryOptions

__all__ = [
    "DEFAULT_TIMEOUT",
    "Attached",
    "Client",
    "Connection",
    "ContainerStore",
    "Credentials",
    "EventService",
    "FifoSet",
    "ImageStore",
    "InitError",
    "LeaseManager",
    "NamespaceStore",
    "PluginInfo",
    "RegistryOptions",
    "TaskService",
    "expire_label",
    "fifo_set_of",
    "new_fifo_set",
    "random_lease_id",
    "remove_fifos_of",
    "translated",
]
