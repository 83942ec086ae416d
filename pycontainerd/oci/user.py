"""The process's user and groups, resolved through the image's /etc/passwd and /etc/group.

The rules are containerd 1.6's (``WithUser``, ``WithUserID``, ``WithUsername``,
``WithAdditionalGIDs``, ``WithAppendAdditionalGroups``):

* ``uid`` — the passwd entry with that uid gives the gid; with no entry (or
  no /etc/passwd) the gid is 0 and that is not an error;
* ``name`` — the passwd entry with that name gives uid and gid; no such
  entry is :class:`~pycontainerd.errors.NotFound`;
* ``uid:gid`` — taken as is, no file read;
* ``name:gid``, ``uid:group``, ``name:group`` — the name gives only the uid
  (not the gid), the group name the gid, each looked up by name;
* the primary gid always heads ``additionalGids`` unless already in it.

The files are read from the rootfs the options are given (``rootfs=``) or,
failing that, from the spec's root path when it is absolute; the rootfs is
treated as hostile (see :func:`read_passwd`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, Final

from ..errors import InvalidArgument, NotFound, quote
from . import _sections as sec
from ._rootfs import read_file_in_root
from .passwd import GroupEntry, PasswdEntry, parse_group, parse_id, parse_passwd
from .spec import Spec, SpecOpt

__all__ = [
    "MAX_DB_SIZE",
    "Rootfs",
    "read_group",
    "read_passwd",
    "with_additional_gids",
    "with_append_additional_groups",
    "with_uid_gid",
    "with_user",
    "with_user_id",
    "with_username",
]

Rootfs = str | os.PathLike[str]

MAX_DB_SIZE: Final = 4 << 20
"""The largest /etc/passwd or /etc/group read from an image; a larger one is refused."""


def read_passwd(rootfs: Rootfs) -> list[PasswdEntry] | None:
    """The entries of ``rootfs``'s /etc/passwd; None when it has none.

    Symlinks are resolved inside the rootfs (``..`` stops at its root,
    absolute targets start from it), so a link to a host path reads the
    rootfs's file of that name, if any.  Anything but a regular file of at
    most :data:`MAX_DB_SIZE` bytes is InvalidArgument.
    """
    data = read_file_in_root(rootfs, "/etc/passwd", limit=MAX_DB_SIZE)
    return None if data is None else parse_passwd(data)


def read_group(rootfs: Rootfs) -> list[GroupEntry] | None:
    """The entries of ``rootfs``'s /etc/group; None when it has none (same rules as :func:`read_passwd`)."""
    data = read_file_in_root(rootfs, "/etc/group", limit=MAX_DB_SIZE)
    return None if data is None else parse_group(data)


def _rootfs(spec: Spec, rootfs: Rootfs | None) -> Rootfs:
    if rootfs is not None:
        return rootfs
    root = spec.get("root")
    path = root.get("path") if isinstance(root, dict) else None
    if isinstance(path, str) and path.startswith("/"):
        return path
    raise InvalidArgument("resolving the user needs the container's rootfs: pass rootfs= or set an absolute root path")


def _ensure_primary_gid(u: dict[str, Any]) -> None:
    gids = sec.seq(u, "additionalGids", "process.user")
    if u["gid"] not in gids:
        gids.insert(0, u["gid"])


def _set_user(apply: Callable[[Spec, dict[str, Any]], None]) -> SpecOpt:
    """An option that resets additionalGids, lets ``apply`` set the user, then puts the primary gid first."""

    def opt(spec: Spec) -> None:
        u = sec.user(spec)
        u.pop("additionalGids", None)
        apply(spec, u)
        _ensure_primary_gid(u)

    return opt


def _id(value: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or parse_id(str(value)) is None:
        raise InvalidArgument(f"{what} must be a number from 0 to 4294967294, got {value!r}")
    return value


def with_uid_gid(uid: int, gid: int) -> SpecOpt:
    """Exactly this uid and gid, no file read."""
    _id(uid, "uid")
    _id(gid, "gid")

    def apply(spec: Spec, u: dict[str, Any]) -> None:
        u["uid"], u["gid"] = uid, gid

    return _set_user(apply)


def with_user_id(uid: int, *, rootfs: Rootfs | None = None) -> SpecOpt:
    """This uid, with the gid of its passwd entry; gid 0 when the image has no entry for it."""
    _id(uid, "uid")

    def apply(spec: Spec, u: dict[str, Any]) -> None:
        entries = read_passwd(_rootfs(spec, rootfs)) or []
        found = next((e for e in entries if e.uid == uid), None)
        u["uid"], u["gid"] = uid, (found.gid if found else 0)

    return _set_user(apply)


def _user_named(spec: Spec, rootfs: Rootfs | None, name: str) -> PasswdEntry:
    entries = read_passwd(_rootfs(spec, rootfs))
    if entries is None:
        raise NotFound(f"user {quote(name)}: the image has no /etc/passwd")
    for e in entries:
        if e.name == name:
            return e
    raise NotFound(f"no user {quote(name)} in the image's /etc/passwd")


def _gid_named(spec: Spec, rootfs: Rootfs | None, name: str) -> int:
    entries = read_group(_rootfs(spec, rootfs))
    if entries is None:
        raise NotFound(f"group {quote(name)}: the image has no /etc/group")
    for e in entries:
        if e.name == name:
            return e.gid
    raise NotFound(f"no group {quote(name)} in the image's /etc/group")


def with_username(name: str, *, rootfs: Rootfs | None = None) -> SpecOpt:
    """The uid and gid of ``name``'s passwd entry; NotFound when there is none."""

    def apply(spec: Spec, u: dict[str, Any]) -> None:
        found = _user_named(spec, rootfs, name)
        u["uid"], u["gid"] = found.uid, found.gid

    return _set_user(apply)


def with_user(user: str, *, rootfs: Rootfs | None = None) -> SpecOpt:
    """The user of an image config or ``--user``: ``uid``, ``name``, ``uid:gid``, ``name:group`` and the mixed forms."""
    parts = user.split(":")
    if len(parts) > 2 or any(not p for p in parts):
        raise InvalidArgument(f"invalid user {quote(user)}: expected user, uid, user:group or uid:gid")
    if len(parts) == 1:
        uid = parse_id(user)
        return with_user_id(uid, rootfs=rootfs) if uid is not None else with_username(user, rootfs=rootfs)
    uid, gid = parse_id(parts[0]), parse_id(parts[1])

    def apply(spec: Spec, u: dict[str, Any]) -> None:
        new_uid = uid if uid is not None else _user_named(spec, rootfs, parts[0]).uid
        new_gid = gid if gid is not None else _gid_named(spec, rootfs, parts[1])
        u["uid"], u["gid"] = new_uid, new_gid

    return _set_user(apply)


def with_additional_gids(user: str, *, rootfs: Rootfs | None = None) -> SpecOpt:
    """The supplementary groups /etc/group lists ``user`` (a name, or a uid looked up in /etc/passwd) in.

    A group named like the user is not counted (it is the user's own); a uid
    with no passwd entry, or an image without /etc/group, gets none.
    """

    def apply(spec: Spec, u: dict[str, Any]) -> None:
        root = _rootfs(spec, rootfs)
        name: str | None = user
        uid = parse_id(user)
        if uid is not None:
            found = next((e for e in read_passwd(root) or [] if e.uid == uid), None)
            name = found.name if found else None
        if name is None:
            return
        groups = read_group(root) or []
        u["additionalGids"] = [g.gid for g in groups if g.name != name and name in g.members]

    return _set_user(apply)


def with_append_additional_groups(*groups: str, rootfs: Rootfs | None = None) -> SpecOpt:
    """Add supplementary groups, each a gid or a group name from /etc/group (NotFound for an unknown name)."""

    def opt(spec: Spec) -> None:
        u = sec.user(spec)
        gids = sec.seq(u, "additionalGids", "process.user")
        entries: list[GroupEntry] | None = None
        for group in groups:
            gid = parse_id(group)
            if gid is None:
                if entries is None:
                    entries = read_group(_rootfs(spec, rootfs)) or []
                gid = next((g.gid for g in entries if g.name == group), None)
                if gid is None:
                    raise NotFound(f"no group {quote(group)} in the image's /etc/group")
            gids.append(gid)
        _ensure_primary_gid(u)

    return opt
