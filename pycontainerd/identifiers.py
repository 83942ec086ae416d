"""Validation of names that clients choose: namespaces, lease ids, refs, labels.

These strings end up in file names, SQL rows and log lines, so they are
checked once, here, with containerd's rules.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from .errors import InvalidArgument, quote

_IDENTIFIER = re.compile(r"^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$")
MAX_IDENTIFIER = 76
MAX_LABEL = 4096


def validate(kind: str, value: str) -> str:
    """An identifier (namespace, lease id, container id): containerd's alphabet, at most 76 chars."""
    if not value:
        raise InvalidArgument("identifier must not be empty")
    if len(value) > MAX_IDENTIFIER:
        raise InvalidArgument(f"identifier {quote(value[:20])}... greater than maximum length ({MAX_IDENTIFIER})")
    if not _IDENTIFIER.match(value):
        raise InvalidArgument(f"identifier {quote(value)} must match ^[A-Za-z0-9]+(?:[._-](?:[A-Za-z0-9]+))*$")
    return value


def validate_labels(labels: Mapping[str, str]) -> dict[str, str]:
    """Labels: non-empty keys, key plus value at most 4096 bytes."""
    out: dict[str, str] = {}
    for k, v in labels.items():
        if not k:
            raise InvalidArgument("label key must not be empty")
        if len(k.encode()) + len(v.encode()) > MAX_LABEL:
            raise InvalidArgument(
                f"label key and value length greater than maximum size ({MAX_LABEL} bytes), key: {k[:64]}"
            )
        out[k] = v
    return out
