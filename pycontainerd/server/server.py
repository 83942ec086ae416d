"""The daemon's lifetime: lock the root, initialise plugins, serve gRPC on a unix socket, stop.

Order matters at both ends.  Starting: the root lock comes first, so a
second daemon on the same root touches nothing (not even a stale socket);
plugins are initialised in dependency order, each failure recorded for
Introspection rather than fatal (unless the plugin is required); services
are registered only when all plugins are up, so the first answer on the
socket comes from a complete daemon.  Stopping: health turns NOT_SERVING,
the gRPC server stops accepting and gives running calls a grace period,
plugins close in reverse order (the database last), the socket goes.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import inspect
import logging
import os
import pathlib
import typing
from typing import Any

import grpc

from .._rootlock import LOCK_FILE, try_lock
from ..metrics._http import MetricsServer
from ..plugin import InitContext, Plugin, PluginSet, PluginType, Registration, ordered
from ._metrics import start_metrics
from ._unixsock import AddressInUse, claim, own, release
from .builtins import BUILTINS, Builtin
from .config import Config, ConfigError, Duration, decode_plugin_config, format_duration

__all__ = ["LOCK_FILE", "AddressInUse", "RootLocked", "Server", "socket_path"]

log = logging.getLogger("pycontainerd")

SHUTDOWN_GRACE = 5.0
CORE_THREADS = 32


class RootLocked(Exception):
    """Another daemon holds the root."""

    def __init__(self, root: pathlib.Path, pid: int | None) -> None:
        self.root = root
        self.pid = pid
        holder = f" (pid {pid})" if pid else ""
        super().__init__(f"another daemon is using root {root}{holder}")


def socket_path(address: str) -> pathlib.Path:
    """The filesystem path of a ``unix://`` (or bare path) address."""
    for prefix in ("unix://", "unix:"):
        if address.startswith(prefix):
            address = address[len(prefix) :]
            break
    if not address or "://" in address:
        raise ConfigError(f"grpc.address: {address!r} is not a unix socket path")
    return pathlib.Path(address).absolute()


def _without_none(table: dict[str, Any]) -> dict[str, Any]:
    """TOML has no null: an unset key is left out."""
    return {k: v for k, v in table.items() if v is not None}


class Server:
    """One daemon: its config, plugins and gRPC server."""

    def __init__(self, config: Config, builtins: tuple[Builtin, ...] = BUILTINS) -> None:
        """Check every plugin section now; raises ConfigError before anything is touched."""
        self.config = config
        self.root = config.root.absolute()
        self.state = config.state.absolute()
        self.socket = socket_path(config.grpc.address)
        self.plugins = PluginSet()
        self.warnings: list[str] = list(config.warnings)
        self._builtins = builtins
        self._plugin_config: dict[str, dict[str, Any]] = {}
        self._lock_fd = -1
        self._grpc: grpc.aio.Server | None = None
        self._socket_ino: int | None = None
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self.metrics: MetricsServer | None = None
        known: set[str] = set()
        for b in builtins:
            reg = b.registration
            key, raw = config.plugin_section(reg.type, reg.id)
            known.add(key)
            if b.config is not None:
                values, warnings = decode_plugin_config(f'plugins."{key}"', raw, b.config)
                self.warnings += warnings
                self._plugin_config[reg.uri] = values
            elif raw:
                self.warnings.append(f'plugins."{key}": plugin takes no configuration, ignored')
        for key in config.plugins:
            if key not in known:
                self.warnings.append(f'plugins."{key}": no such plugin, ignored')
        uris = {b.registration.uri for b in builtins} | {b.registration.id for b in builtins}
        for name in config.required_plugins:
            if name not in uris:
                raise ConfigError(f"required_plugins: plugin {name} is not included in pycontainerd")

    # -- root lock ----------------------------------------------------------

    def config_document(self) -> dict[str, Any]:
        """The configuration in force, every plugin's settings filled in, as a TOML document (``config dump``)."""
        c = self.config
        grpc_table: dict[str, Any] = {"address": c.grpc.address}
        for key in ("uid", "gid"):
            if getattr(c.grpc, key) is not None:
                grpc_table[key] = getattr(c.grpc, key)
        grpc_table["max_recv_message_size"] = c.grpc.max_recv_message_size
        grpc_table["max_send_message_size"] = c.grpc.max_send_message_size
        plugins: dict[str, Any] = {}
        for b in self._builtins:
            reg = b.registration
            if b.config is None:
                continue
            durations = {n for n, h in typing.get_type_hints(b.config, include_extras=True).items() if h == Duration}
            values = self._plugin_config[reg.uri]
            plugins[reg.uri] = {k: format_duration(v) if k in durations else v for k, v in values.items()}
        return {
            "version": 2,
            "root": str(c.root),
            "state": str(c.state),
            "disabled_plugins": list(c.disabled_plugins),
            "required_plugins": list(c.required_plugins),
            "grpc": grpc_table,
            "debug": _without_none(dataclasses.asdict(c.debug)),
            "metrics": dataclasses.asdict(c.metrics),
            "plugins": plugins,
        }

    def lock(self) -> None:
        """Take the root for this process; raises RootLocked naming the holder's pid."""
        # Only root may enter the root, as containerd's: blobs (0444) and snapshots
        # must not be readable by users who merely know or guess their names.
        # The chmod also narrows a root made by an older pycontainerd (0711).
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)
        fd = os.open(self.root / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        held_by = try_lock(fd)
        if held_by is not None:
            os.close(fd)
            raise RootLocked(self.root, held_by or None)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock_fd = fd

    def unlock(self) -> None:
        # The file stays: unlinking it would let two later daemons lock different inodes.
        if self._lock_fd >= 0:
            fd, self._lock_fd = self._lock_fd, -1
            os.close(fd)

    # -- plugins ------------------------------------------------------------

    def load_plugins(self) -> None:
        """Initialise every enabled plugin in dependency order; raises if a required one fails."""
        self.state.mkdir(mode=0o711, parents=True, exist_ok=True)
        disabled = self.config.disabled_plugins
        regs = [b.registration for b in self._builtins]
        for reg in ordered(regs, disabled):
            log.info('loading plugin "%s"... type=%s', reg.uri, reg.type)
            plugin = self._init_plugin(reg)
            self.plugins.add(plugin)
            if plugin.error is None:
                log.debug('plugin "%s" ready, exports %s', reg.uri, plugin.exports)
            else:
                log.warning('failed to load plugin "%s": %s', reg.uri, plugin.error)
                if reg.uri in self.config.required_plugins or reg.id in self.config.required_plugins:
                    raise RuntimeError(f"load required plugin {reg.uri}: {plugin.error}")

    def _init_plugin(self, reg: Registration) -> Plugin:
        ic = InitContext(
            registration=reg,
            root=self.root / reg.uri,
            state=self.state / reg.uri,
            address=str(self.socket),
            config=self._plugin_config.get(reg.uri, {}),
            plugins=self.plugins,
        )
        try:
            instance = reg.init(ic)
        except Exception as e:
            return Plugin(registration=reg, error=e, exports=dict(ic.properties))
        return Plugin(registration=reg, instance=instance, exports=dict(ic.properties))

    def close_plugins(self) -> None:
        """Close plugin instances in reverse order of initialisation."""
        for plugin in reversed(list(self.plugins)):
            close = getattr(plugin.instance, "close", None) or getattr(plugin.instance, "stop", None)
            if plugin.ok and callable(close):
                try:
                    close()
                except Exception:
                    log.exception('closing plugin "%s" failed', plugin.registration.uri)

    # -- serving ------------------------------------------------------------

    async def start(self) -> None:
        """Load plugins and serve on the socket; raises AddressInUse, OSError, RuntimeError."""
        loop = asyncio.get_running_loop()
        self._executor = concurrent.futures.ThreadPoolExecutor(CORE_THREADS, thread_name_prefix="core")
        loop.set_default_executor(self._executor)
        self.load_plugins()
        for plugin in self.plugins:
            startup = getattr(plugin.instance, "startup", None)
            if plugin.ok and startup is not None and inspect.iscoroutinefunction(startup):
                await startup()
        g = self.config.grpc
        server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", g.max_recv_message_size),
                ("grpc.max_send_message_length", g.max_send_message_size),
            ],
        )
        for plugin in self.plugins:
            register = getattr(plugin.instance, "register", None)
            if plugin.ok and plugin.registration.type == PluginType.GRPC and callable(register):
                register(server)
        claim(self.socket)
        old = os.umask(0o117)  # the socket appears as 0660, never wider
        try:
            server.add_insecure_port(f"unix:{self.socket}")
            await server.start()
        finally:
            os.umask(old)
        self._grpc = server
        self.metrics = await start_metrics(self.config.metrics, self.plugins)
        self._export_addresses()
        self._socket_ino = own(self.socket, g.uid, g.gid)
        log.info("serving... address=%s", self.socket)

    def _export_addresses(self) -> None:
        """Name the metrics and debug endpoints in Introspection's exports, for ``pyctr info`` to show."""
        for plugin in self.plugins:
            if plugin.registration.type == PluginType.GRPC and plugin.registration.id == "introspection":
                if self.metrics is not None:
                    host, port = self.metrics.address
                    plugin.exports["metrics_address"] = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
                if self.config.debug.address:
                    plugin.exports["debug_address"] = self.config.debug.address

    async def wait(self) -> None:
        if self._grpc is not None:
            await self._grpc.wait_for_termination()

    async def stop(self, grace: float = SHUTDOWN_GRACE) -> None:
        """Stop serving, let running calls finish (then cancel them), close plugins, remove the socket."""
        for plugin in self.plugins:
            shutdown = getattr(plugin.instance, "shutdown", None)
            if plugin.ok and shutdown is not None and inspect.iscoroutinefunction(shutdown):
                await shutdown()
        if self.metrics is not None:
            await self.metrics.close()
            self.metrics = None
        if self._grpc is not None:
            await self._grpc.stop(grace)
            self._grpc = None
        await asyncio.to_thread(self.close_plugins)
        release(self.socket, self._socket_ino)
        self._socket_ino = None
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        self.unlock()
