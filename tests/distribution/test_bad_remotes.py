"""Registries that fail, hang, lie or send garbage: one clear error each, and nothing left half-written."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pycontainerd.client import Client, RegistryOptions
from pycontainerd.errors import DeadlineExceeded
from tests.fixtures._faults import FaultyProxy
from tests.fixtures.daemon import PycontainerdDaemon
from tests.fixtures.registry import Registry
from tests.ocibuild import busybox_files, image

from .support import assert_clean, one_line_error, pyctr, seed


def test_missing_tag_and_retries(
    pycontainerd_daemon: PycontainerdDaemon, registry: Registry, faulty_proxy: FaultyProxy, tmp_path: Path
) -> None:
    d = pycontainerd_daemon
    img = image([busybox_files()])
    seed(registry, img, "test/busybox:1", tmp_path)
    line = one_line_error(pyctr(d, "images", "pull", "-q", f"{registry.host}/test/busybox:nope", ok=False))
    assert "not found" in line

    via = f"{faulty_proxy.host}/test/busybox:1"
    faulty_proxy.faults.fail_next = 2  # two 500s, then the registry answers: retries hide them
    out = pyctr(d, "images", "pull", "-q", via)
    assert out.stdout.split() == [via, img.digest]
    pyctr(d, "images", "rm", "--sync", via)

    faulty_proxy.faults.fail_next = 1000
    faulty_proxy.faults.seen.clear()
    started = time.monotonic()
    line = one_line_error(pyctr(d, "images", "pull", "-q", via, ok=False))
    assert "500" in line or "UNKNOWN" in line, line
    assert len(faulty_proxy.faults.seen) <= 4  # bounded: one try and three retries
    assert time.monotonic() - started < 30
    assert_clean(d.address)


@pytest.mark.parametrize(
    ("media_type", "body", "message"),
    [
        ("application/vnd.oci.image.manifest.v1+json", b'{"schemaVersion": 2, "config": ', "malformed JSON"),
        ("application/vnd.example.unknown+json", b'{"schemaVersion": 2}', "unknown manifest media type"),
        ("application/vnd.docker.distribution.manifest.v1+prettyjws", b'{"schemaVersion": 1}', "schema 1"),
        (
            "application/vnd.oci.image.manifest.v1+json",
            b'{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "config": 7, "layers": []}',
            "config",
        ),
    ],
)
def test_bad_documents(
    pycontainerd_daemon: PycontainerdDaemon,
    faulty_proxy: FaultyProxy,
    media_type: str,
    body: bytes,
    message: str,
) -> None:
    d = pycontainerd_daemon
    digest = "sha256:" + hashlib.sha256(body).hexdigest()
    faulty_proxy.faults.documents = {"/manifests/bad": (media_type, body), f"/manifests/{digest}": (media_type, body)}
    line = one_line_error(pyctr(d, "images", "pull", "-q", f"{faulty_proxy.host}/x/y:bad", ok=False))
    assert message in line, line
    assert_clean(d.address)


def test_corrupt_blob_is_refused_and_dropped(
    pycontainerd_daemon: PycontainerdDaemon, registry: Registry, faulty_proxy: FaultyProxy, tmp_path: Path
) -> None:
    d = pycontainerd_daemon
    img = image([busybox_files()])
    seed(registry, img, "test/busybox:1", tmp_path)
    layer = str(img.manifest["layers"][0]["digest"])  # type: ignore[index]
    faulty_proxy.faults.corrupt_on = f"/blobs/{layer}"
    via = f"{faulty_proxy.host}/test/busybox:1"
    line = one_line_error(pyctr(d, "images", "pull", "-q", via, ok=False))
    assert "does not match its digest" in line and layer in line, line
    assert_clean(d.address)
    faulty_proxy.faults.corrupt_on = ""
    assert pyctr(d, "images", "pull", "-q", via).stdout.split() == [via, img.digest]


def test_hanging_registry_times_out(pycontainerd_daemon: PycontainerdDaemon, faulty_proxy: FaultyProxy) -> None:
    faulty_proxy.faults.hang_on = "/manifests/"
    started = time.monotonic()
    with Client(pycontainerd_daemon.address) as c, pytest.raises(DeadlineExceeded, match="did not answer"):
        c.pull(f"{faulty_proxy.host}/x/y:1", registry=RegistryOptions(timeout=0.5), local=True)
    assert time.monotonic() - started < 15
    assert_clean(pycontainerd_daemon.address)


def test_pull_resumes_after_the_daemon_is_killed(
    pycontainerd_daemon: PycontainerdDaemon, registry: Registry, faulty_proxy: FaultyProxy, tmp_path: Path
) -> None:
    d = pycontainerd_daemon
    img = image([{"data/random.bin": os.urandom(3 << 20)}])
    seed(registry, img, "big/blob:1", tmp_path)
    layer = str(img.manifest["layers"][0]["digest"])  # type: ignore[index]
    size = int(img.manifest["layers"][0]["size"])  # type: ignore[index]
    faulty_proxy.faults.slow_on = f"/blobs/{layer}"
    via = f"{faulty_proxy.host}/big/blob:1"
    argv = [sys.executable, "-m", "pycontainerd.cmd.pyctr", "-a", d.address, "images", "pull", "-q", via]
    puller = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        offset = 0
        with Client(d.address) as c:
            while offset < 512 << 10:
                assert time.monotonic() < deadline, "the ingest never got going"
                statuses = [s for s in c.content.list_statuses() if s.ref == f"layer-{layer}"]
                offset = statuses[0].offset if statuses else 0
                time.sleep(0.05)
        d.kill()
    finally:
        puller.kill()
        puller.wait()
    d.restart()
    faulty_proxy.faults.slow_on = ""
    faulty_proxy.faults.seen.clear()
    assert pyctr(d, "images", "pull", "-q", via).stdout.split() == [via, img.digest]
    ranges = [r for m, p, r in faulty_proxy.faults.seen if p.endswith(layer) and m == "GET"]
    assert ranges and ranges[0].startswith("bytes=") and int(ranges[0][6:].rstrip("-")) >= 512 << 10
    assert int(ranges[0][6:].rstrip("-")) < size
    with Client(d.address) as c:
        assert c.content.info(layer).size == size
