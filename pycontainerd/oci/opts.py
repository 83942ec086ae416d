"""Spec options that need nothing but the spec: process, root, mounts, namespaces, resources, privileges.

Each ``with_*`` function checks its arguments when called and returns a
:data:`~pycontainerd.oci.spec.SpecOpt` that changes a spec in place, with the
semantics of containerd 1.6's option of the same name (``WithProcessArgs``,
``WithEnv``, ``WithMemoryLimit``...).  Bad arguments raise
:class:`~pycontainerd.errors.InvalidArgument`.
"""

from __future__ import annotations

import math
import posixpath
from collections.abc import Iterable, Mapping
from typing import Any, Final

from ..errors import InvalidArgument, quote
from . import _sections as sec
from .caps import current_capabilities
from .devices import with_all_devices_allowed
from .flags import parse_mount_flag
from .spec import DEFAULT_PATH_ENV, NAMESPACE_TYPES, IDMapping, Spec, SpecOpt

__all__ = [
    "CPU_PERIOD",
    "replace_or_append_env",
    "with_added_capabilities",
    "with_ambient_capabilities",
    "with_annotations",
    "with_capabilities",
    "with_cgroup",
    "with_cpu_cfs",
    "with_cpu_shares",
    "with_cpus",
    "with_cpuset_cpus",
    "with_cpuset_mems",
    "with_default_path_env",
    "with_dropped_capabilities",
    "with_env",
    "with_host_namespace",
    "with_hostname",
    "with_linux_namespace",
    "with_masked_paths",
    "with_memory_limit",
    "with_memory_swap",
    "with_mounts",
    "with_netns_path",
    "with_new_privileges",
    "with_no_new_privileges",
    "with_pids_limit",
    "with_privileged",
    "with_process_args",
    "with_process_cwd",
    "with_readonly_paths",
    "with_readonly_rootfs",
    "with_rootfs",
    "with_tty",
    "with_user_namespace",
    "without_mounts",
]

CPU_PERIOD: Final = 100_000
"""The CFS period (µs) ``with_cpus`` uses, as ``ctr run --cpus``."""

_INT64_MAX: Final = 2**63 - 1
_UINT32_MAX: Final = 2**32 - 1
_MIN_CPU_QUOTA: Final = 1000  # µs; the kernel refuses a smaller CFS quota
_HOST_NAME_MAX: Final = 64
_CAP_SETS: Final = ("bounding", "effective", "permitted")


def _int(value: object, what: str, lo: int, hi: int = _INT64_MAX) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise InvalidArgument(f"{what} must be a whole number from {lo} to {hi}, got {value!r}")
    return value


def _strings(values: Iterable[object], what: str) -> list[str]:
    out: list[str] = []
    for v in values:
        if not isinstance(v, str):
            raise InvalidArgument(f"{what} must be strings, got {v!r}")
        out.append(v)
    return out


# -- process --------------------------------------------------------------------------------------


def replace_or_append_env(defaults: Iterable[str], overrides: Iterable[str]) -> list[str]:
    """``defaults`` with ``overrides`` applied: ``K=V`` replaces K's entry in place or is appended, a bare ``K`` removes K."""
    out: list[str | None] = list(defaults)
    index = {entry.partition("=")[0]: i for i, entry in enumerate(out) if entry is not None}
    for value in overrides:
        key, sep, _ = value.partition("=")
        if not sep:
            if key in index:
                out[index[key]] = None
            continue
        if key in index:
            out[index[key]] = value
        else:
            index[key] = len(out)
            out.append(value)
    return [e for e in out if e]


def with_process_args(*args: str) -> SpecOpt:
    """The process's argv, replacing what was there."""
    argv = _strings(args, "process args")

    def apply(spec: Spec) -> None:
        proc = sec.process(spec)
        proc["args"] = list(argv)
        sec.drop(proc, "args")
        proc.pop("commandLine", None)

    return apply


def with_process_cwd(cwd: str) -> SpecOpt:
    if not isinstance(cwd, str) or not cwd.startswith("/"):
        raise InvalidArgument(f"the working directory must be an absolute path, got {cwd!r}")

    def apply(spec: Spec) -> None:
        sec.process(spec)["cwd"] = cwd

    return apply


def with_env(env: Iterable[str]) -> SpecOpt:
    """Set ``K=V`` variables (replacing the same keys) and unset bare ``K`` ones; nothing to do for an empty list."""
    entries = _strings(env, "environment entries")

    def apply(spec: Spec) -> None:
        if not entries:
            return
        proc = sec.process(spec)
        proc["env"] = replace_or_append_env(_strings(sec.seq(proc, "env", "process"), "process.env"), entries)
        sec.drop(proc, "env")

    return apply


def with_default_path_env() -> SpecOpt:
    """Set PATH to containerd's default one."""
    return with_env([DEFAULT_PATH_ENV])


def with_tty() -> SpecOpt:
    """A terminal for the process, and ``TERM=xterm`` appended to its environment as containerd does."""

    def apply(spec: Spec) -> None:
        proc = sec.process(spec)
        proc["terminal"] = True
        if spec.get("linux") is not None:
            sec.seq(proc, "env", "process").append("TERM=xterm")

    return apply


def with_hostname(name: str) -> SpecOpt:
    if not isinstance(name, str) or len(name.encode(errors="replace")) > _HOST_NAME_MAX or "\x00" in name:
        raise InvalidArgument(f"hostname {name!r} is not a string of at most {_HOST_NAME_MAX} bytes")

    def apply(spec: Spec) -> None:
        spec["hostname"] = name
        sec.drop(spec, "hostname")

    return apply


def with_new_privileges() -> SpecOpt:
    """Let the process gain privileges (setuid binaries, file capabilities): clears noNewPrivileges."""

    def apply(spec: Spec) -> None:
        sec.process(spec).pop("noNewPrivileges", None)

    return apply


def with_no_new_privileges() -> SpecOpt:
    def apply(spec: Spec) -> None:
        sec.process(spec)["noNewPrivileges"] = True

    return apply


def _cap_names(caps: Iterable[str]) -> list[str]:
    names = _strings(caps, "capabilities")
    for name in names:
        if not name.startswith("CAP_"):
            raise InvalidArgument(f"capability {quote(name)} must be written with its CAP_ prefix")
    return names


def _capabilities(spec: Spec) -> dict[str, Any]:
    return sec.obj(sec.process(spec), "capabilities", "process")


def with_capabilities(caps: Iterable[str]) -> SpecOpt:
    """Exactly ``caps`` as the bounding, effective and permitted sets."""
    names = _cap_names(caps)

    def apply(spec: Spec) -> None:
        c = _capabilities(spec)
        for key in _CAP_SETS:
            c[key] = list(names)
            sec.drop(c, key)

    return apply


def with_added_capabilities(caps: Iterable[str]) -> SpecOpt:
    names = _cap_names(caps)

    def apply(spec: Spec) -> None:
        c = _capabilities(spec)
        for key in _CAP_SETS:
            current = sec.seq(c, key, "process.capabilities")
            current.extend(n for n in dict.fromkeys(names) if n not in current)
            sec.drop(c, key)

    return apply


def with_dropped_capabilities(caps: Iterable[str]) -> SpecOpt:
    names = set(_cap_names(caps))

    def apply(spec: Spec) -> None:
        c = _capabilities(spec)
        for key in _CAP_SETS:
            c[key] = [n for n in sec.seq(c, key, "process.capabilities") if n not in names]
            sec.drop(c, key)

    return apply


def with_ambient_capabilities(caps: Iterable[str]) -> SpecOpt:
    """``caps`` as the inheritable and ambient sets (for a non-root process that should keep them)."""
    names = _cap_names(caps)

    def apply(spec: Spec) -> None:
        c = _capabilities(spec)
        for key in ("inheritable", "ambient"):
            c[key] = list(names)
            sec.drop(c, key)

    return apply


# -- root and mounts ------------------------------------------------------------------------------


def with_rootfs(path: str) -> SpecOpt:
    """The root filesystem's path: absolute, or relative to the bundle (the default is ``rootfs``)."""
    if not isinstance(path, str) or not path:
        raise InvalidArgument("the rootfs path must not be empty")

    def apply(spec: Spec) -> None:
        sec.obj(spec, "root", "")["path"] = path

    return apply


def with_readonly_rootfs() -> SpecOpt:
    def apply(spec: Spec) -> None:
        root = sec.obj(spec, "root", "")
        root.setdefault("path", "")
        root["readonly"] = True

    return apply


def _mount(m: Mapping[str, Any] | str) -> dict[str, Any]:
    if isinstance(m, str):
        return parse_mount_flag(m)
    dst = m.get("destination")
    if not isinstance(dst, str) or not dst:
        raise InvalidArgument(f"mount {dict(m)!r} has no destination")
    out: dict[str, Any] = {"destination": dst}
    for key in ("type", "source"):
        value = m.get(key)
        if value:
            if not isinstance(value, str):
                raise InvalidArgument(f"mount {dst}: {key} must be a string")
            out[key] = value
    options = _strings(m.get("options") or (), f"mount {dst} options")
    if options:
        out["options"] = options
    return out


def with_mounts(mounts: Iterable[Mapping[str, Any] | str]) -> SpecOpt:
    """Append mounts, given as spec mounts (dicts) or in ctr's ``--mount`` syntax (see :func:`parse_mount_flag`)."""
    parsed = [_mount(m) for m in mounts]

    def apply(spec: Spec) -> None:
        sec.seq(spec, "mounts", "").extend(
            dict(m, options=list(m["options"])) if "options" in m else dict(m) for m in parsed
        )
        sec.drop(spec, "mounts")

    return apply


def without_mounts(*destinations: str) -> SpecOpt:
    """Remove the mounts on ``destinations``; both sides are compared cleaned (``/run/`` is ``/run``)."""
    wanted = {posixpath.normpath(d) for d in _strings(destinations, "mount destinations")}

    def apply(spec: Spec) -> None:
        mounts = sec.seq(spec, "mounts", "")
        mounts[:] = [
            m
            for m in mounts
            if not (isinstance(m, dict) and posixpath.normpath(str(m.get("destination", ""))) in wanted)
        ]
        sec.drop(spec, "mounts")

    return apply


# -- namespaces -----------------------------------------------------------------------------------


def _ns_type(ns: str) -> str:
    if ns not in NAMESPACE_TYPES:
        raise InvalidArgument(f"unknown Linux namespace type {quote(ns)} (known: {', '.join(sorted(NAMESPACE_TYPES))})")
    return ns


def _namespaces(spec: Spec) -> list[Any]:
    return sec.seq(sec.linux(spec), "namespaces", "linux")


def with_host_namespace(ns: str) -> SpecOpt:
    """Share the host's namespace of type ``ns`` (e.g. ``network``): the container gets none of its own."""
    kind = _ns_type(ns)

    def apply(spec: Spec) -> None:
        linux = sec.linux(spec)
        _namespaces(spec)[:] = [n for n in _namespaces(spec) if not (isinstance(n, dict) and n.get("type") == kind)]
        sec.drop(linux, "namespaces")

    return apply


def with_linux_namespace(ns: str, path: str = "") -> SpecOpt:
    """A namespace of type ``ns``, joining the one at ``path`` when given; replaces one of the same type."""
    kind = _ns_type(ns)
    if path and not path.startswith("/"):
        raise InvalidArgument(f"namespace path {quote(path)} is not absolute")
    entry = {"type": kind, "path": path} if path else {"type": kind}

    def apply(spec: Spec) -> None:
        namespaces = _namespaces(spec)
        for i, n in enumerate(namespaces):
            if isinstance(n, dict) and n.get("type") == kind:
                namespaces[i] = dict(entry)
                return
        namespaces.append(dict(entry))

    return apply


def with_netns_path(path: str) -> SpecOpt:
    """Join the network namespace at ``path`` (a CNI-made netns, ``/proc/<pid>/ns/net``...)."""
    if not path:
        raise InvalidArgument("the network namespace path must not be empty")
    return with_linux_namespace("network", path)


def _id_mapping(m: IDMapping) -> dict[str, int]:
    mapping = IDMapping(*m)
    for value in mapping:
        _int(value, "id mapping fields", 0, _UINT32_MAX)
    if mapping.size == 0 or max(mapping.container_id, mapping.host_id) + mapping.size - 1 > _UINT32_MAX:
        raise InvalidArgument(f"id mapping {mapping} is empty or runs past {_UINT32_MAX}")
    return mapping.to_spec()


def with_user_namespace(uid_maps: Iterable[IDMapping], gid_maps: Iterable[IDMapping]) -> SpecOpt:
    """A user namespace with these id ranges added to its maps (call again to add more)."""
    uids, gids = [_id_mapping(m) for m in uid_maps], [_id_mapping(m) for m in gid_maps]

    def apply(spec: Spec) -> None:
        linux = sec.linux(spec)
        namespaces = _namespaces(spec)
        if not any(isinstance(n, dict) and n.get("type") == "user" for n in namespaces):
            namespaces.append({"type": "user"})
        sec.seq(linux, "uidMappings", "linux").extend(dict(m) for m in uids)
        sec.seq(linux, "gidMappings", "linux").extend(dict(m) for m in gids)
        sec.drop(linux, "uidMappings")
        sec.drop(linux, "gidMappings")

    return apply


# -- cgroup and resources -------------------------------------------------------------------------


def with_cgroup(path: str) -> SpecOpt:
    """The container's cgroup path (``""`` leaves it to the runtime)."""

    def apply(spec: Spec) -> None:
        linux = sec.linux(spec)
        linux["cgroupsPath"] = path
        sec.drop(linux, "cgroupsPath")

    return apply


def _set(section: str, key: str, value: object) -> SpecOpt:
    def apply(spec: Spec) -> None:
        sec.obj(sec.resources(spec), section, "linux.resources")[key] = value

    return apply


def with_memory_limit(limit: int) -> SpecOpt:
    """A memory limit in bytes."""
    return _set("memory", "limit", _int(limit, "the memory limit", 1))


def with_memory_swap(swap: int) -> SpecOpt:
    """Memory plus swap in bytes (-1: unlimited swap)."""
    return _set("memory", "swap", _int(swap, "the memory+swap limit", -1))


def with_pids_limit(limit: int) -> SpecOpt:
    """At most ``limit`` processes and threads in the container (0 or less: no limit)."""
    return _set("pids", "limit", _int(limit, "the pids limit", -_INT64_MAX - 1))


def with_cpu_shares(shares: int) -> SpecOpt:
    return _set("cpu", "shares", _int(shares, "cpu shares", 2, 2**64 - 1))


def with_cpu_cfs(quota: int, period: int) -> SpecOpt:
    """A CFS quota and period in microseconds (quota -1: no limit)."""
    q = _int(quota, "the cpu quota", -1)
    p = _int(period, "the cpu period", 0, 2**64 - 1)

    def apply(spec: Spec) -> None:
        cpu = sec.obj(sec.resources(spec), "cpu", "linux.resources")
        cpu["quota"], cpu["period"] = q, p

    return apply


def with_cpus(cpus: float) -> SpecOpt:
    """At most ``cpus`` CPUs' worth of time, as ``ctr run --cpus``: quota ``cpus * 100000`` per 100000 µs."""
    if isinstance(cpus, bool) or not isinstance(cpus, int | float) or not math.isfinite(cpus) or cpus <= 0:
        raise InvalidArgument(f"cpus must be a positive number, got {cpus!r}")
    quota = int(cpus * CPU_PERIOD)
    if quota < _MIN_CPU_QUOTA:
        raise InvalidArgument(f"cpus {cpus} is less than the smallest quota, {_MIN_CPU_QUOTA / CPU_PERIOD} CPUs")
    return with_cpu_cfs(quota, CPU_PERIOD)


def with_cpuset_cpus(cpus: str) -> SpecOpt:
    """The CPUs the container may run on, in cpuset syntax (``0-2,4``): containerd's ``WithCPUs``."""
    return _set("cpu", "cpus", cpus)


def with_cpuset_mems(mems: str) -> SpecOpt:
    """The memory nodes the container may use, in cpuset syntax: containerd's ``WithCPUsMems``."""
    return _set("cpu", "mems", mems)


# -- confinement ----------------------------------------------------------------------------------


def with_masked_paths(paths: Iterable[str]) -> SpecOpt:
    """Exactly these paths masked (an empty list: none)."""
    values = _strings(paths, "masked paths")

    def apply(spec: Spec) -> None:
        linux = sec.linux(spec)
        linux["maskedPaths"] = list(values)
        sec.drop(linux, "maskedPaths")

    return apply


def with_readonly_paths(paths: Iterable[str]) -> SpecOpt:
    """Exactly these paths read-only (an empty list: none)."""
    values = _strings(paths, "read-only paths")

    def apply(spec: Spec) -> None:
        linux = sec.linux(spec)
        linux["readonlyPaths"] = list(values)
        sec.drop(linux, "readonlyPaths")

    return apply


def with_privileged() -> SpecOpt:
    """A privileged container, as ``ctr run --privileged`` and the CRI plugin make one.

    containerd's ``WithPrivileged`` — every capability this process holds;
    no masked or read-only paths; /sys and cgroup mounts writable; no
    SELinux label, AppArmor profile or seccomp filter — together with
    ``WithAllDevicesAllowed``, which every containerd caller pairs with it.
    The host's device nodes are :func:`~pycontainerd.oci.devices.with_host_devices`.
    """

    def apply(spec: Spec) -> None:
        with_capabilities(current_capabilities())(spec)
        linux = sec.linux(spec)
        for key in ("maskedPaths", "readonlyPaths", "seccomp"):
            linux.pop(key, None)
        proc = sec.process(spec)
        proc.pop("selinuxLabel", None)
        proc.pop("apparmorProfile", None)
        for m in sec.seq(spec, "mounts", ""):
            if isinstance(m, dict) and m.get("type") in ("sysfs", "cgroup") and isinstance(m.get("options"), list):
                m["options"] = ["rw" if o == "ro" else o for o in m["options"]]
        with_all_devices_allowed()(spec)

    return apply


def with_annotations(annotations: Mapping[str, str]) -> SpecOpt:
    """Add annotations, replacing those with the same keys."""
    items = dict(annotations)
    for k, v in items.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise InvalidArgument(f"annotations must map strings to strings, got {k!r}: {v!r}")

    def apply(spec: Spec) -> None:
        sec.obj(spec, "annotations", "").update(items)
        sec.drop(spec, "annotations")

    return apply
