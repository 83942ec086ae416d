"""Small conversions shared by the metadata stores."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from datetime import UTC, datetime

from ..identifiers import validate_labels


def now_ns() -> int:
    return time.time_ns()


def to_datetime(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, tz=UTC)


def dump_labels(labels: Mapping[str, str]) -> str:
    """Validated labels as stored JSON; an empty value means "no such label", as in containerd."""
    return json.dumps({k: v for k, v in validate_labels(labels).items() if v}, sort_keys=True, separators=(",", ":"))


def load_labels(text: str) -> dict[str, str]:
    if text == "{}":  # most records: skip the parser
        return {}
    value = json.loads(text)
    return value if isinstance(value, dict) else {}


def apply_label_paths(
    current: Mapping[str, str], new: Mapping[str, str], fieldpaths: list[str], prefix: str = "labels"
) -> dict[str, str] | None:
    """Apply ``labels`` / ``labels.<key>`` field paths; None if a path is not about labels."""
    out = dict(current)
    for path in fieldpaths:
        if path == prefix:
            out = dict(new)
        elif path.startswith(prefix + "."):
            key = path[len(prefix) + 1 :]
            if new.get(key):
                out[key] = new[key]
            else:
                out.pop(key, None)
        else:
            return None
    return {k: v for k, v in out.items() if v}
