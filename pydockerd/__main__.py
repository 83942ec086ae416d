"""``pydockerd``: the Engine API daemon's command line, flags named like dockerd's.

A user's mistake (a bad flag value, no containerd at the address) ends in
one line on stderr and exit code 1; SIGTERM and SIGINT stop the daemon
cleanly, removing its socket, and exit 0.

``--migrate-from DIR`` brings a stopped Docker's images along before the
socket is served (see :mod:`pycontainerd.migrate`): Docker's image ids and
tags, runnable at once.  Each image and the summary are logged; an image
that cannot be migrated is a warning, not a reason to stay down, but a root
that cannot be read at all is (the user asked for it).  A second start with
the same flag finds everything present and writes nothing, so the flag may
stay in a unit file.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from pycontainerd.errors import ContainerdError
from pycontainerd.remotes.docker import RedactingFilter

from ._daemon import (
    DEFAULT_CONTAINERD,
    DEFAULT_DATA_ROOT,
    DEFAULT_EXEC_ROOT,
    DEFAULT_HOST,
    DEFAULT_NAMESPACE,
    Daemon,
    DaemonConfig,
)
from ._version import VERSION

__all__ = ["main"]

log = logging.getLogger("pydockerd")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pydockerd", description="the Docker Engine API on containerd")
    p.add_argument("-H", "--host", default=DEFAULT_HOST, help=f"socket to listen on (default {DEFAULT_HOST})")
    p.add_argument(
        "--containerd",
        "--containerd-address",
        dest="containerd_address",
        default=DEFAULT_CONTAINERD,
        metavar="ADDRESS",
        help=f"containerd's gRPC socket, or {DEFAULT_CONTAINERD!r}: pycontainerd's services run inside pydockerd,"
        f" on a socket under --exec-root (default {DEFAULT_CONTAINERD})",
    )
    p.add_argument(
        "--namespace",
        "--containerd-namespace",
        default=DEFAULT_NAMESPACE,
        help=f"containerd namespace of images and containers (default {DEFAULT_NAMESPACE})",
    )
    p.add_argument(
        "--insecure-registry",
        action="append",
        default=[],
        metavar="HOST[:PORT]",
        help="registry reached over plain HTTP (loopback registries always are)",
    )
    p.add_argument(
        "--data-root",
        "--root",
        default=DEFAULT_DATA_ROOT,
        help=f"pydockerd's own state: containers' records and logs (default {DEFAULT_DATA_ROOT})",
    )
    p.add_argument(
        "--exec-root",
        default=DEFAULT_EXEC_ROOT,
        help=f"transient state: the embedded containerd's socket and tasks (default {DEFAULT_EXEC_ROOT})",
    )
    p.add_argument("--snapshotter", default="", help="snapshotter images are unpacked into (default: containerd's)")
    p.add_argument("--no-unpack", action="store_true", help="pull without unpacking layers")
    p.add_argument(
        "--migrate-from",
        metavar="DIR",
        default="",
        help="before serving, migrate the images of the Docker data root DIR (overlay2; dockerd stopped; only read)"
        " into --namespace, with Docker's image ids and tags; images already migrated are skipped",
    )
    p.add_argument("-D", "--debug", action="store_true", help="debug logging")
    p.add_argument("-v", "--version", action="version", version=f"pydockerd {VERSION}")
    return p


def _migrate(daemon: Daemon, root: Path) -> bool:
    """Migrate ``root`` into the daemon's namespace, logging what happens; False when the root cannot be read."""
    from pycontainerd.migrate import Event, MigrateOptions, migrate_docker
    from pycontainerd.migrate.importer import FAILED, MIGRATED, PRESENT

    def progress(e: Event) -> None:
        if e.kind == "image" and e.state != FAILED:
            log.info("migrate: image %s %s: %s", e.subject, " ".join(e.names), e.state)
        elif e.kind == "layer" and e.state != FAILED:
            log.debug("migrate: layer %s: %s %d/%d", e.subject, e.state, e.done, e.total)

    config = daemon.config
    log.info("migrating the images of the Docker root %s into namespace %s", root, config.namespace)
    try:
        report = migrate_docker(daemon.client, root, MigrateOptions(snapshotter=config.snapshotter, progress=progress))
    except ContainerdError as e:
        print(f"pydockerd: --migrate-from {root}: {e}", file=sys.stderr)
        return False
    for outcome in report.images:
        if outcome.state == FAILED:
            log.warning(
                "migrate: image %s %s not migrated: %s", outcome.image_id, " ".join(outcome.names), outcome.reason
            )
    for line in [*report.failures, *map(str, report.problems)]:
        log.warning("migrate: not migrated: %s", line)
    log.info(
        "migrate: %d image(s) migrated, %d already present, %d not migrated; %d layer(s) written (%d bytes)",
        report.count(MIGRATED),
        report.count(PRESENT),
        report.count(FAILED) + len(report.problems),
        report.layers_written,
        report.bytes_written,
    )
    return True


async def _run(daemon: Daemon) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await daemon.serve(stop)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("asyncio").setLevel(logging.WARNING)
    for handler in logging.getLogger().handlers:
        handler.addFilter(RedactingFilter())  # no registry credential in any log line
    config = DaemonConfig(
        host=args.host,
        containerd_address=args.containerd_address,
        namespace=args.namespace,
        insecure_registries=tuple(args.insecure_registry),
        unpack=not args.no_unpack,
        snapshotter=args.snapshotter,
        data_root=args.data_root,
        exec_root=args.exec_root,
        debug=args.debug,
    )
    try:
        daemon = Daemon(config)
    except ContainerdError as e:
        print(f"pydockerd: {e}", file=sys.stderr)
        return 1
    try:
        version, _ = daemon.check_containerd()
        log.info("containerd %s at %s, namespace %s", version, daemon.address, config.namespace)
        if args.migrate_from and not _migrate(daemon, Path(args.migrate_from)):
            return 1
        asyncio.run(_run(daemon))
    except ContainerdError as e:
        print(f"pydockerd: containerd at {daemon.address}: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"pydockerd: {e}", file=sys.stderr)
        return 1
    finally:
        daemon.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
