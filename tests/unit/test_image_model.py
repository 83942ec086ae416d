"""The pure image model: platforms, references, documents, challenges, gc labels, hosts directories."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pycontainerd import platforms
from pycontainerd.errors import ContainerdError, InvalidArgument, NotImplementedYet, ResourceExhausted
from pycontainerd.images import Descriptor, walk
from pycontainerd.images import mediatypes as mt
from pycontainerd.images.manifest import parse_config, parse_index, parse_manifest
from pycontainerd.reference import parse, parse_normalized
from pycontainerd.remotes.docker import parse_challenges
from pycontainerd.remotes.docker._hosts import host_config

D = "sha256:" + "a" * 64
E = "sha256:" + "b" * 64


@pytest.mark.parametrize(
    ("spec", "want"),
    [
        ("linux/amd64", "linux/amd64"),
        ("linux/x86_64", "linux/amd64"),
        ("linux/aarch64", "linux/arm64"),
        ("linux/arm64/v8", "linux/arm64"),
        ("linux/arm", "linux/arm/v7"),
        ("linux/armhf", "linux/arm/v7"),
        ("linux/armel", "linux/arm/v6"),
        ("linux/i386", "linux/386"),
        ("LINUX/AMD64", "linux/amd64"),
        ("arm64", "linux/arm64"),
    ],
)
def test_platform_normalisation(spec: str, want: str) -> None:
    assert platforms.format(platforms.parse(spec)) == want


@pytest.mark.parametrize("spec", ["", "linux/", "a/b/c/d", "linux/amd 64", "plan10/amd64/v1"])
def test_platform_rejects(spec: str) -> None:
    with pytest.raises(InvalidArgument):
        platforms.parse(spec)


def test_matchers_prefer_the_host() -> None:
    amd = platforms.only(platforms.parse("linux/amd64"))
    assert amd.match(platforms.parse("linux/386"))
    assert not amd.match(platforms.parse("linux/arm64"))
    assert amd.less(platforms.parse("linux/amd64"), platforms.parse("linux/386"))
    arm = platforms.only(platforms.parse("linux/arm64"))
    assert arm.match(platforms.parse("linux/arm/v7")) and not arm.match(platforms.parse("linux/amd64"))
    assert platforms.ALL.match(platforms.parse("windows/amd64"))


@given(st.sampled_from(["linux", "windows", "darwin"]), st.sampled_from(["amd64", "arm64", "386", "riscv64"]))
def test_platform_format_parse_round_trip(os_: str, arch: str) -> None:
    p = platforms.parse(f"{os_}/{arch}")
    assert platforms.parse(platforms.format(p)) == p
    assert platforms.from_oci(platforms.to_oci(p)) == p


@pytest.mark.parametrize(
    ("ref", "want"),
    [
        ("busybox", "docker.io/library/busybox:latest"),
        ("user/app:1", "docker.io/user/app:1"),
        ("index.docker.io/library/x", "docker.io/library/x:latest"),
        ("localhost:5000/a/b", "localhost:5000/a/b:latest"),
        ("127.0.0.1:5000/a:t@" + D, "127.0.0.1:5000/a:t@" + D),
        ("registry.example.com/x@" + D, "registry.example.com/x@" + D),
    ],
)
def test_reference_normalisation(ref: str, want: str) -> None:
    assert str(parse_normalized(ref)) == want


@pytest.mark.parametrize(
    "ref", ["", "UPPER/case", "a//b", "a:", "x@sha256:short", "host:port/a", "-a/b", "a/b:" + "t" * 200]
)
def test_reference_rejects(ref: str) -> None:
    with pytest.raises(InvalidArgument):
        parse_normalized(ref)


@given(st.text(max_size=80))
def test_reference_parser_only_raises_our_errors(text: str) -> None:
    try:
        r = parse(text)
    except InvalidArgument:
        return
    assert parse(str(r)) == r


def _manifest(**over: object) -> bytes:
    doc: dict[str, object] = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "config": {"mediaType": mt.OCI_CONFIG, "digest": D, "size": 10},
        "layers": [{"mediaType": mt.OCI_LAYER_GZIP, "digest": E, "size": 20}],
    }
    doc.update(over)
    return json.dumps(doc).encode()


def test_documents_parse_and_label() -> None:
    m = parse_manifest(_manifest(), mt.OCI_MANIFEST)
    assert m.config.digest == D and [x.digest for x in m.layers] == [E]
    desc = Descriptor(mt.OCI_MANIFEST, "sha256:" + "c" * 64, 100)
    labels = walk.child_gc_labels(desc, walk.children(desc, _manifest()))
    assert labels == {"containerd.io/gc.ref.content.config": D, "containerd.io/gc.ref.content.l.0": E}
    index = json.dumps(
        {
            "schemaVersion": 2,
            "manifests": [
                {
                    "mediaType": mt.OCI_MANIFEST,
                    "digest": D,
                    "size": 1,
                    "platform": {"os": "linux", "architecture": "arm64"},
                },
                {
                    "mediaType": mt.OCI_MANIFEST,
                    "digest": E,
                    "size": 1,
                    "platform": {"os": "linux", "architecture": "amd64"},
                },
            ],
        }
    ).encode()
    kids = list(parse_index(index, mt.OCI_INDEX).manifests)
    amd = platforms.only(platforms.parse("linux/amd64"))
    assert [k.digest for k in walk.filter_platforms(kids, amd)] == [E]
    assert [
        k.digest
        for k in walk.limit_manifests(kids, platforms.ordered(*map(platforms.parse, ["linux/amd64", "linux/arm64"])), 1)
    ] == [E]
    idesc = Descriptor(mt.OCI_INDEX, D, len(index))
    assert walk.child_gc_labels(idesc, kids) == {
        "containerd.io/gc.ref.content.m.0": D,
        "containerd.io/gc.ref.content.m.1": E,
    }
    assert parse_config(
        b'{"os":"linux","architecture":"amd64","rootfs":{"diff_ids":["' + D.encode() + b'"]}}'
    ).diff_ids == (D,)


@pytest.mark.parametrize(
    ("data", "media_type", "error"),
    [
        (b"[]", mt.OCI_MANIFEST, InvalidArgument),
        (b"\xff\xfe", mt.OCI_MANIFEST, InvalidArgument),
        (_manifest(mediaType=mt.DOCKER_MANIFEST), mt.OCI_MANIFEST, InvalidArgument),
        (_manifest(schemaVersion=1), mt.OCI_MANIFEST, NotImplementedYet),
        (_manifest(layers="nope"), mt.OCI_MANIFEST, InvalidArgument),
        (_manifest(config={"digest": D, "size": -1}), mt.OCI_MANIFEST, InvalidArgument),
        (_manifest(config={"digest": "md5:xyz", "size": 1}), mt.OCI_MANIFEST, InvalidArgument),
        (b"{}" + b" " * (5 << 20), mt.OCI_MANIFEST, ResourceExhausted),
        (_manifest(), mt.DOCKER_SCHEMA1_SIGNED, NotImplementedYet),
    ],
)
def test_hostile_documents(data: bytes, media_type: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        parse_manifest(data, media_type)


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=8),
        lambda c: st.lists(c) | st.dictionaries(st.text(max_size=8), c),
        max_leaves=12,
    )
)
def test_parsers_only_raise_our_errors(doc: object) -> None:
    data = json.dumps(doc).encode()
    for parse_doc in (
        lambda b: parse_manifest(b, mt.OCI_MANIFEST),
        lambda b: parse_index(b, mt.OCI_INDEX),
        parse_config,
    ):
        try:
            parse_doc(data)
        except ContainerdError:
            pass


def test_challenges() -> None:
    cs = parse_challenges(
        'Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a/b:pull", Basic realm="x"'
    )
    assert [c.scheme for c in cs] == ["bearer", "basic"]
    assert cs[0].params == {
        "realm": "https://auth.example.com/token",
        "service": "registry.example.com",
        "scope": "repository:a/b:pull",
    }
    assert parse_challenges('Bearer realm="a\\"b"')[0].params["realm"] == 'a"b'
    assert parse_challenges("") == []


@given(st.text(max_size=100))
def test_challenge_parser_never_raises(header: str) -> None:
    parse_challenges(header)


def test_hosts_directory(tmp_path: Path) -> None:
    d = tmp_path / "reg.example.com:5000"
    d.mkdir()
    (d / "a.crt").write_text("x")
    (d / "hosts.toml").write_text(
        'server = "https://reg.example.com:5000"\nca = "extra.pem"\nskip_verify = false\n[header]\nX-A = "1"\n'
    )
    cfg = host_config(str(tmp_path), "reg.example.com:5000")
    assert cfg.scheme == "https"
    assert cfg.ca_files == (str(d / "a.crt"), str(d / "extra.pem"))
    assert cfg.skip_verify is False and cfg.headers == {"X-A": "1"}
    assert host_config(str(tmp_path), "other").ca_files == ()
    (d / "hosts.toml").write_text("server = [")
    with pytest.raises(InvalidArgument):
        host_config(str(tmp_path), "reg.example.com:5000")
