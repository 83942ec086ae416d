"""Walking images: children, gc labels, platform filters, and the read helpers over a real local content store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pycontainerd import platforms
from pycontainerd.content import write_blob
from pycontainerd.content.local import LocalStore
from pycontainerd.errors import InvalidArgument, NotFound, ResourceExhausted
from pycontainerd.images import Descriptor
from pycontainerd.images import mediatypes as mt
from pycontainerd.images.walk import (
    GC_REF_PREFIX,
    check,
    child_gc_labels,
    children,
    config_for,
    filter_platforms,
    image_platforms,
    image_size,
    limit_manifests,
    manifest_for,
    walk,
)
from pycontainerd.platforms import Platform
from tests import ocibuild

P = platforms.parse
A, B, C, D, E = ("sha256:" + x * 64 for x in "abcde")
FILES = [{"etc/hello": b"hello\n"}, {"etc/world": b"world\n"}]


def desc(media_type: str, digest: str, size: int = 1, platform: str | None = None) -> Descriptor:
    return Descriptor(media_type, digest, size, platform=P(platform) if platform else None)


# children and gc labels


def test_children_of_each_kind() -> None:
    img = ocibuild.image(FILES)
    m = Descriptor(img.media_type, img.digest, len(img.manifest_bytes))
    kids = children(m, img.manifest_bytes)
    assert [k.media_type for k in kids] == [mt.OCI_CONFIG, mt.OCI_LAYER_GZIP, mt.OCI_LAYER_GZIP]
    multi = ocibuild.multi([("amd64", ""), ("arm64", "")], FILES)
    i = Descriptor(multi.media_type, multi.digest, len(multi.index_bytes))
    assert [k.platform for k in children(i, multi.index_bytes)] == [P("linux/amd64"), P("linux/arm64")]
    for blob in (mt.OCI_LAYER_GZIP, mt.OCI_CONFIG, "application/octet-stream", ""):
        assert children(Descriptor(blob, A, 3), b"not json") == []


def test_children_refuses_a_document_that_is_not_what_its_descriptor_says() -> None:
    img = ocibuild.image(FILES)
    with pytest.raises(InvalidArgument, match="the document says mediaType"):
        children(Descriptor(mt.DOCKER_MANIFEST, img.digest, 1), img.manifest_bytes)


def test_gc_labels_of_a_manifest() -> None:
    kids = [desc(mt.OCI_CONFIG, A), desc(mt.OCI_LAYER_GZIP, B), desc(mt.OCI_LAYER_ZSTD, C)]
    assert child_gc_labels(desc(mt.OCI_MANIFEST, E), kids) == {
        "containerd.io/gc.ref.content.config": A,
        "containerd.io/gc.ref.content.l.0": B,
        "containerd.io/gc.ref.content.l.1": C,
    }


def test_gc_labels_of_an_index() -> None:
    kids = [desc(mt.OCI_MANIFEST, A), desc(mt.DOCKER_MANIFEST, B), desc(mt.OCI_INDEX, C), desc(mt.OCI_MANIFEST, D)]
    assert child_gc_labels(desc(mt.OCI_INDEX, E), kids) == {
        "containerd.io/gc.ref.content.m.0": A,
        "containerd.io/gc.ref.content.m.1": B,
        "containerd.io/gc.ref.content.0": C,  # a nested index is not a manifest
        "containerd.io/gc.ref.content.m.2": D,
    }


def test_gc_labels_follow_the_childs_kind_as_containerd_does() -> None:
    # an attestation manifest: its "layers" are in-toto statements, not layers
    kids = [
        desc(mt.OCI_CONFIG, A),
        desc("application/vnd.in-toto+json", B),
        desc(mt.DOCKER_LAYER_GZIP, C),
        desc("application/vnd.in-toto+json", D),
        desc(mt.CONTAINERD_CHECKPOINT_CONFIG, E),
    ]
    assert child_gc_labels(desc(mt.OCI_MANIFEST, E), kids) == {
        f"{GC_REF_PREFIX}.config": A,
        f"{GC_REF_PREFIX}.0": B,
        f"{GC_REF_PREFIX}.l.0": C,
        f"{GC_REF_PREFIX}.1": D,
        f"{GC_REF_PREFIX}.config1": E,  # the second use of an unnumbered key is numbered
    }
    assert child_gc_labels(desc(mt.OCI_LAYER, A), []) == {}


# filtering and ordering index entries


ENTRIES = [
    desc(mt.OCI_MANIFEST, A, platform="linux/arm/v7"),
    desc(mt.OCI_MANIFEST, B),
    desc(mt.OCI_MANIFEST, C, platform="linux/386"),
    desc(mt.OCI_MANIFEST, D, platform="linux/amd64"),
    desc(mt.OCI_MANIFEST, E, platform="windows/amd64"),
]


def digests(ds: list[Descriptor]) -> list[str]:
    return [d.digest[7] for d in ds]


def test_filter_platforms_keeps_matches_and_entries_without_a_platform() -> None:
    amd = platforms.only(P("linux/amd64"))
    assert digests(filter_platforms(ENTRIES, amd)) == ["b", "c", "d"]
    assert digests(filter_platforms(ENTRIES, platforms.ALL)) == ["a", "b", "c", "d", "e"]
    assert filter_platforms([desc(mt.OCI_LAYER_GZIP, A), desc(mt.OCI_CONFIG, B)], amd) == [
        desc(mt.OCI_LAYER_GZIP, A),
        desc(mt.OCI_CONFIG, B),
    ]


def test_limit_manifests_orders_by_preference_then_index_order() -> None:
    amd = platforms.only(P("linux/amd64"))
    kept = filter_platforms(ENTRIES, amd)
    assert digests(limit_manifests(kept, amd, 0)) == ["d", "c", "b"]  # no platform sorts last
    assert digests(limit_manifests(kept, amd, 1)) == ["d"]
    assert digests(limit_manifests(kept, amd, 2)) == ["d", "c"]
    assert digests(limit_manifests(kept, amd, -1)) == ["d", "c", "b"]
    assert digests(limit_manifests(ENTRIES, platforms.ALL, 2)) == ["a", "c"]
    either = platforms.any_of(P("linux/386"), P("linux/arm/v7"))
    assert digests(limit_manifests(ENTRIES, either, 0)) == ["a", "c", "d", "e", "b"]
    assert limit_manifests([], amd, 0) == []
    with pytest.raises(NotFound, match="no match for platform in manifest"):
        limit_manifests([], amd, 1)


# the read helpers, over a local content store


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "content")


def put(store: LocalStore, data: bytes) -> str:
    digest = ocibuild.sha(data)
    write_blob(store, "test-" + digest, data, digest)
    return digest


def put_all(store: LocalStore, blobs: dict[str, bytes], skip: frozenset[str] = frozenset()) -> None:
    for d, data in blobs.items():
        if d not in skip:
            put(store, data)


def put_doc(store: LocalStore, media_type: str, obj: dict[str, Any]) -> Descriptor:
    data = json.dumps(obj).encode()
    return Descriptor(media_type, put(store, data), len(data))


def multi_target(store: LocalStore, archs: list[tuple[str, str]], docker: bool = False) -> tuple[Descriptor, Any]:
    img = ocibuild.multi(archs, FILES, docker)
    put_all(store, img.blobs)
    return Descriptor(img.media_type, img.digest, len(img.index_bytes)), img


def manifest_desc(img: ocibuild.Image) -> Descriptor:
    return Descriptor(img.media_type, img.digest, len(img.manifest_bytes))


def total(img: ocibuild.Image) -> int:
    return sum(len(data) for data in img.blobs.values())


def test_manifest_for_picks_the_platform(store: LocalStore) -> None:
    target, img = multi_target(store, [("arm64", ""), ("amd64", ""), ("arm", "v7")])
    arm64, amd64, arm = img.images
    d, m = manifest_for(store, target, platforms.only(P("linux/amd64")))
    assert d.digest == amd64.digest and d.platform == P("linux/amd64")
    assert m.config.digest in amd64.blobs
    assert manifest_for(store, target, platforms.only(P("linux/arm64")))[0].digest == arm64.digest
    with pytest.raises(NotFound):
        manifest_for(store, target, platforms.only(P("linux/arm/v6")))  # a v6 machine does not run v7
    assert manifest_for(store, target, platforms.only(P("linux/arm/v8")))[0].digest == arm.digest
    assert manifest_for(store, target, platforms.ordered(P("linux/arm/v7"), P("linux/amd64")))[0].digest == arm.digest
    assert manifest_for(store, target, platforms.ALL)[0].digest == arm64.digest  # the first, with no preference
    with pytest.raises(NotFound, match=f"^no match for platform in manifest {target.digest}$"):
        manifest_for(store, target, platforms.only(P("linux/s390x")))


def test_docker_manifest_list(store: LocalStore) -> None:
    target, img = multi_target(store, [("amd64", ""), ("arm64", "")], docker=True)
    d, m = manifest_for(store, target, platforms.only(P("linux/arm64")))
    assert d.media_type == mt.DOCKER_MANIFEST and m.config.media_type == mt.DOCKER_CONFIG
    assert d.digest == img.images[1].digest


def test_a_manifest_target_is_taken_whatever_its_platform(store: LocalStore) -> None:
    img = ocibuild.image(FILES, "arm64")
    put_all(store, img.blobs)
    d, m = manifest_for(store, manifest_desc(img), platforms.only(P("linux/amd64")))
    assert d == manifest_desc(img) and len(m.layers) == 2
    assert config_for(store, manifest_desc(img), platforms.only(P("linux/amd64"))).platform == P("linux/arm64")


def test_an_entry_without_platform_is_judged_by_its_config(store: LocalStore) -> None:
    arm = ocibuild.image(FILES, "arm", "v6")
    amd = ocibuild.image(FILES, "amd64")
    put_all(store, {**arm.blobs, **amd.blobs})
    entries = [{k: v for k, v in i.descriptor().items() if k != "platform"} for i in (arm, amd)]
    target = put_doc(store, mt.OCI_INDEX, {"schemaVersion": 2, "manifests": entries})
    # the best entry is the first one (nothing to prefer); its config's arm (no variant: arm/v7) is not amd64's
    with pytest.raises(NotFound, match="no match for platform"):
        manifest_for(store, target, platforms.only(P("linux/amd64")))
    # an arm/v7 host takes it: only os and architecture of the config count
    assert manifest_for(store, target, platforms.only(P("linux/arm/v7")))[0].digest == arm.digest
    # an entry with a matching platform wins over one without
    entries.append(amd.descriptor())
    target = put_doc(store, mt.OCI_INDEX, {"schemaVersion": 2, "manifests": entries})
    assert manifest_for(store, target, platforms.only(P("linux/amd64")))[0].platform == P("linux/amd64")


def test_nested_indexes(store: LocalStore) -> None:
    inner, img = multi_target(store, [("amd64", ""), ("arm64", "")])
    target = put_doc(
        store,
        mt.OCI_INDEX,
        {
            "schemaVersion": 2,
            "manifests": [{"mediaType": inner.media_type, "digest": inner.digest, "size": inner.size}],
        },
    )
    d, _ = manifest_for(store, target, platforms.only(P("linux/arm64")))
    assert d.digest == img.images[1].digest
    arm64 = img.images[1]
    assert image_size(store, target, platforms.only(P("linux/arm64"))) == target.size + inner.size + total(arm64)
    assert image_platforms(store, target) == [P("linux/amd64"), P("linux/arm64")]


def test_missing_content_is_not_found_without_falling_back(store: LocalStore) -> None:
    target, img = multi_target(store, [("amd64", ""), ("386", "")])
    store.delete(img.images[0].digest)
    with pytest.raises(NotFound):
        manifest_for(store, target, platforms.only(P("linux/amd64")))  # not the 386 one instead
    assert manifest_for(store, target, platforms.only(P("linux/386")))[0].digest == img.images[1].digest
    with pytest.raises(NotFound):
        manifest_for(store, desc(mt.OCI_INDEX, A), platforms.ALL)


def test_unexpected_target_type(store: LocalStore) -> None:
    with pytest.raises(NotFound, match="unexpected media type"):
        manifest_for(store, desc(mt.OCI_LAYER_GZIP, A), platforms.ALL)


def test_config_for(store: LocalStore) -> None:
    target, _ = multi_target(store, [("amd64", ""), ("arm", "v7")])
    c = config_for(store, target, platforms.only(P("linux/arm/v7")))
    assert c.platform == Platform("linux", "arm", "v7")
    assert len(c.diff_ids) == 2 and c.raw["config"] == {"Cmd": ["/bin/sh"]}


def test_image_size_is_target_manifest_config_and_layers(store: LocalStore) -> None:
    target, img = multi_target(store, [("amd64", ""), ("arm64", "")])
    amd = img.images[0]
    assert image_size(store, target, platforms.only(P("linux/amd64"))) == target.size + total(amd)
    assert image_size(store, target, platforms.ALL) == target.size + total(amd)  # the first only
    single = img.images[1]
    assert image_size(store, manifest_desc(single), platforms.only(P("linux/amd64"))) == total(single)
    with pytest.raises(NotFound, match="no match for platform in manifest"):
        image_size(store, target, platforms.only(P("windows/amd64")))


def test_image_size_needs_no_layers(store: LocalStore) -> None:
    """Sizes come from descriptors, so an image whose layers were not pulled still has one."""
    target, img = multi_target(store, [("amd64", "")])
    for layer in json.loads(img.images[0].manifest_bytes)["layers"]:
        store.delete(layer["digest"])
    assert image_size(store, target, platforms.ALL) == target.size + total(img.images[0])


def test_image_platforms(store: LocalStore) -> None:
    target, _ = multi_target(store, [("amd64", ""), ("arm64", "v8"), ("arm", "v7"), ("amd64", "")])
    # as written in the index (arm64/v8 stays), each once
    assert image_platforms(store, target) == [P("linux/amd64"), Platform("linux", "arm64", "v8"), P("linux/arm/v7")]
    img = ocibuild.image(FILES, "arm", "v6")
    put_all(store, img.blobs)
    # from a config: os and architecture only, normalised
    assert image_platforms(store, manifest_desc(img)) == [Platform("linux", "arm", "v7")]
    assert image_platforms(store, desc(mt.OCI_LAYER_GZIP, A)) == []


def test_check_complete(store: LocalStore) -> None:
    target, _ = multi_target(store, [("amd64", ""), ("arm64", "")])
    r = check(store, target, platforms.only(P("linux/amd64")))
    assert r.available and r.complete and r.missing == []
    assert len(r.required) == 3 and r.present == r.required
    assert r.required[0].media_type == mt.OCI_CONFIG


def test_check_missing_layer(store: LocalStore) -> None:
    target, img = multi_target(store, [("amd64", "")])
    layer = json.loads(img.images[0].manifest_bytes)["layers"][1]["digest"]
    store.delete(layer)
    r = check(store, target, platforms.ALL)
    assert r.available and not r.complete  # containerd: the manifest was found, so required is all there is
    assert [d.digest for d in r.missing] == [layer]
    assert len(r.present) == 2 and len(r.required) == 3


def test_check_without_the_platforms_manifest(store: LocalStore) -> None:
    img = ocibuild.multi([("amd64", ""), ("arm64", "")], FILES)
    put_all(store, img.blobs, skip=frozenset(img.images[1].blobs))
    target = Descriptor(img.media_type, img.digest, len(img.index_bytes))
    r = check(store, target, platforms.only(P("linux/arm64")))
    assert (r.available, r.required, r.present, r.missing) == (False, [target], [], [target])
    r = check(store, target, platforms.only(P("linux/s390x")))
    assert (r.available, r.required, r.missing) == (False, [target], [target])
    nothing = desc(mt.OCI_INDEX, A)
    assert check(store, nothing, platforms.ALL).missing == [nothing]


def test_check_raises_on_a_corrupt_document(store: LocalStore) -> None:
    target = Descriptor(mt.OCI_MANIFEST, put(store, b"{not json"), 9)
    with pytest.raises(InvalidArgument, match="malformed JSON"):
        check(store, target, platforms.ALL)


def test_walk_yields_each_descriptor_once_parents_first(store: LocalStore) -> None:
    target, img = multi_target(store, [("amd64", ""), ("arm64", "")])
    seen = list(walk(store, target))
    assert seen[0] == target
    assert {d.digest for d in seen} == set(img.blobs)
    assert len(seen) == len(img.blobs)  # the platforms share their layers: listed once
    amd = img.images[0]
    manifest = json.loads(amd.manifest_bytes)
    assert [d.digest for d in seen[1:5]] == [
        amd.digest,
        manifest["config"]["digest"],
        *(x["digest"] for x in manifest["layers"]),
    ]


def test_walk_filters_index_entries(store: LocalStore) -> None:
    target, img = multi_target(store, [("amd64", ""), ("arm64", "")])
    arm = img.images[1]
    got = {d.digest for d in walk(store, target, platforms.only(P("linux/arm64")))}
    assert got == {target.digest, *arm.blobs}
    assert img.images[0].digest not in got


def test_walk_needs_the_documents_not_the_blobs(store: LocalStore) -> None:
    target, img = multi_target(store, [("amd64", "")])
    config = json.loads(img.images[0].manifest_bytes)["config"]["digest"]
    store.delete(config)
    assert config in {d.digest for d in walk(store, target)}
    store.delete(img.images[0].digest)
    with pytest.raises(NotFound):
        list(walk(store, target))


def test_documents_over_the_limit_are_not_read(store: LocalStore) -> None:
    huge = Descriptor(mt.OCI_MANIFEST, A, 64 << 20)
    with pytest.raises(ResourceExhausted, match="over the limit"):
        list(walk(store, huge))
