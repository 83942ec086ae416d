"""A Python client for containerd's v1 gRPC API: real containerd or pycontainerd.

``Client`` opens one channel; its ``content``, ``images``, ``leases`` and
``namespaces`` attributes are the same store interfaces the daemon is built
from, answered over gRPC.  Errors a server reports arrive as
:mod:`pycontainerd.errors` classes.

Each name is imported from its module when first used, so a program (pyctr
above all) loads only the parts of the client it calls.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from ._cio import FIFO_ROOT, Attached, FifoSet, fifo_set_of, new_fifo_set, readers_held, remove_fifos_of
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
    "FIFO_ROOT",
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
    "readers_held",
    "remove_fifos_of",
    "translated",
]

# Where each name of __all__ lives (tests/unit/test_exports.py checks the two agree).
_HOMES = {
    "_cio": ("FIFO_ROOT", "Attached", "FifoSet", "fifo_set_of", "new_fifo_set", "readers_held", "remove_fifos_of"),
    "_client": ("DEFAULT_TIMEOUT", "Client", "InitError", "PluginInfo"),
    "_containers": ("ContainerStore",),
    "_events": ("EventService",),
    "_images": ("ImageStore",),
    "_leases": ("LeaseManager", "expire_label", "random_lease_id"),
    "_namespaces": ("NamespaceStore",),
    "_rpc": ("Connection", "translated"),
    "_tasks": ("TaskService",),
    "_transfer": ("Credentials", "RegistryOptions"),
}
_HOME_OF = {name: module for module, names in _HOMES.items() for name in names}


__getattr__, __dir__ = lazy_exports(__name__, _HOME_OF, __all__, globals())
