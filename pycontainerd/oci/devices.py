"""Device nodes and the device cgroup: which devices a container sees and may open.

The default spec denies every device (``{"allow": false, "access": "rwm"}``);
runtimes then allow the few every container needs.  ``ctr run`` also adds
containerd's list of those (:func:`with_default_unix_devices`), and a
privileged container allows all of them and gets the host's nodes.
"""

from __future__ import annotations

import os
import stat
from typing import Any, Final

from ..errors import InvalidArgument, NotFound, quote
from . import _sections as sec
from .spec import Spec, SpecOpt

__all__ = [
    "device_from_path",
    "host_devices",
    "with_all_devices_allowed",
    "with_default_unix_devices",
    "with_device",
    "with_host_devices",
    "with_parent_cgroup_devices",
]

# (major, minor or None for all minors) of the character devices every container may use
_DEFAULT_ALLOWED: Final = (
    (1, 3),  # /dev/null
    (1, 8),  # /dev/random
    (1, 7),  # /dev/full
    (5, 0),  # /dev/tty
    (1, 5),  # /dev/zero
    (1, 9),  # /dev/urandom
    (5, 1),  # /dev/console
    (136, None),  # /dev/pts/*
    (5, 2),  # /dev/ptmx
)

# directories under /dev that hold no devices of the host's own (or are mounted separately)
_SKIPPED_DIRS: Final = frozenset({"pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"})


def _devices(spec: Spec) -> list[Any]:
    return sec.seq(sec.resources(spec), "devices", "linux.resources")


def with_all_devices_allowed() -> SpecOpt:
    """Read, write and mknod on every device node."""

    def apply(spec: Spec) -> None:
        sec.resources(spec)["devices"] = [{"allow": True, "access": "rwm"}]

    return apply


def with_parent_cgroup_devices() -> SpecOpt:
    """No device rules of the container's own: it inherits its parent cgroup's."""

    def apply(spec: Spec) -> None:
        sec.resources(spec).pop("devices", None)

    return apply


def with_default_unix_devices() -> SpecOpt:
    """Allow /dev/null, zero, full, random, urandom, tty, console, ptmx and the ptys, as ``ctr run`` does."""

    def apply(spec: Spec) -> None:
        rules = _devices(spec)
        for major, minor in _DEFAULT_ALLOWED:
            rule: dict[str, Any] = {"allow": True, "type": "c", "major": major}
            if minor is not None:
                rule["minor"] = minor
            rule["access"] = "rwm"
            rules.append(rule)

    return apply


def device_from_path(path: str) -> dict[str, Any] | None:
    """The spec device for the node at ``path`` (not followed if a symlink); None if it is no block or char device."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise NotFound(f"device {quote(path)} does not exist") from None
    if stat.S_ISBLK(st.st_mode):
        kind = "b"
    elif stat.S_ISCHR(st.st_mode):
        kind = "c"
    else:
        return None
    return {
        "path": path,
        "type": kind,
        "major": os.major(st.st_rdev),
        "minor": os.minor(st.st_rdev),
        "fileMode": stat.S_IMODE(st.st_mode),
        "uid": st.st_uid,
        "gid": st.st_gid,
    }


def host_devices(root: str = "/dev") -> list[dict[str, Any]]:
    """Every block and character device under ``root`` but /dev/console and the pts, shm, mqueue... directories."""
    out: list[dict[str, Any]] = []
    with os.scandir(root) as it:
        entries = sorted(it, key=lambda e: e.name)
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            if entry.name not in _SKIPPED_DIRS:
                out.extend(host_devices(entry.path))
            continue
        if entry.name == "console":
            continue
        try:
            dev = device_from_path(entry.path)
        except NotFound:
            continue  # gone since the listing
        if dev is not None:
            out.append(dev)
    return out


def with_host_devices() -> SpecOpt:
    """The host's device nodes in the container (looked up when the option is applied)."""

    def apply(spec: Spec) -> None:
        sec.seq(sec.linux(spec), "devices", "linux").extend(host_devices())

    return apply


def with_device(path: str, container_path: str = "", permissions: str = "rwm") -> SpecOpt:
    """The host device at ``path`` in the container (at ``container_path`` if given) and a cgroup rule allowing it."""
    if not permissions or set(permissions) - set("rwm"):
        raise InvalidArgument(f"device permissions {quote(permissions)} must be made of r, w and m")

    def apply(spec: Spec) -> None:
        dev = device_from_path(path)
        if dev is None:
            raise InvalidArgument(f"{quote(path)} is not a device node")
        if container_path:
            dev["path"] = container_path
        sec.seq(sec.linux(spec), "devices", "linux").append(dev)
        rule = {"allow": True, "type": dev["type"], "major": dev["major"], "minor": dev["minor"], "access": permissions}
        _devices(spec).append(rule)

    return apply
