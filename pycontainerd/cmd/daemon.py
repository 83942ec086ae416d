"""``pycontainerd``: the daemon's command line, flags named like containerd's.

Everything a user must act on ends in one line on stderr and exit code 1:
a bad config (naming the key), a root held by another daemon (naming its
pid), a socket address in use.  SIGTERM and SIGINT stop the daemon cleanly
and exit 0; SIGUSR1 logs every thread's and task's stack and carries on.
Under systemd (``NOTIFY_SOCKET``) the daemon reports when it is ready and
when it stops.  ``pycontainerd debug ...`` asks a running daemon through
its debug socket.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import pathlib
import signal
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from .._grpctune import tune_grpc

tune_grpc()

from .. import __version__  # noqa: E402 - grpc must see the setting above when it loads
from ..log import levels  # noqa: E402
from ..log.format import ContextFilter, formatter  # noqa: E402
from ..log.stacks import Dumper  # noqa: E402
from ..remotes.docker._credentials import RedactingFilter, redact  # noqa: E402
from ..server._sdnotify import Notifier  # noqa: E402
from ..server.config import DEFAULT_CONFIG, Config, ConfigError, check_log_format, check_log_level, load  # noqa: E402
from ..server.debug import DaemonEndpoints, DebugServer, call, debug_socket_path  # noqa: E402
from ..server.server import AddressInUse, RootLocked, Server  # noqa: E402

__all__ = ["main"]

log = logging.getLogger("pycontainerd")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pycontainerd", description="containerd's v1 gRPC API, in Python")
    p.add_argument(
        "-c", "--config", type=pathlib.Path, help=f"path to the configuration file (default {DEFAULT_CONFIG})"
    )
    p.add_argument("-l", "--log-level", help="set the logging level [trace, debug, info, warn, error]")
    p.add_argument("--log-format", help="set the log format [text, json] (default: [debug] format, else text)")
    p.add_argument("-a", "--address", help="address for the gRPC server (a unix socket path)")
    p.add_argument("--root", type=pathlib.Path, help="root directory for persistent data")
    p.add_argument("--state", type=pathlib.Path, help="state directory for transient data")
    p.add_argument("-v", "--version", action="version", version=f"pycontainerd {__version__}")
    commands = p.add_subparsers(dest="command", metavar="COMMAND")
    config = commands.add_parser("config", help="print a configuration instead of serving")
    which = config.add_subparsers(dest="config_command", metavar="default|dump", required=True)
    which.add_parser("default", help="the full default configuration, as TOML")
    which.add_parser("dump", help="the configuration in force (file and flags), every plugin's settings filled in")
    socket_option = argparse.ArgumentParser(add_help=False)
    socket_option.add_argument(
        "--address", dest="debug_address", metavar="PATH", help="the debug socket (default: [debug] address)"
    )
    debug = commands.add_parser("debug", help="ask a running daemon through its debug socket")
    asks = debug.add_subparsers(dest="debug_command", metavar="stacks|loglevel|vars", required=True)
    asks.add_parser("stacks", parents=[socket_option], help="every thread's and asyncio task's stack")
    loglevel = asks.add_parser("loglevel", parents=[socket_option], help="print the log level, or set it")
    loglevel.add_argument("level", nargs="?", help="the new level [trace, debug, info, warn, error]")
    asks.add_parser("vars", parents=[socket_option], help="pid, version, uptime, threads, tasks and paths, as JSON")
    return p


def _print_config(args: argparse.Namespace) -> int:
    """``config default`` and ``config dump``: TOML on stdout, the file's warnings on stderr."""
    from ..server._toml import dumps

    try:
        server = Server(Config() if args.config_command == "default" else _config(args))
    except ConfigError as e:
        return _fail(str(e))
    if args.config_command == "dump":
        for warning in server.warnings:
            print(f"pycontainerd: warning: {warning}", file=sys.stderr)
    sys.stdout.write(dumps(server.config_document()))
    return 0


def _config_file(args: argparse.Namespace) -> pathlib.Path | None:
    path: pathlib.Path | None = args.config
    if path is None and DEFAULT_CONFIG.exists():
        path = DEFAULT_CONFIG
    return path


def _config(args: argparse.Namespace) -> Config:
    """The file (if any) with the flags over it; raises ConfigError."""
    cfg = load(_config_file(args))
    if args.root is not None:
        cfg.root = args.root
    if args.state is not None:
        cfg.state = args.state
    if args.address:
        cfg.grpc.address = args.address
    if args.log_level:
        cfg.debug.level = check_log_level("--log-level", args.log_level)
    if args.log_format:
        cfg.debug.format = check_log_format("--log-format", args.log_format)
    return cfg


def _debug(args: argparse.Namespace) -> int:
    """``debug stacks|loglevel|vars``: one request to the debug socket, its answer on stdout."""
    address: str = args.debug_address or ""
    if not address:
        try:
            address = _config(args).debug.address
        except ConfigError as e:
            return _fail(str(e))
        if not address:
            return _fail("no debug socket: pass --address or set [debug] address in the configuration")
    try:
        path = debug_socket_path(address)
    except ConfigError as e:
        return _fail(str(e))
    if args.debug_command == "loglevel" and args.level is not None:
        method, target, body = "PUT", "/debug/loglevel", args.level.encode()
    else:
        method, target, body = "GET", f"/debug/{args.debug_command}", b""
    try:
        status, answer = call(path, method, target, body)
    except OSError as e:
        return _fail(f"cannot reach the debug socket {path}: {e.strerror or e}")
    except ValueError as e:
        return _fail(f"debug socket {path}: {e}")
    text = answer.decode(errors="replace")
    if status != 200:
        return _fail(text.strip())
    sys.stdout.write(text)
    return 0


def _setup_logging(cfg: Config) -> None:
    """One line per record on stderr, text or JSON, naming the call served and holding no credential."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(cfg.debug.format, clean=redact))
    handler.addFilter(ContextFilter())
    handler.addFilter(RedactingFilter())  # no registry credential in any message; fields are cleaned by `redact`
    logging.getLogger().addHandler(handler)
    levels.set_level(cfg.debug.level)


def _notify(send: Callable[[], bool], state: str) -> None:
    """sd_notify failing is worth a warning, never a failed start or stop (as containerd)."""
    try:
        if send():
            log.debug("sd notification state=%s", state)
    except (OSError, ValueError) as e:
        # start-stop-daemon --notify-await listens for READY=1 only, then removes its socket.
        gone = state != "READY=1" and isinstance(e, (FileNotFoundError, ConnectionRefusedError))
        log.log(logging.DEBUG if gone else logging.WARNING, "sd notification failed state=%s: %s", state, e)


def _debug_server(args: argparse.Namespace, server: Server, loop: asyncio.AbstractEventLoop) -> DebugServer:
    """The debug socket of ``[debug]``, showing ``loop``'s tasks."""
    cfg = server.config
    path = debug_socket_path(cfg.debug.address)
    info: dict[str, Any] = {
        "version": __version__,
        "config": str(_config_file(args) or ""),
        "root": str(server.root),
        "state": str(server.state),
        "address": str(server.socket),
        "debug_address": str(path),
        "log_format": cfg.debug.format,
    }
    return DebugServer(path, DaemonEndpoints(loop, info), cfg.debug.uid, cfg.debug.gid)


async def _serve(args: argparse.Namespace, server: Server, dumper: Dumper, notifier: Notifier) -> None:
    loop = asyncio.get_running_loop()
    dumper.loop = loop
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    started = time.monotonic()
    debug: DebugServer | None = None
    try:
        await server.start()
        if server.config.debug.address:
            debug = _debug_server(args, server, loop)
            debug.start()
        _notify(notifier.ready, "READY=1")
        log.info("pycontainerd successfully booted in %.3fs version=%s", time.monotonic() - started, __version__)
        await stop.wait()
        _notify(notifier.stopping, "STOPPING=1")
        log.info("stopping pycontainerd")
    finally:
        if debug is not None:
            debug.stop()
        await server.stop()
    log.info("pycontainerd stopped")


def _fail(message: str) -> int:
    print(f"pycontainerd: {message}", file=sys.stderr, flush=True)
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "config":
        return _print_config(args)
    if args.command == "debug":
        return _debug(args)
    notifier = Notifier()  # before anything starts: children must not inherit NOTIFY_SOCKET
    try:
        cfg = _config(args)
        server = Server(cfg)
        if cfg.debug.address:
            debug_socket_path(cfg.debug.address)  # checked now, used once serving
    except ConfigError as e:
        return _fail(str(e))
    _setup_logging(cfg)
    dumper = Dumper(None, log)
    dumper.start()
    signal.signal(signal.SIGUSR1, lambda signum, frame: dumper.request())
    try:
        return _run(args, server, dumper, notifier)
    finally:
        dumper.stop()


def _run(args: argparse.Namespace, server: Server, dumper: Dumper, notifier: Notifier) -> int:
    """Lock the root, serve until stopped, unlock; the exit code."""
    try:
        server.lock()
    except RootLocked as e:
        return _fail(str(e))
    except OSError as e:
        return _fail(f"cannot use root {server.root}: {e.strerror}")
    for warning in server.warnings:
        log.warning("config: %s", warning)
    log.info("starting pycontainerd version=%s root=%s state=%s", __version__, server.root, server.state)
    try:
        asyncio.run(_serve(args, server, dumper, notifier))
    except AddressInUse as e:
        return _fail(str(e))
    except (OSError, RuntimeError) as e:
        log.debug("startup failed", exc_info=e)
        return _fail(str(e))
    finally:
        server.unlock()
    return 0


if __name__ == "__main__":
    sys.exit(main())
