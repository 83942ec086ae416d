"""Our specs against containerd's own: ``ctr containers create`` on a real containerd, then ``ctr c info --spec``.

``ctr containers create`` builds its spec with containerd's option code (``oci.WithImageConfig``,
``WithMemoryLimit``...) in a fixed order; the same options of ours, in the
same order, must give the same JSON.  (``containers create`` lacks ``run``'s
platform flags (--cpus, --cpu-shares) and --cgroup; those are checked in
test_opts.py.)  The image's users live in the image's
own /etc/passwd and /etc/group, which containerd reads from a mounted
snapshot and we read from a directory holding the same files.
"""

from __future__ import annotations

import gzip
import json
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest

from pycontainerd.oci import (
    current_capabilities,
    generate,
    with_added_capabilities,
    with_annotations,
    with_cpu_cfs,
    with_default_unix_devices,
    with_dropped_capabilities,
    with_env,
    with_host_devices,
    with_host_namespace,
    with_image_config,
    with_linux_namespace,
    with_memory_limit,
    with_mounts,
    with_new_privileges,
    with_privileged,
    with_process_args,
    with_process_cwd,
    with_readonly_rootfs,
    with_rootfs,
    with_tty,
)
from tests.fixtures.containerd import Containerd
from tests.ocibuild import CONFIG, LAYER, MANIFEST, Image, busybox_files, layer_tar, oci_layout_tar, sha

from .conftest import GROUP, PASSWD, make_rootfs

CTR = "/usr/bin/ctr"
REF = "example.com/oci/users:1"
NS = "ocitest"

pytestmark = [
    pytest.mark.containerd,
]

IMAGE_CONFIG: dict[str, Any] = {
    "Env": ["PATH=/usr/bin:/bin", "LANG=C.UTF-8"],
    "Entrypoint": ["/bin/busybox"],
    "Cmd": ["sh", "-c", "id"],
    "WorkingDir": "/home/app",
    "User": "app",
    "StopSignal": "SIGQUIT",
}


def users_image() -> Image:
    """busybox with our passwd and group, and a config using every field WithImageConfig reads."""
    files = {**busybox_files(), "etc/passwd": PASSWD.encode(), "etc/group": GROUP.encode()}
    raw = layer_tar(files)
    gz = gzip.compress(raw, mtime=0)
    img = Image()
    layer = {"mediaType": LAYER, "digest": img.add(gz), "size": len(gz)}
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": IMAGE_CONFIG,
            "rootfs": {"type": "layers", "diff_ids": [sha(raw)]},
        }
    ).encode()
    img.manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": {"mediaType": CONFIG, "digest": img.add(config), "size": len(config)},
        "layers": [layer],
    }
    img.platform = {"os": "linux", "architecture": "amd64"}
    img.add(img.manifest_bytes)
    return img


def differences(ours: Any, theirs: Any, path: str = "") -> list[str]:
    """Where two JSON values differ, as readable lines (pytest's dict diff hides nested lists)."""
    if isinstance(ours, dict) and isinstance(theirs, dict):
        out: list[str] = []
        for key in sorted(set(ours) | set(theirs)):
            where = f"{path}.{key}"
            if key not in theirs:
                out.append(f"{where}: only ours: {json.dumps(ours[key])[:200]}")
            elif key not in ours:
                out.append(f"{where}: only containerd's: {json.dumps(theirs[key])[:200]}")
            else:
                out.extend(differences(ours[key], theirs[key], where))
        return out
    if ours != theirs:
        return [f"{path}: ours {json.dumps(ours)[:300]}, containerd's {json.dumps(theirs)[:300]}"]
    return []


def assert_same(ours: dict[str, Any], theirs: dict[str, Any]) -> None:
    assert ours == theirs, "\n".join(differences(ours, theirs))


def ctr(d: Containerd, *args: str) -> str:
    r = subprocess.run(
        [CTR, "--address", d.address, "--namespace", NS, *args], capture_output=True, text=True, timeout=60, check=False
    )
    assert r.returncode == 0, r.stderr
    return r.stdout


def ctr_spec(d: Containerd, id: str, *create: str) -> dict[str, Any]:
    ctr(d, "containers", "create", *create)
    return json.loads(ctr(d, "containers", "info", "--spec", id))  # type: ignore[no-any-return]


def test_image_container_as_ctr(containerd: Containerd, tmp_path: Path) -> None:
    archive = tmp_path / "users.tar"
    archive.write_bytes(oci_layout_tar(users_image(), REF))
    ctr(containerd, "images", "import", str(archive))
    rootfs = make_rootfs(tmp_path / "rootfs")

    # the image's own command and user
    theirs = ctr_spec(containerd, "c1", "--label", "team=blue", REF, "c1")
    ours = generate(
        NS,
        "c1",
        with_default_unix_devices(),
        with_image_config(IMAGE_CONFIG, rootfs=rootfs),
        with_annotations({"team": "blue"}),
    )
    assert_same(ours, theirs)

    # most of ctr run's flags, in the order ctr applies them
    mount = "type=tmpfs,src=tmpfs,dst=/scratch,options=nosuid:size=1m"
    theirs = ctr_spec(
        containerd,
        "c2",
        "--env",
        "LANG=fr_FR.UTF-8",
        "--env",
        "DEBUG=1",
        "--mount",
        mount,
        "--read-only",
        "--cwd",
        "/work",
        "--tty",
        "--cap-add",
        "CAP_SYS_ADMIN",
        "--cap-drop",
        "CAP_KILL",
        "--annotation",
        "note=yes",
        "--cpu-quota",
        "150000",
        "--cpu-period",
        "100000",
        "--with-ns",
        "ipc:/proc/1/ns/ipc",
        "--allow-new-privs",
        "--memory-limit",
        str(64 << 20),
        REF,
        "c2",
        "/bin/busybox",
        "echo",
        "hi",
    )
    ours = generate(
        NS,
        "c2",
        with_default_unix_devices(),
        with_env(["LANG=fr_FR.UTF-8", "DEBUG=1"]),
        with_mounts([mount]),
        with_image_config(IMAGE_CONFIG, rootfs=rootfs),
        with_readonly_rootfs(),
        with_process_args("/bin/busybox", "echo", "hi"),
        with_process_cwd("/work"),
        with_tty(),
        with_annotations({"note": "yes"}),
        with_added_capabilities(["CAP_SYS_ADMIN"]),
        with_dropped_capabilities(["CAP_KILL"]),
        with_cpu_cfs(150000, 100000),  # what with_cpus(1.5) sets
        with_linux_namespace("ipc", "/proc/1/ns/ipc"),
        with_new_privileges(),
        with_memory_limit(64 << 20),
        with_annotations({}),
    )
    assert_same(ours, theirs)


def test_rootfs_container_as_ctr(containerd: Containerd, tmp_path: Path) -> None:
    rootfs = make_rootfs(tmp_path / "rootfs")
    theirs = ctr_spec(
        containerd,
        "c3",
        "--rootfs",
        "--privileged",
        "--net-host",
        "--env",
        "A=1",
        str(rootfs),
        "c3",
        "/bin/sh",
    )
    # --privileged grants the caller's own capabilities; ctr and this test run with the same ones here.
    assert theirs["process"]["capabilities"]["bounding"] == current_capabilities()
    ours = generate(
        NS,
        "c3",
        with_default_unix_devices(),
        with_env(["A=1"]),
        with_rootfs(str(rootfs)),
        with_process_args("/bin/sh"),
        with_privileged(),
        with_host_devices(),
        with_host_namespace("network"),
        with_mounts(
            [
                {"destination": "/etc/hosts", "type": "bind", "source": "/etc/hosts", "options": ["rbind", "ro"]},
                {
                    "destination": "/etc/resolv.conf",
                    "type": "bind",
                    "source": "/etc/resolv.conf",
                    "options": ["rbind", "ro"],
                },
            ]
        ),
        with_env([f"HOSTNAME={socket.gethostname()}"]),
        with_annotations({}),
    )
    assert_same(ours, theirs)
