"""The commands of ``pyctr``, one module per kind of object, each adding its parsers.

``pycontainerd.cmd.pyctr`` owns the global flags, the client and the error
handling; the modules here only turn arguments into client calls and output.
"""

from __future__ import annotations

from typing import Any

from . import _containers, _content, _events, _images, _leases, _namespaces, _run, _snapshots, _system, _tasks
from ._common import Parser, report

__all__ = ["Parser", "register_all", "report"]


def register_all(sub: Any) -> None:
    """Add every command group to the top-level subparsers."""
    for module in (_system, _namespaces, _content, _images, _leases, _snapshots, _containers, _tasks, _events):
        module.register(sub)
    _run.register_run(sub)
