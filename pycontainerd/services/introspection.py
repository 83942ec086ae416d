"""The Introspection gRPC service: which plugins this daemon loaded, and who it is.

``Plugins`` reports every registration the daemon tried, including those
whose initialisation failed (with the error as ``init_err``), so ``ctr
plugins ls`` shows ``error`` for them as it does against containerd.
Filters use containerd's syntax over ``type``, ``id`` and ``capabilities``
(a plugin matches a capability filter if any of its capabilities does).

``Server`` returns a UUID created on first use and kept under the plugin's
root, so it survives restarts of the same daemon.
"""

from __future__ import annotations

import pathlib
import threading
import uuid
from collections.abc import Iterable, Sequence

import grpc
from google.protobuf.empty_pb2 import Empty
from google.rpc import status_pb2

from .. import filters
from ..api.services.introspection.v1 import introspection_pb2 as pb
from ..api.services.introspection.v1 import introspection_pb2_grpc as pb_grpc
from ..errors import ContainerdError
from ..plugin import Plugin
from .rpc import guarded, offload

__all__ = ["IntrospectionService", "plugin_to_pb"]


def plugin_to_pb(p: Plugin) -> pb.Plugin:
    reg = p.registration
    init_err = None
    if p.error is not None:
        code = p.error.grpc_code if isinstance(p.error, ContainerdError) else grpc.StatusCode.UNKNOWN
        init_err = status_pb2.Status(code=code.value[0], message=str(p.error) or type(p.error).__name__)
    return pb.Plugin(
        type=reg.type,
        id=reg.id,
        requires=list(reg.requires),
        exports=dict(p.exports),
        capabilities=list(p.meta_capabilities or reg.capabilities),
        init_err=init_err,
    )


def _matches(flt: filters.Filter, p: pb.Plugin) -> bool:
    def adaptor(capability: str | None) -> filters.Adaptor:
        def field(path: Sequence[str]) -> str | None:
            if len(path) != 1:
                return None
            if path[0] == "type":
                return p.type or None
            if path[0] == "id":
                return p.id or None
            if path[0] == "capabilities":
                return capability
            return None

        return field

    capabilities: list[str | None] = list(p.capabilities) or [None]
    return any(flt.match(adaptor(c)) for c in capabilities)


class IntrospectionService(pb_grpc.IntrospectionServicer):
    """Reports on ``plugins``, the daemon's live plugin set."""

    def __init__(self, plugins: Iterable[Plugin], root: pathlib.Path) -> None:
        self._plugins = plugins
        self._uuid_path = root / "uuid"
        self._lock = threading.Lock()

    def register(self, server: grpc.aio.Server) -> None:
        pb_grpc.add_IntrospectionServicer_to_server(guarded(self), server)

    async def Plugins(self, request: pb.PluginsRequest, context: grpc.aio.ServicerContext) -> pb.PluginsResponse:
        flt = filters.parse(list(request.filters))
        found = [p for p in map(plugin_to_pb, list(self._plugins)) if _matches(flt, p)]
        return pb.PluginsResponse(plugins=found)

    async def Server(self, request: Empty, context: grpc.aio.ServicerContext) -> pb.ServerResponse:
        return pb.ServerResponse(uuid=await offload(self.uuid))

    def uuid(self) -> str:
        """The daemon's UUID, created and stored on first use."""
        with self._lock:
            try:
                text = self._uuid_path.read_text().strip()
                return str(uuid.UUID(text))
            except FileNotFoundError:
                pass
            value = str(uuid.uuid4())
            self._uuid_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            tmp = self._uuid_path.with_suffix(".tmp")
            tmp.write_text(value)
            tmp.replace(self._uuid_path)
            return value
