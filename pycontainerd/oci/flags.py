"""Parsers for the spec-related strings ``ctr run`` takes on its command line; no I/O.

* ``--mount type=bind,src=/srv,dst=/data,options=rbind:ro`` — one CSV
  record of ``key=value`` fields (a field holding a comma is double-quoted,
  as in ``"src=/a,b"``); the keys are ``type``, ``source``/``src``,
  ``destination``/``dst`` and ``options`` (colon-separated).
* ``--uidmap``/``--gidmap`` ``container-id:host-id:size``.

Every malformed string raises :class:`~pycontainerd.errors.InvalidArgument`
with a message naming the string and what is wrong with it.  We are stricter
than ctr where ctr passes nonsense on to the runtime: a mount needs an
absolute destination, a bind mount a source, a key may appear once.
"""

from __future__ import annotations

import re
from typing import Any, Final

from ..errors import InvalidArgument, quote
from .spec import IDMapping

__all__ = ["parse_id_mapping", "parse_mount_flag", "parse_uint32"]

_MOUNT_KEYS: Final = {
    "type": "type",
    "source": "source",
    "src": "source",
    "destination": "destination",
    "dst": "destination",
    "options": "options",
}
_UINT: Final = re.compile(r"[0-9]+")
_MAX_UINT32: Final = 0xFFFFFFFF


def _csv_fields(text: str) -> list[str]:
    """The fields of one CSV record with Go encoding/csv's strict rules; ValueError says what is wrong."""
    fields: list[str] = []
    i, n = 0, len(text)
    while True:
        if i < n and text[i] == '"':
            value: list[str] = []
            i += 1
            while True:
                end = text.find('"', i)
                if end < 0:
                    raise ValueError("a quoted field is not closed")
                value.append(text[i:end])
                i = end + 1
                if i < n and text[i] == '"':  # "" inside quotes is one quote
                    value.append('"')
                    i += 1
                    continue
                break
            if i < n and text[i] != ",":
                raise ValueError('unexpected text after a closing "')
            fields.append("".join(value))
        else:
            end = text.find(",", i)
            field = text[i:] if end < 0 else text[i:end]
            if '"' in field:
                raise ValueError('a " inside a field that does not start with one')
            fields.append(field)
            i = n if end < 0 else end
        if i >= n:
            return fields
        i += 1  # the comma


def parse_mount_flag(text: str) -> dict[str, Any]:
    """A spec mount from ctr's ``--mount`` syntax, e.g. ``type=bind,src=/srv,dst=/data,options=rbind:ro``."""

    def bad(reason: str) -> InvalidArgument:
        return InvalidArgument(f"invalid mount {quote(text)}: {reason}")

    if not text:
        raise bad("the specification is empty")
    if "\n" in text or "\r" in text or "\x00" in text:
        raise bad("it contains a line break or NUL")
    try:
        fields = _csv_fields(text)
    except ValueError as e:
        raise bad(str(e)) from None
    mount: dict[str, Any] = {}
    for field in fields:
        key, sep, value = field.partition("=")
        if not sep:
            raise bad(f"expected key=value, got {quote(field)}")
        name = _MOUNT_KEYS.get(key)
        if name is None:
            raise bad(f"unknown key {quote(key)} (known: type, source or src, destination or dst, options)")
        if name in mount:
            raise bad(f"{name} is given more than once")
        if name == "options":
            options = value.split(":")
            if "" in options:
                raise bad("empty option in options (they are separated by single colons)")
            mount[name] = options
        else:
            if not value:
                raise bad(f"{key} is empty")
            mount[name] = value
    destination = mount.get("destination")
    if destination is None:
        raise bad("destination (dst) is missing")
    if not destination.startswith("/"):
        raise bad(f"destination {quote(destination)} is not an absolute path")
    is_bind = mount.get("type") == "bind" or any(o in ("bind", "rbind") for o in mount.get("options", ()))
    if is_bind and "source" not in mount:
        raise bad("a bind mount needs a source (src)")
    return {k: mount[k] for k in ("destination", "type", "source", "options") if k in mount}


def parse_uint32(text: str, what: str) -> int:
    """A decimal number from 0 to 2**32-1; InvalidArgument naming ``what`` otherwise."""
    if not _UINT.fullmatch(text) or int(text) > _MAX_UINT32:
        raise InvalidArgument(f"{what} {quote(text)} is not a number from 0 to {_MAX_UINT32}")
    return int(text)


def parse_id_mapping(text: str) -> IDMapping:
    """A user-namespace range from ``container-id:host-id:size`` (ctr's ``--uidmap``/``--gidmap``)."""
    parts = text.split(":")
    if len(parts) != 3:
        raise InvalidArgument(f"invalid id mapping {quote(text)}: expected container-id:host-id:size")
    container_id = parse_uint32(parts[0], "id mapping container id")
    host_id = parse_uint32(parts[1], "id mapping host id")
    size = parse_uint32(parts[2], "id mapping size")
    if size == 0:
        raise InvalidArgument(f"invalid id mapping {quote(text)}: the size is 0")
    if container_id + size - 1 > _MAX_UINT32 or host_id + size - 1 > _MAX_UINT32:
        raise InvalidArgument(f"invalid id mapping {quote(text)}: the range runs past {_MAX_UINT32}")
    return IDMapping(container_id, host_id, size)
