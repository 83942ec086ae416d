"""A multi-platform image through pydockerd: inspect/history/save with a platform (the CLI's --platform, the
X-Requested-Platform header), every pulled platform kept, and kept again through save and load."""

from __future__ import annotations

import json
import tarfile
import urllib.parse
from pathlib import Path

from tests.distribution.support import seed, two_platforms
from tests.dockerd.conftest import Pydockerd, UnixHTTPConnection
from tests.fixtures.registry import Registry

FMT = "{{.Id}} {{.Architecture}}"


def _get(d: Pydockerd, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
    conn = UnixHTTPConnection(d.socket)
    try:
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def test_platforms(pydockerd: Pydockerd, registry: Registry, tmp_path: Path) -> None:
    target = two_platforms()
    seed(registry, target, "plat/app:1", tmp_path)
    ref = f"{registry.host}/plat/app:1"
    amd, arm = target.images
    amd_id, arm_id = (str(i.manifest["config"]["digest"]) for i in (amd, arm))  # type: ignore[index]
    pydockerd.docker("pull", ref)
    pydockerd.docker("pull", "--platform", "linux/arm64", ref)

    assert pydockerd.docker("image", "inspect", "--format", FMT, ref).stdout.split() == [amd_id, "amd64"]
    out = pydockerd.docker("image", "inspect", "--platform", "linux/arm64", "--format", FMT + " {{.Variant}}", ref)
    assert out.stdout.split() == [arm_id, "arm64", "v8"]
    # The header of seed 004, for clients that send it instead of the query.
    path = f"/v1.50/images/{ref}/json"
    status, body = _get(pydockerd, path, {"X-Requested-Platform": '{"os":"linux","architecture":"arm64"}'})
    assert status == 200
    assert json.loads(body)["Id"] == arm_id
    history = pydockerd.docker("history", "--platform", "linux/arm64", "--no-trunc", "-q", ref).stdout.split()
    assert history[0] == arm_id
    r = pydockerd.docker("image", "inspect", "--platform", "linux/s390x", ref, ok=False)
    assert f"image with reference {ref} was found but does not provide the specified platform (linux/s390x)" in r.stderr
    status, body = _get(pydockerd, path + "?platform=" + urllib.parse.quote('{"os":"linux"'), {})
    assert status == 400

    # Saved for one platform: that manifest alone.
    one = tmp_path / "arm.tar"
    pydockerd.docker("save", "--platform", "linux/arm64", "-o", str(one), ref)
    with tarfile.open(one) as tar:
        index = json.load(tar.extractfile("index.json"))  # type: ignore[arg-type]
        names = tar.getnames()
    assert [m["digest"] for m in index["manifests"]] == [arm.digest]
    assert f"blobs/sha256/{amd_id[7:]}" not in names

    # Saved whole, removed, loaded: both platforms are back, the host's in use.
    both = tmp_path / "both.tar"
    pydockerd.docker("save", "-o", str(both), ref)
    pydockerd.docker("rmi", ref)
    assert pydockerd.docker("load", "-i", str(both)).stdout.strip() == f"Loaded image: {ref}"
    assert pydockerd.docker("image", "inspect", "--format", FMT, ref).stdout.split() == [amd_id, "amd64"]
    out = pydockerd.docker("image", "inspect", "--platform", "linux/arm64", "--format", FMT, ref).stdout.split()
    assert out == [arm_id, "arm64"]
    [summary] = json.loads(pydockerd.request("GET", "/images/json")[2])
    assert summary["Descriptor"]["digest"] == target.digest

    # One platform removed: the image stays, with the other.
    out = pydockerd.docker("rmi", "--platform", "linux/arm64", ref).stdout
    assert out.strip() == f"Deleted: {arm.digest}"
    r = pydockerd.docker("image", "inspect", "--platform", "linux/arm64", ref, ok=False)
    assert "does not provide the specified platform (linux/arm64)" in r.stderr
    assert pydockerd.docker("image", "inspect", "--format", FMT, ref).stdout.split() == [amd_id, "amd64"]
    r = pydockerd.docker("rmi", "--platform", "linux/arm64", ref, ok=False)
    assert "does not provide the specified platform (linux/arm64)" in r.stderr

    # Loaded for a platform the archive lacks: refused, nothing recorded.
    pydockerd.docker("rmi", ref)
    r = pydockerd.docker("load", "--platform", "linux/s390x", "-i", str(both), ok=False)
    assert "doesn't provide the requested platform (linux/s390x)" in r.stderr
    assert pydockerd.docker("images", "-q").stdout == ""
    assert "Traceback" not in pydockerd.log()
