"""A private Debian docker-registry on 127.0.0.1 holding one large multi-layer image, for the fetch benchmark.

The image is made here: each layer an uncompressed tar of one file of
deterministic pseudo-random bytes (so no compression step blurs what is
measured), written as an OCI layout and pushed with skopeo.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import socket
import subprocess
import tarfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from bench.daemons import scratch

REGISTRY = Path("/usr/bin/docker-registry")
SKOPEO = Path("/usr/bin/skopeo")
REPOSITORY = "bench/big"
TAG = "1"
CHUNK = 4 << 20


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def registry() -> Iterator[str]:
    """Run a plain-HTTP registry; yield its ``host:port``; stop it and delete its storage after."""
    if not REGISTRY.exists():
        raise FileNotFoundError(f"{REGISTRY} is not installed (Debian package docker-registry)")
    with scratch("bench-registry-") as base:
        port = _free_port()
        (base / "config.yml").write_text(
            "version: 0.1\n"
            "log:\n  level: error\n"
            f"storage:\n  filesystem:\n    rootdirectory: {base / 'data'}\n  delete:\n    enabled: true\n"
            f"http:\n  addr: 127.0.0.1:{port}\n"
        )
        with open(base / "registry.log", "wb") as log:
            proc = subprocess.Popen(
                [str(REGISTRY), "serve", str(base / "config.yml")], stdout=log, stderr=log, start_new_session=True
            )
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1).close()
                    break
                except OSError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(
                            f"registry did not start: {(base / 'registry.log').read_text()[-500:]}"
                        ) from None
                    time.sleep(0.1)
            yield f"127.0.0.1:{port}"
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _write_blob(layout: Path, data: bytes) -> dict[str, object]:
    digest = _sha(data)
    (layout / "blobs" / "sha256" / digest.split(":")[1]).write_bytes(data)
    return {"digest": digest, "size": len(data)}


def _layer(layout: Path, index: int, size: int) -> tuple[dict[str, object], str]:
    """One layer tar holding ``size`` pseudo-random bytes, streamed to disk; its descriptor and diff id."""
    tmp = layout / f"layer-{index}.tmp"
    with open(tmp, "wb") as f, tarfile.open(fileobj=f, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(f"data/file-{index}.bin")
        info.size = size
        chunks = (
            hashlib.shake_128(b"bench-layer-%d-%d" % (index, i)).digest(min(CHUNK, size - i * CHUNK))
            for i in range((size + CHUNK - 1) // CHUNK)
        )
        tar.addfile(info, _Chunks(chunks))
    h = hashlib.sha256()
    with open(tmp, "rb") as f:
        while block := f.read(CHUNK):
            h.update(block)
    digest = "sha256:" + h.hexdigest()
    total = tmp.stat().st_size
    os.replace(tmp, layout / "blobs" / "sha256" / digest.split(":")[1])
    desc = {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest, "size": total}
    return desc, digest


class _Chunks(io.RawIOBase):
    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buf = b""

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._buf:
            try:
                self._buf = next(self._chunks)
            except StopIteration:
                return 0
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n


def push_layout(host: str, layout: Path, config: bytes, layers: list[dict[str, object]], repository: str) -> str:
    """Write the manifest and index of an OCI layout whose layer blobs are in place, and push it with skopeo."""
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **_write_blob(layout, config)},
            "layers": layers,
        }
    ).encode()
    mdesc = _write_blob(layout, manifest)
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                **mdesc,
                "annotations": {"org.opencontainers.image.ref.name": TAG},
            }
        ],
    }
    (layout / "index.json").write_text(json.dumps(index))
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    ref = f"{host}/{repository}:{TAG}"
    subprocess.run(
        [str(SKOPEO), "copy", "--quiet", "--dest-tls-verify=false", f"oci:{layout}:{TAG}", f"docker://{ref}"],
        check=True,
        capture_output=True,
        timeout=1200,
    )
    return ref


def push_big_image(host: str, work: Path, layers: int, layer_size: int) -> str:
    """Build the image under ``work`` and push it to ``host``; returns its reference."""
    layout = work / "layout"
    (layout / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    descs, diff_ids = [], []
    for i in range(layers):
        desc, diff_id = _layer(layout, i, layer_size)
        descs.append(desc)
        diff_ids.append(diff_id)
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": diff_ids}}
    ).encode()
    return push_layout(host, layout, config, descs, REPOSITORY)
