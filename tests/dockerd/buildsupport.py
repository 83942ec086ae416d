"""Test images for builds: Debian's static busybox with its applets linked, users in /etc/passwd."""

from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import tarfile
from pathlib import Path

from tests.distribution.support import seed
from tests.dockerd.conftest import DOCKER, Pydockerd
from tests.fixtures.registry import Registry
from tests.ocibuild import BUSYBOX, CONFIG, LAYER, MANIFEST, Image, sha

APPLETS = ("sh", "echo", "cat", "ls", "mkdir", "touch", "test", "true", "false", "id", "env", "wc", "rm", "pwd")
PASSWD = b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n"
GROUP = b"root:x:0:\napp:x:1000:\nnogroup:x:65534:\n"


def _busybox_layer() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for d in ("bin", "etc", "tmp", "root"):
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if d == "tmp" else 0o755
            tar.addfile(info)
        data = Path(BUSYBOX).read_bytes()
        info = tarfile.TarInfo("bin/busybox")
        info.size, info.mode = len(data), 0o755
        tar.addfile(info, io.BytesIO(data))
        for applet in APPLETS:
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type, info.linkname, info.mode = tarfile.SYMTYPE, "busybox", 0o777
            tar.addfile(info)
        for name, body in (("etc/passwd", PASSWD), ("etc/group", GROUP)):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(body), 0o644
            tar.addfile(info, io.BytesIO(body))
    return buf.getvalue()


def busybox_image(config: dict[str, object] | None = None) -> Image:
    """A one-layer busybox image whose shell and common applets work, as a base for builds."""
    img = Image()
    raw = _busybox_layer()
    gz = gzip.compress(raw, mtime=0)
    cfg = {
        "architecture": "amd64",
        "os": "linux",
        "config": config if config is not None else {"Cmd": ["sh"], "Env": ["PATH=/usr/local/bin:/usr/bin:/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [sha(raw)]},
        "history": [{"created_by": "busybox from the test host"}],
    }
    cfg_bytes = json.dumps(cfg, sort_keys=True).encode()
    img.manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": {"mediaType": CONFIG, "digest": img.add(cfg_bytes), "size": len(cfg_bytes)},
        "layers": [{"mediaType": LAYER, "digest": img.add(gz), "size": len(gz)}],
    }
    img.platform = {"os": "linux", "architecture": "amd64"}
    img.add(img.manifest_bytes)
    return img


def pulled_busybox(pydockerd: Pydockerd, registry: Registry, tmp: Path, name: str = "base/busybox:1") -> str:
    """Seed the registry with :func:`busybox_image`, pull it through pydockerd; its reference."""
    seed(registry, busybox_image(), name, tmp)
    ref = f"{registry.host}/{name}"
    pydockerd.docker("pull", "-q", ref)
    return ref


def context_tar(files: dict[str, bytes | str], gz: bool = False) -> bytes:
    """A build context as the CLI sends it."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, body in files.items():
            data = body.encode() if isinstance(body, str) else body
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(buf.getvalue()) if gz else buf.getvalue()


def stream_lines(body: bytes) -> list[dict[str, object]]:
    return [json.loads(line) for line in body.splitlines() if line.strip()]


def docker_build(pydockerd: Pydockerd, *args: str) -> subprocess.CompletedProcess[str]:
    """``docker build`` with the classic builder (DOCKER_BUILDKIT=0), not checked."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    env.update(DOCKER_HOST=pydockerd.host, DOCKER_CONFIG=str(pydockerd.cli_config), DOCKER_BUILDKIT="0")
    return subprocess.run([DOCKER, "build", *args], env=env, capture_output=True, text=True, timeout=300, check=False)


def image_files(pydockerd: Pydockerd, ref: str, tmp: Path) -> dict[str, bytes]:
    """Regular files of an image with its layers applied in order, read from ``docker save``."""
    archive = tmp / "saved.tar"
    pydockerd.docker("save", "-o", str(archive), ref)
    out: dict[str, bytes] = {}
    with tarfile.open(archive) as outer:
        index = outer.extractfile("manifest.json")
        assert index is not None
        for layer in json.load(index)[0]["Layers"]:
            blob = outer.extractfile(layer)
            assert blob is not None
            with tarfile.open(fileobj=io.BytesIO(blob.read()), mode="r:*") as tar:
                for m in tar:
                    name = m.name.removeprefix("./")
                    head, _, base = name.rpartition("/")
                    if base.startswith(".wh."):
                        gone = f"{head}/{base[4:]}" if head else base[4:]
                        for k in [k for k in out if k == gone or k.startswith(gone + "/")]:
                            del out[k]
                    elif m.isreg():
                        f = tar.extractfile(m)
                        assert f is not None
                        out[name] = f.read()
    archive.unlink()
    return out
