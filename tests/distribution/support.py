"""Shared helpers for the distribution tests: test images seeded into real registries with skopeo."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from pycontainerd.client import Client
from tests.fixtures.daemon import PycontainerdDaemon
from tests.fixtures.registry import PASSWORD, USER, Registry
from tests.ocibuild import Image, MultiImage, busybox_files, image, oci_layout_dir


def two_platforms() -> MultiImage:
    """busybox for amd64 and arm64, each with one layer of its own (so a pull shows which it fetched)."""
    amd = image([busybox_files(), {"etc/arch": b"amd64\n"}], "amd64")
    arm = image([busybox_files(), {"etc/arch": b"arm64\n"}], "arm64", "v8")
    return MultiImage([amd, arm])


def seed(registry: Registry, target: Image | MultiImage, ref: str, tmp: Path) -> None:
    """Put ``target`` at ``registry/ref`` with skopeo (all platforms)."""
    layout = tmp / f"seed-{abs(hash(ref))}"
    oci_layout_dir(str(layout), target, "seed")
    creds = ["--dest-creds", f"{USER}:{PASSWORD}"] if registry.mode in ("htpasswd", "token") else []
    run(
        [
            "skopeo",
            "copy",
            "--all",
            "--dest-tls-verify=false",
            *creds,
            f"oci:{layout}:seed",
            f"docker://{registry.host}/{ref}",
        ]
    )


def run(argv: list[str], ok: bool = True, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=180, env=env)
    if ok:
        assert r.returncode == 0, f"{argv}: {r.stderr}"
    return r


def pyctr(
    d: PycontainerdDaemon | str, *args: str, ok: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    address = d if isinstance(d, str) else d.address
    return run([sys.executable, "-m", "pycontainerd.cmd.pyctr", "-a", address, *args], ok=ok, env=env)


def ctr(address: str, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTAINERD_")}
    return run(["ctr", "-a", address, *args], ok=ok, env=env)


def raw_manifest(registry: Registry, ref: str) -> bytes:
    creds = ["--creds", f"{USER}:{PASSWORD}"] if registry.mode in ("htpasswd", "token") else []
    r = subprocess.run(
        ["skopeo", "inspect", "--raw", "--tls-verify=false", *creds, f"docker://{registry.host}/{ref}"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return r.stdout


def one_line_error(r: subprocess.CompletedProcess[str]) -> str:
    assert r.returncode != 0, r.stdout
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "Traceback" not in r.stderr
    return lines[0]


def assert_clean(address: str, namespace: str = "default") -> None:
    """No image, and after a collection (which takes what a failed pull's lease held) no ingest and no blob."""
    with Client(address, namespace=namespace) as c:
        assert c.images.list() == []
        c.leases.delete(c.leases.create("gc-now").id, sync=True)
        assert c.content.list_statuses() == []
        assert list(c.content.walk()) == []
