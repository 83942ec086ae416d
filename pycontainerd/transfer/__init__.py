"""Moving images between registries, content stores and image records.

The transfer functions are plain, blocking and thread-parallel; the daemon
runs them behind containerd's Transfer service, clients run them over the
Content and Images APIs when the daemon has no such service.

Progress records load with the package; pulls and pushes when first used,
so a client that only watches the daemon's transfer never loads them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .progress import Progress, ProgressFunc, ref_key

if TYPE_CHECKING:
    from ._pull import FetchOptions, distribution_source_label, fetch, pull
    from ._push import PushOptions, push, push_order

__all__ = [
    "FetchOptions",
    "Progress",
    "ProgressFunc",
    "PushOptions",
    "distribution_source_label",
    "fetch",
    "pull",
    "push",
    "push_order",
    "ref_key",
]

_HOME_OF = {
    "FetchOptions": "_pull",
    "distribution_source_label": "_pull",
    "fetch": "_pull",
    "pull": "_pull",
    "PushOptions": "_push",
    "push": "_push",
    "push_order": "_push",
}


def __getattr__(name: str) -> Any:
    module = _HOME_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
