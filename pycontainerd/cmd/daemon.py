"""``pycontainerd``: the daemon's command line, flags named like containerd's.

Everything a user must act on ends in one line on stderr and exit code 1:
a bad config (naming the key), a root held by another daemon (naming its
pid), a socket address in use.  SIGTERM and SIGINT stop the daemon cleanly
and exit 0.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import pathlib
import signal
import sys
import time
from collections.abc import Sequence

from .._grpctune import tune_grpc

tune_grpc()

from .. import __version__  # noqa: E402 - grpc must see the setting above when it loads
from ..remotes.docker._credentials import RedactingFilter  # noqa: E402
from ..server.config import DEFAULT_CONFIG, Config, ConfigError, check_log_level, load  # noqa: E402
from ..server.server import AddressInUse, RootLocked, Server  # noqa: E402

__all__ = ["main"]

log = logging.getLogger("pycontainerd")

_LEVELS = {
    "trace": logging.DEBUG,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "fatal": logging.CRITICAL,
    "panic": logging.CRITICAL,
}


class _Formatter(logging.Formatter):
    """containerd-like ``time=... level=... msg=...`` lines, so logs of both read alike."""

    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        level = {"WARNING": "warning", "CRITICAL": "fatal"}.get(record.levelname, record.levelname.lower())
        msg = record.getMessage().replace("\\", "\\\\").replace('"', '\\"')
        line = f'time="{ts}.{int(record.msecs):03d}Z" level={level} msg="{msg}"'
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pycontainerd", description="containerd's v1 gRPC API, in Python")
    p.add_argument(
        "-c", "--config", type=pathlib.Path, help=f"path to the configuration file (default {DEFAULT_CONFIG})"
    )
    p.add_argument("-l", "--log-level", help="set the logging level [trace, debug, info, warn, error]")
    p.add_argument("-a", "--address", help="address for the gRPC server (a unix socket path)")
    p.add_argument("--root", type=pathlib.Path, help="root directory for persistent data")
    p.add_argument("--state", type=pathlib.Path, help="state directory for transient data")
    p.add_argument("-v", "--version", action="version", version=f"pycontainerd {__version__}")
    commands = p.add_subparsers(dest="command", metavar="COMMAND")
    config = commands.add_parser("config", help="print a configuration instead of serving")
    which = config.add_subparsers(dest="config_command", metavar="default|dump", required=True)
    which.add_parser("default", help="the full default configuration, as TOML")
    which.add_parser("dump", help="the configuration in force (file and flags), every plugin's settings filled in")
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


def _config(args: argparse.Namespace) -> Config:
    """The file (if any) with the flags over it; raises ConfigError."""
    path: pathlib.Path | None = args.config
    if path is None and DEFAULT_CONFIG.exists():
        path = DEFAULT_CONFIG
    cfg = load(path)
    if args.root is not None:
        cfg.root = args.root
    if args.state is not None:
        cfg.state = args.state
    if args.address:
        cfg.grpc.address = args.address
    if args.log_level:
        cfg.debug.level = check_log_level("--log-level", args.log_level)
    return cfg


async def _serve(server: Server) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await server.start()
        log.info("pycontainerd successfully booted version=%s", __version__)
        await stop.wait()
        log.info("stopping pycontainerd")
    finally:
        await server.stop()
    log.info("pycontainerd stopped")


def _fail(message: str) -> int:
    print(f"pycontainerd: {message}", file=sys.stderr, flush=True)
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "config":
        return _print_config(args)
    try:
        cfg = _config(args)
        server = Server(cfg)
    except ConfigError as e:
        return _fail(str(e))
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter())
    handler.addFilter(RedactingFilter())  # no registry credential in any log line
    root_logger = logging.getLogger()
    root_logger.addHandler(handler)
    root_logger.setLevel(_LEVELS[cfg.debug.level])
    for noisy in ("grpc", "asyncio"):  # their debug lines are about event-loop plumbing
        logging.getLogger(noisy).setLevel(max(logging.INFO, _LEVELS[cfg.debug.level]))
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
        asyncio.run(_serve(server))
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
