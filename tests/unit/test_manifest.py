"""Image documents from outside: media types, descriptors, indexes, manifests and configs, hostile ones above all."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pycontainerd.errors import ContainerdError, InvalidArgument, NotImplementedYet, ResourceExhausted
from pycontainerd.images import Descriptor
from pycontainerd.images import mediatypes as mt
from pycontainerd.images.manifest import (
    MAX_MANIFEST_SIZE,
    parse_config,
    parse_descriptor,
    parse_index,
    parse_manifest,
)
from pycontainerd.platforms import Platform

A = "sha256:" + "a" * 64
B = "sha256:" + "b" * 64
C = "sha256:" + "c" * 64


def doc(obj: Any) -> bytes:
    return json.dumps(obj).encode()


def manifest(**over: Any) -> dict[str, Any]:
    m: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "config": {"mediaType": mt.OCI_CONFIG, "digest": A, "size": 10},
        "layers": [
            {"mediaType": mt.OCI_LAYER_GZIP, "digest": B, "size": 20},
            {"mediaType": mt.OCI_LAYER_NONDIST_GZIP, "digest": C, "size": 30, "urls": ["https://example.com/c"]},
        ],
    }
    m.update(over)
    return {k: v for k, v in m.items() if v is not ...}


def index(**over: Any) -> dict[str, Any]:
    i: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_INDEX,
        "manifests": [
            {
                "mediaType": mt.OCI_MANIFEST,
                "digest": A,
                "size": 1,
                "platform": {"os": "linux", "architecture": "amd64"},
            },
            {
                "mediaType": mt.OCI_MANIFEST,
                "digest": B,
                "size": 2,
                "platform": {"os": "linux", "architecture": "arm", "variant": "v7"},
                "annotations": {"x": "y"},
            },
        ],
        "annotations": {"org.opencontainers.image.ref.name": "1"},
    }
    i.update(over)
    return {k: v for k, v in i.items() if v is not ...}


# media types


@pytest.mark.parametrize(
    ("media_type", "kinds"),
    [
        (mt.OCI_INDEX, {"index"}),
        (mt.DOCKER_MANIFEST_LIST, {"index"}),
        (mt.OCI_MANIFEST, {"manifest"}),
        (mt.DOCKER_MANIFEST + "; charset=utf-8", {"manifest"}),
        (mt.OCI_CONFIG, {"config"}),
        (mt.DOCKER_CONFIG, {"config"}),
        (mt.OCI_LAYER, {"layer"}),
        (mt.OCI_LAYER_GZIP, {"layer"}),
        (mt.OCI_LAYER_ZSTD, {"layer"}),
        (mt.OCI_LAYER_NONDIST_ZSTD, {"layer", "nondist"}),
        (mt.OCI_LAYER_GZIP_ENCRYPTED, {"layer"}),
        (mt.DOCKER_LAYER, {"layer"}),
        (mt.DOCKER_LAYER_GZIP + "+encrypted", {"layer"}),
        (mt.DOCKER_FOREIGN_LAYER_GZIP, {"layer", "nondist"}),
        (mt.DOCKER_FOREIGN_LAYER, {"layer", "nondist"}),
        (mt.DOCKER_SCHEMA1_SIGNED, {"schema1"}),
        (mt.DOCKER_SCHEMA1_MANIFEST, {"schema1"}),
        (mt.CONTAINERD_CHECKPOINT_CONFIG, {"known_config"}),
        ("application/vnd.in-toto+json", set()),
        ("application/octet-stream", set()),
        ("", set()),
    ],
)
def test_media_type_kinds(media_type: str, kinds: set[str]) -> None:
    got = {
        name
        for name, pred in [
            ("index", mt.is_index),
            ("manifest", mt.is_manifest),
            ("config", mt.is_config),
            ("layer", mt.is_layer),
            ("schema1", mt.is_schema1),
            ("nondist", mt.is_non_distributable),
        ]
        if pred(media_type)
    }
    assert got == kinds - {"known_config"}
    assert mt.is_known_config(media_type) == bool(kinds & {"config", "known_config"})
    assert mt.is_known(media_type) == bool(kinds - {"schema1", "nondist"})


@pytest.mark.parametrize(
    ("media_type", "compression"),
    [
        (mt.OCI_LAYER, ""),
        (mt.OCI_LAYER_GZIP, "gzip"),
        (mt.OCI_LAYER_ZSTD, "zstd"),
        (mt.OCI_LAYER_NONDIST_GZIP, "gzip"),
        (mt.OCI_LAYER_GZIP_ENCRYPTED, "gzip"),
        (mt.DOCKER_LAYER, "unknown"),
        (mt.DOCKER_LAYER_GZIP, "gzip"),
        (mt.DOCKER_FOREIGN_LAYER_GZIP, "gzip"),
        (mt.DOCKER_LAYER_GZIP + "+encrypted", ""),
    ],
)
def test_diff_compression(media_type: str, compression: str) -> None:
    assert mt.diff_compression(media_type) == compression


def test_diff_compression_of_a_non_layer() -> None:
    with pytest.raises(NotImplementedYet, match="unrecognised layer media type"):
        mt.diff_compression(mt.OCI_CONFIG)


# descriptors


def test_descriptor_fields() -> None:
    d = parse_descriptor(
        {
            "mediaType": mt.OCI_MANIFEST,
            "digest": A,
            "size": 0,
            "annotations": {"a": "b"},
            "platform": {"os": "windows", "architecture": "amd64", "os.version": "10.0", "os.features": ["f"]},
            "urls": ["https://x/y"],
            "artifactType": "ignored",
        }
    )
    assert d == Descriptor(
        mt.OCI_MANIFEST, A, 0, {"a": "b"}, Platform("windows", "amd64", "", "10.0", ("f",)), ("https://x/y",)
    )
    assert parse_descriptor({"digest": B, "size": 3}) == Descriptor("", B, 3)


@pytest.mark.parametrize(
    ("obj", "says"),
    [
        ([], "expected a JSON object"),
        ({"mediaType": 1, "digest": A, "size": 1}, "mediaType must be a string"),
        ({"mediaType": mt.OCI_CONFIG, "size": 1}, "digest must be a string"),
        ({"digest": "sha256:abc", "size": 1}, "invalid digest"),
        ({"digest": "md5:" + "a" * 32, "size": 1}, "invalid digest"),
        ({"digest": "sha256:" + "A" * 64, "size": 1}, "invalid digest"),
        ({"digest": "../../etc/passwd", "size": 1}, "invalid digest"),
        ({"digest": A}, "size must be"),
        ({"digest": A, "size": -1}, "size must be"),
        ({"digest": A, "size": 1.0}, "size must be"),
        ({"digest": A, "size": "1"}, "size must be"),
        ({"digest": A, "size": True}, "size must be"),
        ({"digest": A, "size": 1 << 63}, "size must be"),
        ({"digest": A, "size": 1, "annotations": {"a": 1}}, "annotations"),
        ({"digest": A, "size": 1, "annotations": []}, "annotations"),
        ({"digest": A, "size": 1, "platform": "linux/amd64"}, "platform"),
        ({"digest": A, "size": 1, "platform": {"os": 1}}, "platform os must be a string"),
        ({"digest": A, "size": 1, "urls": "https://x"}, "urls"),
        ({"digest": A, "size": 1, "urls": [1]}, "urls"),
    ],
)
def test_descriptor_rejects(obj: object, says: str) -> None:
    with pytest.raises(InvalidArgument, match=says) as e:
        parse_descriptor(obj, "manifest layer 2")
    assert str(e.value).startswith("manifest layer 2: ")


# indexes and manifests


def test_oci_manifest() -> None:
    m = parse_manifest(doc(manifest(annotations={"k": "v"})), mt.OCI_MANIFEST)
    assert (m.schema_version, m.media_type) == (2, mt.OCI_MANIFEST)
    assert m.config == Descriptor(mt.OCI_CONFIG, A, 10)
    assert [x.digest for x in m.layers] == [B, C]
    assert m.layers[1].urls == ("https://example.com/c",)
    assert m.annotations == {"k": "v"}


def test_docker_manifest_and_list() -> None:
    m = parse_manifest(doc(manifest(mediaType=mt.DOCKER_MANIFEST)), mt.DOCKER_MANIFEST)
    assert m.media_type == mt.DOCKER_MANIFEST
    i = parse_index(doc(index(mediaType=mt.DOCKER_MANIFEST_LIST)), mt.DOCKER_MANIFEST_LIST)
    assert i.media_type == mt.DOCKER_MANIFEST_LIST and len(i.manifests) == 2


def test_oci_index() -> None:
    i = parse_index(doc(index()), mt.OCI_INDEX)
    assert [d.platform for d in i.manifests] == [Platform("linux", "amd64"), Platform("linux", "arm", "v7")]
    assert i.manifests[1].annotations == {"x": "y"}
    assert i.annotations == {"org.opencontainers.image.ref.name": "1"}


def test_media_type_may_be_left_out_by_either_side() -> None:
    assert parse_manifest(doc(manifest(mediaType=...)), mt.OCI_MANIFEST).media_type == mt.OCI_MANIFEST
    assert parse_index(doc(index()), "").media_type == mt.OCI_INDEX
    assert parse_index(doc(index(mediaType=...)), mt.OCI_INDEX + "; charset=utf-8").media_type == mt.OCI_INDEX
    assert parse_index(doc(index(mediaType=..., manifests=[])), "").manifests == ()


def test_missing_lists_are_empty() -> None:
    assert parse_manifest(doc(manifest(layers=None)), mt.OCI_MANIFEST).layers == ()
    assert parse_index(doc(index(manifests=...)), mt.OCI_INDEX).manifests == ()


@pytest.mark.parametrize(
    ("data", "media_type", "says"),
    [
        (b"", mt.OCI_MANIFEST, "malformed JSON"),
        (b"{", mt.OCI_MANIFEST, "malformed JSON"),
        (b"[]", mt.OCI_MANIFEST, "expected a JSON object"),
        (b'"manifest"', mt.OCI_MANIFEST, "expected a JSON object"),
        (b"\xff\xfe{}", mt.OCI_MANIFEST, "not UTF-8"),
        (b"[" * 100_000, mt.OCI_MANIFEST, "nested too deeply"),
        (doc(manifest(layers=[{"digest": A, "size": 1, "annotations": {"a": "\ud800"}}])), mt.OCI_MANIFEST, "Unicode"),
        (doc(manifest(mediaType=mt.DOCKER_MANIFEST)), mt.OCI_MANIFEST, "the document says mediaType"),
        (doc(manifest(mediaType=mt.OCI_INDEX)), mt.OCI_MANIFEST, "the document says mediaType"),
        (doc(manifest(mediaType=7)), mt.OCI_MANIFEST, "mediaType must be a string"),
        (doc(manifest(mediaType=mt.OCI_INDEX)), "", "is not a manifest media type"),
        (doc(manifest()), mt.OCI_CONFIG, "is not a manifest media type"),
        (doc(manifest()), mt.OCI_INDEX, "is not a manifest media type"),
        (doc(manifest(mediaType=..., manifests=[])), mt.OCI_MANIFEST, "expected a manifest but found an index"),
        (doc(manifest(schemaVersion=3)), mt.OCI_MANIFEST, "schemaVersion must be 2"),
        (doc(manifest(schemaVersion="2")), mt.OCI_MANIFEST, "schemaVersion must be 2"),
        (doc(manifest(schemaVersion=...)), mt.OCI_MANIFEST, "schemaVersion must be 2"),
        (doc(manifest(config=...)), mt.OCI_MANIFEST, "no config"),
        (doc(manifest(config=[])), mt.OCI_MANIFEST, "manifest config: expected a JSON object"),
        (doc(manifest(config={"digest": A, "size": -1})), mt.OCI_MANIFEST, "manifest config: size"),
        (doc(manifest(layers="nope")), mt.OCI_MANIFEST, "layers must be a list"),
        (
            doc(manifest(layers=[{"digest": "sha256:x", "size": 1}])),
            mt.OCI_MANIFEST,
            "manifest layer 0: invalid digest",
        ),
        (doc(manifest(annotations={"a": None})), mt.OCI_MANIFEST, "annotations"),
    ],
)
def test_hostile_manifests(data: bytes, media_type: str, says: str) -> None:
    with pytest.raises(InvalidArgument, match=says) as e:
        parse_manifest(data, media_type)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(
    ("obj", "media_type", "says"),
    [
        (index(mediaType=mt.DOCKER_MANIFEST_LIST), mt.OCI_INDEX, "the document says mediaType"),
        (index(mediaType=mt.OCI_MANIFEST), "", "is not an index media type"),
        (index(), mt.OCI_MANIFEST, "is not an index media type"),
        (index(mediaType=..., config={"digest": A, "size": 1}), mt.OCI_INDEX, "expected an index but found a manifest"),
        (index(mediaType=..., layers=[]), mt.OCI_INDEX, "expected an index but found a manifest"),
        (index(manifests={}), mt.OCI_INDEX, "manifests must be a list"),
        (index(manifests=[None]), mt.OCI_INDEX, "index entry 0: expected a JSON object"),
        (index(manifests=[{"digest": A, "size": 1, "platform": []}]), mt.OCI_INDEX, "index entry 0: platform"),
        (index(schemaVersion=True), mt.OCI_INDEX, "schemaVersion must be 2"),
    ],
)
def test_hostile_indexes(obj: dict[str, Any], media_type: str, says: str) -> None:
    with pytest.raises(InvalidArgument, match=says):
        parse_index(doc(obj), media_type)


@pytest.mark.parametrize(
    ("data", "media_type"),
    [
        (doc(manifest()), mt.DOCKER_SCHEMA1_SIGNED),
        (doc(manifest()), mt.DOCKER_SCHEMA1_MANIFEST + "; charset=utf-8"),
        (doc(manifest(mediaType=mt.DOCKER_SCHEMA1_MANIFEST)), mt.OCI_MANIFEST),
        (doc({"schemaVersion": 1, "name": "x", "tag": "1", "fsLayers": [{"blobSum": A}]}), mt.DOCKER_MANIFEST),
        (doc({"schemaVersion": 2, "fsLayers": []}), mt.OCI_MANIFEST),
        (doc(manifest(schemaVersion=1)), ""),
    ],
)
def test_schema1_is_refused(data: bytes, media_type: str) -> None:
    with pytest.raises(NotImplementedYet, match=r"^Docker schema 1 manifests are not supported: "):
        parse_manifest(data, media_type)
    with pytest.raises(NotImplementedYet, match=r"^Docker schema 1 manifests are not supported: "):
        parse_index(data, "" if mt.is_manifest(media_type) else media_type)


def test_size_limit_is_containerds() -> None:
    assert MAX_MANIFEST_SIZE == 4 * 1048 * 1048
    body = doc(manifest())
    at_limit = body + b" " * (MAX_MANIFEST_SIZE - len(body))
    assert parse_manifest(at_limit, mt.OCI_MANIFEST).config.digest == A
    with pytest.raises(ResourceExhausted, match=f"over the limit of {MAX_MANIFEST_SIZE}"):
        parse_manifest(at_limit + b" ", mt.OCI_MANIFEST)
    with pytest.raises(ResourceExhausted, match="over the limit"):
        parse_index(doc(index()) + b" " * MAX_MANIFEST_SIZE, mt.OCI_INDEX)


# configs


def test_config() -> None:
    raw = {
        "architecture": "arm",
        "variant": "v6",
        "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": [A, B]},
    }
    c = parse_config(doc(raw))
    assert c.platform == Platform("linux", "arm", "v6")
    assert c.diff_ids == (A, B)
    assert c.raw == raw
    assert parse_config(b"{}").diff_ids == ()


@pytest.mark.parametrize(
    ("obj", "says"),
    [
        ([], "expected a JSON object"),
        ({"os": 1}, "os must be a string"),
        ({"os.features": {}}, "os.features"),
        ({"rootfs": []}, "rootfs must be an object"),
        ({"rootfs": {"diff_ids": A}}, "diff_ids must be a list"),
        ({"rootfs": {"diff_ids": [1]}}, "diff_ids must be a list of digests"),
        ({"rootfs": {"diff_ids": [A, "sha256:nope"]}}, "diff id 1: invalid digest"),
    ],
)
def test_hostile_configs(obj: object, says: str) -> None:
    with pytest.raises(InvalidArgument, match=says) as e:
        parse_config(doc(obj))
    assert str(e.value).startswith("image config")


# anything at all


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=12), c, max_size=4),
    max_leaves=16,
)
KEYS = ["schemaVersion", "mediaType", "config", "layers", "manifests", "annotations", "fsLayers", "rootfs", "os"]


def _only_our_errors(data: bytes) -> None:
    for media_type in (mt.OCI_MANIFEST, mt.DOCKER_MANIFEST, "", mt.DOCKER_SCHEMA1_SIGNED):
        try:
            parse_manifest(data, media_type)
        except ContainerdError:
            pass
    for media_type in (mt.OCI_INDEX, mt.DOCKER_MANIFEST_LIST, ""):
        try:
            parse_index(data, media_type)
        except ContainerdError:
            pass
    try:
        parse_config(data)
    except ContainerdError:
        pass


@given(JSON)
def test_any_json_raises_only_our_errors(obj: object) -> None:
    _only_our_errors(json.dumps(obj).encode())


@given(st.binary(max_size=64))
def test_any_bytes_raise_only_our_errors(data: bytes) -> None:
    _only_our_errors(data)


@given(st.sampled_from(KEYS), JSON, st.booleans())
def test_a_valid_document_with_one_field_replaced_raises_only_our_errors(key: str, value: object, inner: bool) -> None:
    for base in (manifest(), index()):
        obj = dict(base)
        if inner and base.get("layers"):
            obj["layers"] = [{**base["layers"][0], key: value}]
        elif inner:
            obj["manifests"] = [{**base["manifests"][0], "platform": {key: value}}]
        else:
            obj[key] = value
        _only_our_errors(doc(obj))


@given(st.sampled_from(["digest", "size", "mediaType", "annotations", "platform", "urls"]), JSON)
def test_descriptor_raises_only_invalid_argument(key: str, value: object) -> None:
    try:
        d = parse_descriptor({"mediaType": mt.OCI_LAYER, "digest": A, "size": 1, key: value})
    except InvalidArgument:
        return
    assert isinstance(d.size, int) and d.size >= 0
