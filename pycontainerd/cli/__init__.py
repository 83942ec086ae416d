"""The commands of ``pyctr``, one module per kind of object, each adding its parsers.

``pycontainerd.cmd.pyctr`` owns the global flags, the client and the error
handling; the modules here only turn arguments into client calls and output.

Given the command line, :func:`register_all` imports only the module of the
command named (``pyctr images pull`` never loads the task or container
code); help, and words it does not know, load them all.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

from ._common import Parser, report

__all__ = ["GLOBAL_VALUE_OPTIONS", "Parser", "command_word", "register_all", "report"]

# Each module, the function that adds its commands, and the words (names and aliases) they answer to,
# in the order the help lists them.  tests/client/test_imports.py checks the words against the parsers.
_GROUPS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("_system", "register", ("version", "info", "plugins", "plugin")),
    ("_namespaces", "register", ("namespaces", "namespace", "ns")),
    ("_content", "register", ("content",)),
    ("_images", "register", ("images", "image", "i")),
    ("_leases", "register", ("leases", "lease")),
    ("_snapshots", "register", ("snapshots", "snapshot")),
    ("_containers", "register", ("containers", "c", "container")),
    ("_tasks", "register", ("tasks", "t", "task")),
    ("_events", "register", ("events",)),
    ("_run", "register_run", ("run",)),
    ("_check", "register", ("check",)),
    ("_migrate", "register", ("migrate",)),
)

GLOBAL_VALUE_OPTIONS = ("-a", "--address", "-n", "--namespace", "--snapshotter", "--timeout")
"""pyctr's options that come before the command and take a value (tests check them against its parser)."""


def command_word(argv: Sequence[str]) -> str | None:
    """The command ``argv`` names (``images`` in ``-n x images pull ref``); None when help is asked first, or none.

    Long options may be abbreviated (argparse accepts any unique prefix),
    values may be attached (``--address=x``, ``-ax``) or follow.
    """
    longs = [o for o in GLOBAL_VALUE_OPTIONS if o.startswith("--")]
    shorts = [o for o in GLOBAL_VALUE_OPTIONS if not o.startswith("--")]
    tokens = iter(argv)
    for tok in tokens:
        if tok == "--":
            return next(tokens, None)
        if tok.startswith("--"):
            name, eq, _ = tok.partition("=")
            if len(name) > 2 and "--help".startswith(name):
                return None
            if not eq and any(o.startswith(name) for o in longs):
                next(tokens, None)
        elif tok.startswith("-") and tok != "-":
            if tok[:2] == "-h":
                return None
            if tok in shorts:
                next(tokens, None)
        else:
            return tok
    return None


def register_all(sub: Any, argv: Sequence[str] | None = None) -> None:
    """Add the command groups to the top-level subparsers: all, or with ``argv`` only the one it names."""
    word = command_word(argv) if argv is not None else None
    chosen = [g for g in _GROUPS if word in g[2]] or _GROUPS
    for module, register, _ in chosen:
        getattr(importlib.import_module(f"{__name__}.{module}"), register)(sub)
