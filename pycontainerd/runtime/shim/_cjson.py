"""JSON through the standard library's C accelerator alone.

The ``json`` package imports ``re`` — and with it ``enum``, ``functools``
and ``collections``, about a megabyte in every shim — for patterns that
only its pure-Python fallbacks use.  What runs when ``json`` has its C
accelerator is ``_json``'s scanner and encoder; this module builds the same
two and nothing else.  ``dumps(v)`` is ``json.dumps(v, separators=(",",
":"), allow_nan=False)``; ``loads(s)`` is ``json.loads(s)`` except that
NaN and the infinities are refused (as they are not JSON) and bytes must
be UTF-8.  Errors are ``ValueError`` (and ``TypeError`` for a value JSON
cannot hold), as ``json``'s are.
"""

from __future__ import annotations

import _json

TYPE_CHECKING = False  # typing costs the shim milliseconds at start-up; only the checker needs it
if TYPE_CHECKING:
    from typing import Any

__all__ = ["dumps", "loads"]

_WHITESPACE = " \t\n\r"


def _reject_constant(name: str) -> Any:
    raise ValueError(f"JSON constant {name} is not allowed")


def _not_serializable(value: object) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


class _Options:
    """The attributes ``_json.make_scanner`` reads from its ``json.JSONDecoder``."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = staticmethod(_reject_constant)


_scan = _json.make_scanner(_Options())  # type: ignore[arg-type]
_encode = _json.make_encoder(
    None, _not_serializable, _json.encode_basestring_ascii, None, ":", ",", False, False, False
)


def loads(data: str | bytes) -> Any:
    """The value of one JSON text, surrounded by nothing but whitespace."""
    text = data.decode() if isinstance(data, bytes) else data
    start = len(text) - len(text.lstrip(_WHITESPACE))
    try:
        value, end = _scan(text, start)
    except StopIteration as e:
        raise ValueError(f"Expecting value: char {e.value}") from None
    if end != len(text.rstrip(_WHITESPACE)):
        raise ValueError(f"Extra data: char {end}")
    return value


def dumps(value: object) -> str:
    """Compact JSON, ASCII only (as ``json.dumps`` with ``ensure_ascii``)."""
    return "".join(_encode(value, 0))
