"""Reaching into a spec dict: the sections options change, created when absent, checked when present.

A spec may have come from a client as JSON, so a section that exists but has
the wrong JSON type is an InvalidArgument, not a crash.  A new ``process``
holds what Go's encoding of an empty ``specs.Process`` holds (a user with
uid and gid 0, an empty cwd), so the JSON we produce matches containerd's.
"""

from __future__ import annotations

from typing import Any

from ..errors import InvalidArgument, quote
from .spec import Spec

__all__ = ["drop", "linux", "obj", "process", "resources", "seq", "user"]


def _name(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def obj(parent: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    """``parent[key]`` as an object, created empty when absent."""
    value = parent.get(key)
    if value is None:
        value = parent[key] = {}
    elif not isinstance(value, dict):
        raise InvalidArgument(f"spec {_name(where, key)} is not an object")
    return value


def seq(parent: dict[str, Any], key: str, where: str) -> list[Any]:
    """``parent[key]`` as a list, created empty when absent."""
    value = parent.get(key)
    if value is None:
        value = parent[key] = []
    elif not isinstance(value, list):
        raise InvalidArgument(f"spec {_name(where, key)} is not a list")
    return value


def drop(parent: dict[str, Any], key: str, *, when_empty: bool = True) -> None:
    """Remove ``key`` (only if it is empty, with ``when_empty``): Go leaves empty fields out of the JSON."""
    if key in parent and (not when_empty or not parent[key]):
        del parent[key]


def process(spec: Spec) -> dict[str, Any]:
    if spec.get("process") is None:
        spec["process"] = {"user": {"uid": 0, "gid": 0}, "cwd": ""}
    return obj(spec, "process", "")


def user(spec: Spec) -> dict[str, Any]:
    u = obj(process(spec), "user", "process")
    for key in ("uid", "gid"):
        if not isinstance(u.setdefault(key, 0), int):
            raise InvalidArgument(f"spec process.user.{key} is not a number: {quote(str(u[key]))}")
    return u


def linux(spec: Spec) -> dict[str, Any]:
    return obj(spec, "linux", "")


def resources(spec: Spec) -> dict[str, Any]:
    return obj(linux(spec), "resources", "linux")
