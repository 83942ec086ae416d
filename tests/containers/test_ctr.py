"""Debian's real ``ctr containers ...`` and ``ctr events`` against pycontainerd, and pyctr beside them."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fixtures.daemon import PycontainerdDaemon
from tests.ocibuild import busybox_files, image, oci_layout_tar

CTR = "/usr/bin/ctr"
REF = "example.com/test/busybox:1"

pytestmark = [
    pytest.mark.containerd,
]


def ctr(d: PycontainerdDaemon, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    r = subprocess.run([CTR, "--address", d.address, *args], capture_output=True, text=True, timeout=60, check=False)
    if ok:
        assert r.returncode == 0, r.stderr
    else:
        assert r.returncode != 0, r.stdout
    return r


def pyctr(d: PycontainerdDaemon, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(
        [sys.executable, "-m", "pycontainerd.cmd.pyctr", "--address", d.address, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if ok:
        assert r.returncode == 0, r.stderr
    else:
        assert r.returncode != 0, r.stdout
    return r


@pytest.fixture
def with_image(pycontainerd_daemon: PycontainerdDaemon, tmp_path: Path) -> PycontainerdDaemon:
    archive = tmp_path / "busybox.tar"
    archive.write_bytes(oci_layout_tar(image([busybox_files()]), REF))
    ctr(pycontainerd_daemon, "images", "import", str(archive))
    return pycontainerd_daemon


class Events:
    """``ctr events`` running in the background; its lines are read once it is stopped."""

    def __init__(self, d: PycontainerdDaemon, tmp: Path) -> None:
        self.path = tmp / "events.txt"
        self.out = open(self.path, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([CTR, "--address", d.address, "events"], stdout=self.out, stderr=subprocess.STDOUT)
        time.sleep(0.5)  # ctr subscribes after it starts; events before that are not seen, as in containerd

    def stop(self) -> list[str]:
        time.sleep(0.3)
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self.out.close()
        return self.path.read_text().splitlines()


def test_ctr_containers_and_events(with_image: PycontainerdDaemon, tmp_path: Path) -> None:
    d = with_image
    events = Events(d, tmp_path)
    try:
        ctr(d, "containers", "create", "--label", "team=blue", REF, "c1", "echo", "hi")
        ctr(d, "containers", "create", "--snapshotter", "native", REF, "c2")
        rows = ctr(d, "containers", "ls").stdout.splitlines()
        assert rows[0].split() == ["CONTAINER", "IMAGE", "RUNTIME"]
        assert sorted(r.split() for r in rows[1:]) == [
            ["c1", REF, "io.containerd.runc.v2"],
            ["c2", REF, "io.containerd.runc.v2"],
        ]
        assert ctr(d, "containers", "ls", "-q", "labels.team==blue").stdout.split() == ["c1"]
        info = json.loads(ctr(d, "containers", "info", "c1").stdout)
        assert info["ID"] == "c1" and info["Image"] == REF and info["Snapshotter"] == "overlayfs"
        assert info["Spec"]["process"]["args"] == ["echo", "hi"]
        # ctr adds the image's stop signal as a label, as it does against containerd.
        assert info["Labels"] == {"team": "blue", "io.containerd.image.config.stop-signal": "SIGTERM"}
        # The container's snapshot was prepared on the image's top layer.
        snaps = ctr(d, "snapshots", "ls").stdout
        assert "c1" in snaps and "Active" in snaps
        ctr(d, "containers", "label", "c1", "team=red", "tier=web")
        labels = json.loads(ctr(d, "containers", "info", "c1").stdout)["Labels"]
        assert labels["team"] == "red" and labels["tier"] == "web"
        err = ctr(d, "containers", "create", REF, "c1", ok=False).stderr
        assert "already exists" in err
        # pyctr sees the same records.
        assert pyctr(d, "containers", "ls", "-q").stdout.split() == ["c1", "c2"]
        spec = json.loads(pyctr(d, "containers", "info", "--spec", "c1").stdout)
        assert spec["process"]["args"] == ["echo", "hi"]
        ctr(d, "containers", "rm", "c1")
        pyctr(d, "containers", "rm", "c2")
        assert ctr(d, "containers", "ls", "-q").stdout.split() == []
        assert "c1" not in ctr(d, "snapshots", "ls").stdout
        assert "c2" not in ctr(d, "snapshots", "--snapshotter", "native", "ls").stdout
        err = pyctr(d, "containers", "rm", "c1", ok=False).stderr
        assert "not found" in err and "Traceback" not in err
    finally:
        lines = events.stop()
    # ctr prints the time as four words (2026-01-02 03:04:05.6 +0000 UTC), then namespace and topic.
    topics = [line.split()[5] for line in lines if len(line.split()) > 5]
    for topic in (
        "/snapshot/prepare",
        "/containers/create",
        "/containers/update",
        "/containers/delete",
        "/snapshot/remove",
    ):
        assert topic in topics, lines
    create = next(line for line in lines if "/containers/create" in line)
    assert '"id":"c1"' in create.replace(" ", "") and "io.containerd.runc.v2" in create


def test_pyctr_events_filter_and_publish(with_image: PycontainerdDaemon) -> None:
    d = with_image
    follower = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pycontainerd.cmd.pyctr",
            "--address",
            d.address,
            "events",
            "-n",
            "2",
            'topic~="^/images/"',
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(1.5)
        ctr(d, "images", "tag", REF, "example.com/test/busybox:2")
        ctr(d, "images", "rm", "example.com/test/busybox:2")
        out, err = follower.communicate(timeout=30)
    finally:
        follower.kill()
    assert follower.returncode == 0, err
    lines = out.splitlines()
    assert [line.split()[2] for line in lines] == ["/images/create", "/images/delete"]
    assert "containerd.services.images.v1.ImageCreate" in lines[0] and "busybox:2" in lines[0]
