"""``WWW-Authenticate`` challenges, parsed without I/O (RFC 7235: scheme, then key=value or quoted pairs)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["Challenge", "parse_challenges"]

_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_SCHEME = re.compile(rf"\s*({_TOKEN})\s*")
_PARAM = re.compile(rf'\s*({_TOKEN})\s*=\s*(?:"((?:[^"\\]|\\.)*)"|({_TOKEN}))\s*')


@dataclass(frozen=True)
class Challenge:
    scheme: str  # lower case: "bearer", "basic"
    params: Mapping[str, str] = field(default_factory=dict)  # keys lower case


def parse_challenges(header: str) -> list[Challenge]:
    """Every challenge in one header value; malformed tails are ignored, never raised."""
    out: list[Challenge] = []
    pos = 0
    while pos < len(header):
        m = _SCHEME.match(header, pos)
        if m is None:
            break
        scheme = m.group(1).lower()
        pos = m.end()
        params: dict[str, str] = {}
        while pos < len(header):
            p = _PARAM.match(header, pos)
            if p is None:
                break
            value = p.group(2) if p.group(2) is not None else p.group(3)
            params[p.group(1).lower()] = re.sub(r"\\(.)", r"\1", value)
            pos = p.end()
            if pos < len(header) and header[pos] == ",":
                pos += 1
        out.append(Challenge(scheme, params))
        while pos < len(header) and header[pos] in ", ":
            pos += 1
    return out
