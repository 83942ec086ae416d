"""``pyctr``: a ctr-like command line for containerd's v1 API (real containerd or pycontainerd).

Every failure ends the same way: one line ``pyctr: <message>`` on stderr and
a non-zero exit status, never a traceback, whether the socket is missing, an
object is not found, an argument is wrong, stdout was closed early or the
user pressed Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from datetime import timedelta

# Before grpc loads: its C core would otherwise log multi-line diagnostics on stderr.
os.environ.setdefault("GRPC_VERBOSITY", "NONE")

from .. import __version__
from ..cli import Parser, register_all, report
from ..cli._common import duration_arg
from ..client import Client
from ..errors import ContainerdError, InvalidArgument, Unavailable

DEFAULT_ADDRESS = "/run/pycontainerd/pycontainerd.sock"
ADDRESS_ENV = "PYCONTAINERD_ADDRESS"
NAMESPACE_ENV = "CONTAINERD_NAMESPACE"
EXIT_FAILURE = 1
EXIT_USAGE = 2
SNAPSHOTTER_ENV = "CONTAINERD_SNAPSHOTTER"
EXIT_INTERRUPTED = 130


def build_parser(argv: Sequence[str] | None = None) -> Parser:
    """pyctr's parser: with every command, or with ``argv`` only the command it names (so only its module loads)."""
    parser = Parser(prog="pyctr", description="Talk to containerd (or pycontainerd) over its v1 gRPC API.")
    parser.add_argument("--version", action="version", version=f"pyctr {__version__}")
    parser.add_argument(
        "-a",
        "--address",
        default=os.environ.get(ADDRESS_ENV) or DEFAULT_ADDRESS,
        help=f"the daemon's socket (env {ADDRESS_ENV}; default {DEFAULT_ADDRESS})",
    )
    parser.add_argument(
        "-n",
        "--namespace",
        default=os.environ.get(NAMESPACE_ENV) or "default",
        help=f"namespace of the command (env {NAMESPACE_ENV}; default 'default')",
    )
    parser.add_argument(
        "--snapshotter",
        default=os.environ.get(SNAPSHOTTER_ENV) or "",
        help=f"snapshotter for commands that use one (env {SNAPSHOTTER_ENV}; default: the daemon's default)",
    )
    parser.add_argument(
        "--timeout",
        type=duration_arg,
        default=timedelta(seconds=60),
        metavar="DURATION",
        help="how long one call may take, e.g. 30s or 2m (0: no limit; default 60s)",
    )
    sub = parser.add_subparsers(title="commands", metavar="COMMAND", dest="command")
    sub.required = True
    register_all(sub, argv)
    return parser


def _quiet_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def run(args: argparse.Namespace) -> int:
    timeout = args.timeout.total_seconds()
    if timeout < 0:
        raise InvalidArgument(f"--timeout must not be negative: {args.timeout}")
    with Client(args.address, namespace=args.namespace, timeout=timeout or None) as client:
        try:
            rc = args.func(client, args)
        except Unavailable as e:
            if "cannot connect" in e.message:  # already names the address
                raise
            raise Unavailable(f"{args.address}: {e}") from None
    sys.stdout.flush()
    return int(rc or 0)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``pyctr`` console script; returns the exit status."""
    try:
        args = build_parser(sys.argv[1:] if argv is None else argv).parse_args(argv)
        return run(args)
    except ContainerdError as e:
        report(str(e))
        return EXIT_FAILURE
    except BrokenPipeError:
        _quiet_stdout()
        report("stdout was closed before all output was written (broken pipe)")
        return EXIT_FAILURE
    except KeyboardInterrupt:
        report("interrupted")
        return EXIT_INTERRUPTED
    except OSError as e:
        report(e.strerror or str(e))
        return EXIT_FAILURE
    except SystemExit as e:
        # argparse's --help/--version and one-line usage errors.
        return e.code if isinstance(e.code, int) else EXIT_USAGE
    except Exception as e:
        report(f"unexpected error: {type(e).__name__}: {e}")
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
