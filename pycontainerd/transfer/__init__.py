"""Moving images between registries, content stores and image records.

The transfer functions are plain, blocking and thread-parallel; the daemon
runs them behind containerd's Transfer service, clients run them over the
Content and Images APIs when the daemon has no such service.

Progress records load with the package; pulls and pushes when first used,
so a client that only watches the daemon's transfer never loads them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports
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


__getattr__, __dir__ = lazy_exports(__name__, _HOME_OF, __all__, globals())
