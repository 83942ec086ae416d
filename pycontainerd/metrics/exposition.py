"""Prometheus' text exposition format (version 0.0.4), written from families; no I/O."""

from __future__ import annotations

import math
from collections.abc import Iterable

from ._types import Family

__all__ = ["CONTENT_TYPE", "render"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n")


def _value(v: float) -> str:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    if v == int(v) and abs(v) < 1e15:
        return str(int(v))
    return repr(float(v))


def render(families: Iterable[Family]) -> bytes:
    """The exposition of ``families``; a family without samples still declares its help and type."""
    lines: list[str] = []
    for f in families:
        lines.append(f"# HELP {f.name} {_escape_help(f.help)}")
        lines.append(f"# TYPE {f.name} {f.kind}")
        for s in f.samples:
            if s.labels:
                inner = ",".join(f'{k}="{_escape_label(v)}"' for k, v in s.labels)
                lines.append(f"{s.name}{{{inner}}} {_value(s.value)}")
            else:
                lines.append(f"{s.name} {_value(s.value)}")
    return ("\n".join(lines) + "\n").encode() if lines else b""
