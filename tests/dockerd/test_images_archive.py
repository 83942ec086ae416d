"""docker save / docker load through pydockerd: the CLI, docker-py and skopeo as independent judges."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import tarfile
import time
from pathlib import Path

from tests.distribution.support import seed, two_platforms
from tests.dockerd.conftest import Pydockerd
from tests.fixtures.registry import Registry
from tests.ocibuild import busybox_files, image


def _members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as tar:
        out = {}
        for m in tar:
            f = tar.extractfile(m) if m.isfile() else None
            out[m.name] = f.read() if f else b""
        return out


def _skopeo(*args: str) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(["skopeo", *args], check=False, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r


def test_save_format(pydockerd: Pydockerd, registry: Registry, tmp_path: Path) -> None:
    one = image([busybox_files()], config={"Cmd": ["/bin/sh"], "Labels": {"n": "1"}})
    two = image([busybox_files(), {"etc/two": b"2\n"}], config={"Cmd": ["/bin/sh"], "Labels": {"n": "2"}})
    seed(registry, one, "save/one:1", tmp_path)
    seed(registry, two, "save/two:1", tmp_path)
    a, b = f"{registry.host}/save/one:1", f"{registry.host}/save/two:1"
    pydockerd.docker("pull", a)
    pydockerd.docker("pull", b)
    pydockerd.docker("tag", a, "local/one:v1")

    out = tmp_path / "x.tar"
    pydockerd.docker("save", "-o", str(out), a, b, "local/one:v1")
    members = _members(out)
    names = list(members)
    assert names == sorted(names)  # containerd's exporter writes members sorted by name
    assert json.loads(members["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    for name, data in members.items():
        if name.startswith("blobs/sha256/") and data:
            assert hashlib.sha256(data).hexdigest() == name.rsplit("/", 1)[1]
    index = json.loads(members["index.json"])
    entries = [(m["digest"], m["annotations"]["io.containerd.image.name"]) for m in index["manifests"]]
    assert entries == [
        (one.digest, a),
        (two.digest, b),
        (one.digest, "docker.io/local/one:v1"),
    ]
    assert index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] == "1"
    docker = json.loads(members["manifest.json"])
    assert [sorted(e["RepoTags"]) for e in docker] == [sorted([a, "local/one:v1"]), [b]]
    config_one = one.manifest["config"]["digest"]  # type: ignore[index]
    assert docker[0]["Config"] == f"blobs/sha256/{config_one[7:]}"
    assert docker[0]["Layers"] == [f"blobs/sha256/{x['digest'][7:]}" for x in one.manifest["layers"]]  # type: ignore[index]

    # skopeo reads both faces of the archive: Docker's manifest.json and the OCI layout.
    inspected = json.loads(_skopeo("inspect", f"docker-archive:{out}:{b}").stdout)
    assert inspected["Labels"] == {"n": "2"}
    oci = json.loads(_skopeo("inspect", f"oci-archive:{out}:v1").stdout)  # ref.name is the tag alone
    assert oci["Digest"] == one.digest

    # By ID: no name in the archive; the save event names the target.
    pydockerd.docker("save", "-o", str(tmp_path / "id.tar"), config_one[7:19])
    by_id = _members(tmp_path / "id.tar")
    [entry] = json.loads(by_id["index.json"])["manifests"]
    assert "io.containerd.image.name" not in entry["annotations"]
    assert entry["annotations"]["containerd.io/distribution.source.127.0.0.1"] == "save/one"
    assert json.loads(by_id["manifest.json"])[0]["RepoTags"] is None
    until = str(int(time.time()) + 1)
    events = pydockerd.docker("events", "--since", "0", "--until", until, "--filter", "event=save",
                              "--format", "{{.Actor.ID}}").stdout.split()  # fmt: skip
    assert events == [one.digest, two.digest, one.digest, one.digest]


def test_save_partial_multi_platform_and_errors(pydockerd: Pydockerd, registry: Registry, tmp_path: Path) -> None:
    target = two_platforms()
    seed(registry, target, "save/multi:1", tmp_path)
    ref = f"{registry.host}/save/multi:1"
    pydockerd.docker("pull", "--platform", "linux/arm64", ref)
    c = pydockerd.client()
    data = b"".join(c.images.get(ref).save())
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        names = set(tar.getnames())
        index = json.load(tar.extractfile("index.json"))  # type: ignore[arg-type]
        docker = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
    amd, arm = target.images
    # The index whole, but only the arm64 manifest and content that were pulled.
    assert index["manifests"][0]["digest"] == target.digest
    assert {f"blobs/sha256/{d[7:]}" for d in (target.digest, arm.digest)} <= names
    assert f"blobs/sha256/{amd.digest[7:]}" not in names
    arm_config = arm.manifest["config"]["digest"]  # type: ignore[index]
    amd_config = amd.manifest["config"]["digest"]  # type: ignore[index]
    assert f"blobs/sha256/{arm_config[7:]}" in names
    assert f"blobs/sha256/{amd_config[7:]}" not in names
    assert docker[0]["Config"] == f"blobs/sha256/{arm_config[7:]}"

    status, _, body = pydockerd.request("GET", "/images/get?names=nosuch:1")
    assert status == 404
    assert json.loads(body) == {"message": "No such image: nosuch:1"}
    r = pydockerd.docker("save", "-o", str(tmp_path / "no.tar"), "nosuch", ok=False)
    assert "No such image: nosuch:latest" in r.stderr
    assert not (tmp_path / "no.tar").exists() or (tmp_path / "no.tar").stat().st_size == 0
    assert "Traceback" not in pydockerd.log()


def test_save_rmi_load(pydockerd: Pydockerd, registry: Registry, tmp_path: Path) -> None:
    one = image([busybox_files()], config={"Cmd": ["/bin/sh"], "Labels": {"n": "1"}})
    two = image([busybox_files(), {"etc/two": b"2\n"}], config={"Cmd": ["/bin/sh"], "Labels": {"n": "2"}})
    seed(registry, one, "load/one:1", tmp_path)
    seed(registry, two, "load/two:1", tmp_path)
    a, b = f"{registry.host}/load/one:1", f"{registry.host}/load/two:1"
    pydockerd.docker("pull", a)
    pydockerd.docker("pull", b)
    fmt = "{{.Repository}}:{{.Tag}} {{.ID}}"
    before = sorted(pydockerd.docker("images", "--no-trunc", "--format", fmt).stdout.splitlines())
    inspect_before = json.loads(pydockerd.docker("image", "inspect", a, b).stdout)

    archive = tmp_path / "x.tar"
    pydockerd.docker("save", "-o", str(archive), a, b)
    pydockerd.docker("rmi", a, b)
    assert pydockerd.docker("images", "-q").stdout == ""
    out = pydockerd.docker("load", "-i", str(archive)).stdout
    assert out.splitlines() == [f"Loaded image: {a}", f"Loaded image: {b}"]
    assert sorted(pydockerd.docker("images", "--no-trunc", "--format", fmt).stdout.splitlines()) == before
    after = json.loads(pydockerd.docker("image", "inspect", a, b).stdout)
    for x, y in zip(inspect_before, after, strict=True):
        for key in ("Id", "RepoTags", "RepoDigests", "Config", "RootFS", "Architecture", "Os", "Size"):
            assert x[key] == y[key], key
    # Loaded again: the same images, nothing new.
    assert pydockerd.docker("load", "-q", "-i", str(archive)).stdout.splitlines() == [
        f"Loaded image: {a}", f"Loaded image: {b}",
    ]  # fmt: skip
    assert len(pydockerd.docker("images", "-q").stdout.split()) == 2

    # docker-py: save one, remove it, load it from the bytes.
    c = pydockerd.client()
    data = b"".join(c.images.get(b).save(named=True))
    c.images.remove(b)
    [loaded] = c.images.load(data)
    assert loaded.id == two.manifest["config"]["digest"]  # type: ignore[index]
    assert loaded.tags == [b]
    assert loaded.labels == {"n": "2"}
    until = str(int(time.time()) + 1)
    events = pydockerd.docker("events", "--since", "0", "--until", until, "--filter", "event=load",
                              "--format", "{{.Actor.ID}}").stdout.split()  # fmt: skip
    assert events == [one.digest, two.digest, one.digest, two.digest, two.digest]


def test_load_by_id_is_dangling(pydockerd: Pydockerd, registry: Registry, tmp_path: Path) -> None:
    img = image([busybox_files()], config={"Cmd": ["/bin/sh"]})
    seed(registry, img, "load/anon:1", tmp_path)
    ref = f"{registry.host}/load/anon:1"
    pydockerd.docker("pull", ref)
    config = str(img.manifest["config"]["digest"])  # type: ignore[index]
    pydockerd.docker("save", "-o", str(tmp_path / "id.tar"), config[7:19])
    pydockerd.docker("rmi", ref)
    assert pydockerd.docker("load", "-i", str(tmp_path / "id.tar")).stdout.strip() == f"Loaded image ID: {config}"
    assert pydockerd.docker("images", "-q", "--no-trunc", "--filter", "dangling=true").stdout.split() == [config]


def test_load_what_skopeo_writes(pydockerd: Pydockerd, registry: Registry, tmp_path: Path) -> None:
    """skopeo's docker-archive (Docker's older form, no OCI layout) loads; ours goes back through skopeo."""
    img = image([busybox_files(), {"etc/sk": b"1\n"}], config={"Cmd": ["/bin/sh"], "Labels": {"by": "skopeo"}})
    seed(registry, img, "sk/app:1", tmp_path)
    archive = tmp_path / "sk.tar"
    _skopeo(
        "copy", "--src-tls-verify=false", f"docker://{registry.host}/sk/app:1", f"docker-archive:{archive}:sk/app:7"
    )
    out = pydockerd.docker("load", "-i", str(archive)).stdout
    assert out.strip() == "Loaded image: sk/app:7"
    [inspected] = json.loads(pydockerd.docker("image", "inspect", "sk/app:7").stdout)
    assert inspected["Id"] == img.manifest["config"]["digest"]  # type: ignore[index]
    assert inspected["Config"]["Labels"] == {"by": "skopeo"}

    # And what we save, skopeo copies into its own OCI layout (converting the config to OCI's type).
    ours = tmp_path / "ours.tar"
    pydockerd.docker("save", "-o", str(ours), "sk/app:7")
    _skopeo("copy", f"docker-archive:{ours}:sk/app:7", f"oci:{tmp_path / 'layout'}:x")
    index = json.loads((tmp_path / "layout" / "index.json").read_text())
    manifest = json.loads((tmp_path / "layout" / "blobs" / "sha256" / index["manifests"][0]["digest"][7:]).read_text())
    config = json.loads((tmp_path / "layout" / "blobs" / "sha256" / manifest["config"]["digest"][7:]).read_text())
    assert config["config"]["Labels"] == {"by": "skopeo"}
    assert config["rootfs"]["diff_ids"] == inspected["RootFS"]["Layers"]
