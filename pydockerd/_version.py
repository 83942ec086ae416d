"""Engine API versions: which this daemon speaks, and the ``/vX.Y`` prefix of request paths.

A path may carry the client's version (``/v1.50/images/json``); without one
the request is taken at the newest version.  A version outside the range is
refused with dockerd's 400 and its message.
"""

from __future__ import annotations

import re

from pycontainerd import __version__ as VERSION
from pycontainerd.errors import InvalidArgument

__all__ = ["DEFAULT_VERSION", "MAX_VERSION", "MIN_VERSION", "VERSION", "at_least", "split_version"]

MIN_VERSION = "1.41"
MAX_VERSION = "1.50"
DEFAULT_VERSION = MAX_VERSION

_PREFIX = re.compile(r"^/v(?P<version>[0-9]+(?:\.[0-9]+)*)(?P<rest>/.*)?$")


def _key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))


def at_least(version: str, other: str) -> bool:
    """Whether API ``version`` is ``other`` or newer (numerically: 1.9 < 1.41)."""
    return _key(version) >= _key(other)


def split_version(path: str) -> tuple[str, str]:
    """``(version, path without the prefix)``; InvalidArgument for a version this daemon does not speak."""
    m = _PREFIX.match(path)
    if m is None:
        return DEFAULT_VERSION, path
    version, rest = m["version"], m["rest"] or "/"
    if not at_least(version, MIN_VERSION):
        raise InvalidArgument(
            f"client version {version} is too old. Minimum supported API version is {MIN_VERSION}, "
            "please upgrade your client to a newer version"
        )
    if not at_least(MAX_VERSION, version):
        raise InvalidArgument(f"client version {version} is too new. Maximum supported API version is {MAX_VERSION}")
    return version, rest
