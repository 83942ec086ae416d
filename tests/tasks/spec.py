"""A small OCI runtime spec for tests that must not depend on pycontainerd's own spec generation."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

from pycontainerd.containers import TypedValue

SPEC_TYPE_URL = "types.containerd.io/opencontainers/runtime-spec/1/Spec"


def minimal_spec(namespace: str, id: str, args: list[str], *, terminal: bool = False) -> dict[str, Any]:
    """Enough for runc: its own pid/ipc/uts/mount/network namespaces, /proc, /dev and /sys."""
    return {
        "ociVersion": "1.0.2-dev",
        "process": {
            "terminal": terminal,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": ["PATH=/bin:/usr/bin:/sbin:/usr/sbin"],
            "cwd": "/",
            "capabilities": {
                k: ["CAP_CHOWN", "CAP_KILL", "CAP_SETUID", "CAP_SETGID", "CAP_NET_BIND_SERVICE"]
                for k in ("bounding", "effective", "permitted")
            },
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs"},
        "hostname": id,
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
            {
                "destination": "/dev",
                "type": "tmpfs",
                "source": "tmpfs",
                "options": ["nosuid", "strictatime", "mode=755"],
            },
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
        ],
        "linux": {
            "cgroupsPath": f"/{namespace}/{id}",
            "namespaces": [{"type": t} for t in ("pid", "ipc", "uts", "mount", "network")],
            "maskedPaths": ["/proc/kcore"],
            "readonlyPaths": ["/proc/sys"],
        },
    }


def spec_value(namespace: str, id: str, args: list[str], **kw: Any) -> TypedValue:
    return TypedValue(SPEC_TYPE_URL, json.dumps(minimal_spec(namespace, id, args, **kw)).encode())


def remove_namespace_cgroups(namespace: str) -> None:
    """runc removes a container's cgroup but not the ``/<namespace>`` parent the spec put it under."""
    root = Path("/sys/fs/cgroup")
    for parent in [root / namespace, *root.glob(f"*/{namespace}")]:
        for d in sorted((p for p in parent.glob("**/") if p.is_dir()), key=lambda p: -len(p.parts)):
            with contextlib.suppress(OSError):
                d.rmdir()
