"""The OCI runtime spec as pycontainerd builds it: a JSON-able dict, containerd 1.6's defaults, options.

A spec is a plain ``dict[str, Any]`` shaped as the runtime spec's
``config.json``; it travels to the runtime as JSON inside a protobuf ``Any``
whose type URL is :data:`SPEC_TYPE_URL`.  Keys are written the way Go's
encoding of containerd's ``specs.Spec`` writes them: a field Go would leave
out (an empty list, a false flag, an unset pointer) is absent from the dict,
not present and empty.

:func:`default_spec` is what containerd 1.6 generates for a Linux container
(``ctr oci spec`` prints the same for the ``default`` namespace), and
:func:`generate` applies :data:`SpecOpt` options to it, in order, as
containerd's ``oci.GenerateSpec`` does.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any, Final, NamedTuple

from ..errors import InvalidArgument, quote
from ..identifiers import validate

__all__ = [
    "DEFAULT_CAPABILITIES",
    "DEFAULT_PATH_ENV",
    "DEFAULT_ROOTFS_PATH",
    "NAMESPACE_TYPES",
    "SPEC_TYPE_URL",
    "SPEC_VERSION",
    "IDMapping",
    "Spec",
    "SpecOpt",
    "apply_opts",
    "compose",
    "default_mounts",
    "default_spec",
    "generate",
    "spec_from_json",
    "spec_to_json",
]

Spec = dict[str, Any]
"""A runtime spec: ``config.json`` as a dict of JSON values."""

SpecOpt = Callable[[Spec], None]
"""An option: changes a spec in place, raises a :class:`~pycontainerd.errors.ContainerdError` when it cannot."""

SPEC_TYPE_URL: Final = "types.containerd.io/opencontainers/runtime-spec/1/Spec"
"""The type URL of the ``Any`` a container record carries its spec in (JSON bytes as the value)."""

SPEC_VERSION: Final = "1.0.2-dev"
"""The ``ociVersion`` containerd 1.6 writes (the runtime-spec module it was built with)."""

DEFAULT_ROOTFS_PATH: Final = "rootfs"
DEFAULT_PATH_ENV: Final = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

DEFAULT_CAPABILITIES: Final = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
)
"""The bounding, permitted and effective set of a container that asked for nothing else."""

NAMESPACE_TYPES: Final = frozenset({"pid", "network", "mount", "ipc", "uts", "user", "cgroup"})
"""The Linux namespace types a spec may name."""

_DEFAULT_NAMESPACES: Final = ("pid", "ipc", "uts", "mount", "network")

_MASKED_PATHS: Final = (
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/sys/firmware",
    "/proc/scsi",
)

_READONLY_PATHS: Final = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")

# destination, type, source, options — in containerd's order
_DEFAULT_MOUNTS: Final = (
    ("/proc", "proc", "proc", ("nosuid", "noexec", "nodev")),
    ("/dev", "tmpfs", "tmpfs", ("nosuid", "strictatime", "mode=755", "size=65536k")),
    ("/dev/pts", "devpts", "devpts", ("nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5")),
    ("/dev/shm", "tmpfs", "shm", ("nosuid", "noexec", "nodev", "mode=1777", "size=65536k")),
    ("/dev/mqueue", "mqueue", "mqueue", ("nosuid", "noexec", "nodev")),
    ("/sys", "sysfs", "sysfs", ("nosuid", "noexec", "nodev", "ro")),
    ("/run", "tmpfs", "tmpfs", ("nosuid", "strictatime", "mode=755", "size=65536k")),
)


class IDMapping(NamedTuple):
    """One range of a user namespace's uid or gid map: ``size`` ids from ``container_id`` onto ``host_id``."""

    container_id: int
    host_id: int
    size: int

    def to_spec(self) -> dict[str, int]:
        return {"containerID": self.container_id, "hostID": self.host_id, "size": self.size}


def default_mounts() -> list[dict[str, Any]]:
    """containerd's default mounts for a Linux container (fresh lists each call)."""
    return [
        {"destination": dst, "type": typ, "source": src, "options": list(opts)}
        for dst, typ, src, opts in _DEFAULT_MOUNTS
    ]


def _cgroups_path(namespace: str, id: str) -> str:
    return f"/{namespace}/{id}" if id else f"/{namespace}"


def default_spec(namespace: str, id: str) -> Spec:
    """containerd 1.6's default spec for container ``id`` in ``namespace``.

    The cgroup is ``/<namespace>/<id>``.  An empty ``id`` is allowed (it is
    what ``ctr oci spec`` prints, with cgroup ``/<namespace>``); otherwise
    both must be valid identifiers, since they become a cgroup path.
    """
    validate("namespace", namespace)
    if id:
        validate("container id", id)
    caps = list(DEFAULT_CAPABILITIES)
    return {
        "ociVersion": SPEC_VERSION,
        "process": {
            "user": {"uid": 0, "gid": 0},
            "cwd": "/",
            "capabilities": {"bounding": caps, "effective": list(caps), "permitted": list(caps)},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": DEFAULT_ROOTFS_PATH},
        "mounts": default_mounts(),
        "linux": {
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "cgroupsPath": _cgroups_path(namespace, id),
            "namespaces": [{"type": t} for t in _DEFAULT_NAMESPACES],
            "maskedPaths": list(_MASKED_PATHS),
            "readonlyPaths": list(_READONLY_PATHS),
        },
    }


def apply_opts(spec: Spec, opts: Iterable[SpecOpt]) -> Spec:
    """Apply ``opts`` to ``spec`` in order; the first error stops the rest and propagates."""
    for opt in opts:
        opt(spec)
    return spec


def compose(*opts: SpecOpt) -> SpecOpt:
    """One option that applies ``opts`` in order."""

    def apply(spec: Spec) -> None:
        apply_opts(spec, opts)

    return apply


def generate(namespace: str, id: str, *opts: SpecOpt) -> Spec:
    """The default spec for ``id`` in ``namespace`` with ``opts`` applied, as containerd's GenerateSpec."""
    return apply_opts(default_spec(namespace, id), opts)


def spec_to_json(spec: Spec) -> bytes:
    """The spec as the JSON bytes a runtime reads (``config.json``) and an ``Any`` carries."""
    try:
        return json.dumps(spec, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
    except (TypeError, ValueError) as e:
        raise InvalidArgument(f"spec is not JSON-able: {e}") from None


def spec_from_json(data: bytes | str) -> Spec:
    """A spec from JSON (a container record's ``Any`` value or a ``config.json``): an object, or InvalidArgument."""
    try:
        value = json.loads(data)
    except (UnicodeDecodeError, ValueError) as e:
        raise InvalidArgument(f"decoding spec: {e}") from None
    if not isinstance(value, dict):
        raise InvalidArgument(f"decoding spec: expected a JSON object, got {quote(type(value).__name__)}")
    return value
