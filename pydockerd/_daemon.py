"""The daemon: the Engine API served on a unix socket, over a containerd reached by gRPC.

Two ways to reach containerd (seed 004's "local" and "remote"): embedded
(the default, see _embedded), pycontainerd's services run in this process;
remote, containerd (pycontainerd's or the real one) runs apart at the
address given.  Either way pydockerd is a gRPC client of it, every image and
container living in one containerd namespace (``moby`` by default).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pycontainerd.client import Client
from pycontainerd.errors import InvalidArgument

from ._backend import Backend, EngineOptions
from ._embedded import EMBEDDED, EmbeddedContainerd
from ._events import EventLog
from ._http import serve_connection
from ._images import ImageService
from .builder import BuildService
from .containers import ContainerService
from .routes import build_router

__all__ = [
    "DEFAULT_CONTAINERD",
    "DEFAULT_DATA_ROOT",
    "DEFAULT_EXEC_ROOT",
    "DEFAULT_HOST",
    "DEFAULT_NAMESPACE",
    "Daemon",
    "DaemonConfig",
    "socket_path",
]

DEFAULT_HOST = "unix:///run/pydockerd.sock"
DEFAULT_CONTAINERD = EMBEDDED
DEFAULT_NAMESPACE = "moby"
DEFAULT_DATA_ROOT = "/var/lib/pydockerd"
DEFAULT_EXEC_ROOT = "/run/pydockerd"

log = logging.getLogger("pydockerd")


def socket_path(host: str) -> str:
    """The socket path of a ``-H`` address: ``unix:///path`` or a bare path; other schemes are refused."""
    if host.startswith("unix://"):
        path = host.removeprefix("unix://")
    elif "://" in host:
        raise InvalidArgument(f"-H {host}: only unix:// sockets are supported")
    else:
        path = host
    if not path.startswith("/"):
        raise InvalidArgument(f"-H {host}: want an absolute socket path")
    return path


@dataclass(frozen=True)
class DaemonConfig:
    host: str = DEFAULT_HOST
    containerd_address: str = DEFAULT_CONTAINERD
    namespace: str = DEFAULT_NAMESPACE
    insecure_registries: Sequence[str] = ()
    unpack: bool = True
    snapshotter: str = ""
    data_root: str = DEFAULT_DATA_ROOT
    exec_root: str = DEFAULT_EXEC_ROOT
    debug: bool = False


class Daemon:
    """One pydockerd: a containerd client, the image service and the HTTP server on the socket."""

    def __init__(self, config: DaemonConfig) -> None:
        self.config = config
        self.path = socket_path(config.host)
        self.embedded: EmbeddedContainerd | None = None
        self.address = config.containerd_address
        if self.address == EMBEDDED:
            self.embedded = EmbeddedContainerd(config.data_root, config.exec_root, debug=config.debug)
            self.address = self.embedded.address
        self.client = Client(self.address, namespace=config.namespace)
        self.events = EventLog()
        self.images = ImageService(
            self.client,
            insecure_registries=config.insecure_registries,
            unpack=config.unpack,
            snapshotter=config.snapshotter,
            events=self.events,
            # Late-bound: the container service is made below, over this image service.
            users=self._container_users,
            running=self._container_running,
        )
        options = EngineOptions(
            containerd_address=self.address,
            namespace=config.namespace,
            root=config.data_root,
            insecure_registries=tuple(config.insecure_registries),
        )
        self.backend = Backend(self.client, self.images, options, self.events)
        self.backend.builds = BuildService(self.client, self.images, snapshotter=config.snapshotter, events=self.events)
        self.containers = ContainerService(
            self.client, self.images, self.events, Path(config.data_root), snapshotter=config.snapshotter
        )
        self.backend.containers = self.containers
        self.app = build_router(self.backend)

    def _container_users(self, image_id: str) -> list[str]:
        return self.containers.users_of(image_id)

    def _container_running(self, container_id: str) -> bool:
        record = self.containers.store.find(container_id)
        return record is not None and record.state.running

    def check_containerd(self) -> tuple[str, str]:
        """containerd's version, the embedded one started first: raises Unavailable when nothing answers."""
        if self.embedded is not None and not self.embedded.running:
            self.embedded.start()
        return self.client.version()

    def _remove_stale_socket(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISSOCK(os.lstat(self.path).st_mode):
                os.unlink(self.path)

    async def serve(self, stop: asyncio.Event) -> None:
        """Serve until ``stop`` is set; the socket is removed on the way out."""
        self._remove_stale_socket()
        os.makedirs(os.path.dirname(self.path) or "/", exist_ok=True)
        await self.containers.start_up()
        connections: set[asyncio.Task[None]] = set()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            connections.add(task)
            try:
                await serve_connection(reader, writer, self.app)
            except asyncio.CancelledError:
                # Shutdown cancels connections still streaming (wait, logs -f, events): the task ends here,
                # else asyncio's stream callback logs the cancellation as an error with a traceback.
                writer.close()
            finally:
                connections.discard(task)

        server = await asyncio.start_unix_server(handle, path=self.path)
        os.chmod(self.path, 0o660)
        log.info("API listen on %s", self.path)
        try:
            await stop.wait()
        finally:
            server.close()
            for task in list(connections):
                task.cancel()  # idle keep-alive connections, and streams of clients still reading
            await asyncio.gather(*connections, return_exceptions=True)
            await server.wait_closed()
            await self.containers.shut_down()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
            log.info("stopped")

    def close(self) -> None:
        self.client.close()
        if self.embedded is not None:
            self.embedded.stop()
