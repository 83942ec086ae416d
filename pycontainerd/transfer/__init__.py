"""Moving images between registries, content stores and image records.

The transfer functions are plain, blocking and thread-parallel; the daemon
runs them behind containerd's Transfer service, clients run them over the
Content and Images APIs when the daemon has no such service.
"""

from __future__ import annotations

from .progress import Progress, ProgressFunc, ref_key
from .pull import FetchOptions, distribution_source_label, fetch, pull
from .push import PushOptions, push, push_order

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
