"""A TOML writer for configuration documents: tables of strings, numbers, booleans and lists of them.

The standard library reads TOML but cannot write it; the daemon's config
is simple enough (no dates, no arrays of tables) that a small writer which
does no I/O covers it.  ``tomllib.loads(dumps(doc)) == doc`` for every
document it accepts; anything else is refused with TypeError.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

__all__ = ["dumps"]

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def _key(k: str) -> str:
    return k if _BARE_KEY.fullmatch(k) else _string(k)


def _string(s: str) -> str:
    out = []
    for ch in s:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _value(v: object, where: str) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return _string(v)
    if isinstance(v, Sequence):
        return "[" + ", ".join(_value(x, where) for x in v) + "]"
    raise TypeError(f"{where}: cannot write a {type(v).__name__} as TOML")


def _tables(doc: Mapping[str, Any], path: tuple[str, ...]) -> Iterator[str]:
    scalars = [(k, v) for k, v in doc.items() if not isinstance(v, Mapping)]
    tables = [(k, v) for k, v in doc.items() if isinstance(v, Mapping)]
    # A table is written with a header when it holds values, or when nothing below it would name it.
    if path and (scalars or not tables):
        yield "[" + ".".join(_key(p) for p in path) + "]"
        if not scalars:
            yield ""
    for k, v in scalars:
        if not isinstance(k, str):
            raise TypeError(f"{'.'.join(path)}: keys must be strings")
        yield f"{_key(k)} = {_value(v, '.'.join((*path, k)))}"
    if scalars:
        yield ""
    for k, v in tables:
        yield from _tables(v, (*path, k))


def dumps(doc: Mapping[str, Any]) -> str:
    """``doc`` as TOML text: its plain values first, then each table (nested ones under dotted headers)."""
    lines = list(_tables(doc, ()))
    while lines and lines[-1] == "":
        lines.pop()
    return "\n".join(lines) + "\n"
