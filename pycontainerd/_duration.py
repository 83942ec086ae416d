"""Go's duration syntax (``"1m30s"``, ``"500ms"``), which containerd's config files use.

Kept outside :mod:`pycontainerd.server` so that client-side code (the
registry's hosts.toml ``dial_timeout``) can read durations without
importing the daemon.
"""

from __future__ import annotations

import re

__all__ = ["parse_duration"]

_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Seconds in a Go duration, as Go's ``time.ParseDuration`` reads it; ValueError when it is not one.

    A sign may lead, ``"0"`` needs no unit, every other number does, and no
    whitespace is allowed anywhere.
    """
    s = text
    sign = 1.0
    if s[:1] in ("+", "-"):
        sign = -1.0 if s[0] == "-" else 1.0
        s = s[1:]
    if s == "0":
        return 0.0
    pos, total = 0, 0.0
    while pos < len(s):
        m = _PART.match(s, pos)
        if m is None:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if not s or pos != len(s):
        raise ValueError(f"invalid duration {text!r}")
    return sign * total
