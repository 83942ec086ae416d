"""Reading a real Docker data root: Debian's dockerd pulls and builds into a private root, then stops; we read it.

The session's dockerd (tests/migrate/conftest.py) fills the root: three images that
share their base layers, one of them under three tags, and a classic-builder
multi-stage build whose last RUN deletes files from lower layers (a
whiteout and an opaque directory) and makes a hard link.  Then dockerd is
stopped and the root is read: tags and image ids as Docker reported them,
every layer rebuilt to its diff id, the root unchanged.  The hostile tests
damage a copy of that root.
"""

from __future__ import annotations

import gzip
import io
import itertools
import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from pycontainerd.errors import InvalidArgument
from pycontainerd.migrate import DockerStore, LayerStream, read_docker_root, verify_layers
from pycontainerd.mount import unmount
from tests.migrate.conftest import Filled
from tests.migrate.tree import checksum_tree


@pytest.fixture(scope="module")
def store(filled: Filled) -> DockerStore:
    return read_docker_root(filled.root)


def test_every_tag_with_its_image_id(filled: Filled, store: DockerStore) -> None:
    assert store.problems == []
    found = {r.name: r.image_id for r in store.references if r.tag is not None}
    assert found == filled.tags
    assert len(filled.tags) == 6
    base = filled.tags[next(t for t in filled.tags if t.endswith("/base:1"))]
    assert {t for t, i in filled.tags.items() if i == base} == {t for t in filled.tags if "/base:" in t}
    # a pull by tag also records the manifest digest it resolved to
    digests = [r for r in store.references if r.digest is not None]
    assert {r.image_id for r in digests} == {i for t, i in filled.tags.items() if t != "built:1"}


def test_images_and_layer_chains(filled: Filled, store: DockerStore) -> None:
    for image_id, diff_ids in filled.diff_ids.items():
        record = store.images[image_id]
        assert list(record.diff_ids) == diff_ids
        assert record.os == "linux" and record.architecture == "amd64"
        assert set(record.references) == {t for t, i in filled.tags.items() if i == image_id} | {
            r.name for r in store.references if r.image_id == image_id and r.digest
        }
        chain = store.layer_chain(record)
        assert [layer.diff_id for layer in chain] == diff_ids
        assert all(layer.parent == below.chain_id for below, layer in itertools.pairwise(chain))
    # three images share their two base layers
    bases = {store.images[i].layers[:2] for t, i in filled.tags.items() if t != "built:1"}
    assert len(bases) == 1
    built = store.images[filled.built]
    assert built.parent is not None and built.last_updated
    pulled = [layer for layer in store.layers.values() if layer.blobs]
    assert len(pulled) == 4  # the two base layers and app1's and app2's own
    assert all(b.repository.endswith(("/base", "/app1", "/app2")) for layer in pulled for b in layer.blobs)


def test_every_layer_rebuilds_to_its_diff_id_and_the_root_is_untouched(filled: Filled, store: DockerStore) -> None:
    before = checksum_tree(filled.root)
    for layer in store.layers.values():
        stream = LayerStream(layer)
        data = b"".join(stream)
        assert stream.result is not None and stream.result.digest == layer.diff_id
        assert len(data) == stream.result.size
    verify_layers(store)
    assert store.problems == []
    assert read_docker_root(filled.root).report() == []
    assert checksum_tree(filled.root) == before


def test_whiteouts_and_hard_links_come_back_as_recorded(filled: Filled, store: DockerStore) -> None:
    top = store.layers[store.images[filled.built].layers[-1]]
    assert (top.diff_dir / "etc" / "b").lstat().st_rdev == 0  # overlayfs whiteout on disk ...
    data = b"".join(LayerStream(top))
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert "etc/.wh.b" in members  # ... and Docker's whiteout name in the stream
    assert "opt/d/.wh..wh..opq" in members
    links = [m for m in members.values() if m.islnk()]
    assert {(m.name, m.linkname) for m in links} in ({("x/y/z", "x/hard")}, {("x/hard", "x/y/z")})
    assert members["x/empty"].size == 0 and members["x/empty"].isreg()
    # the first stage's RUN: a whiteout and a hard link in one directory
    stage = [layer for layer in store.layers.values() if layer.size == len(b"built\n")]
    assert len(stage) == 2  # that RUN and the COPY of its file into the second stage
    names = set()
    for layer in stage:
        with tarfile.open(fileobj=io.BytesIO(b"".join(LayerStream(layer)))) as tar:
            names |= {(m.name, m.linkname) for m in tar.getmembers()}
    assert {("etc/.wh.a", ""), ("etc/d", "etc/c"), ("etc/copied", "")} <= names


# -- hostile roots: a copy of the filled root, damaged ----------------------------


@pytest.fixture
def copy(filled: Filled, tmp_path: Path) -> Path:
    target = tmp_path / "root"
    subprocess.run(["cp", "-a", str(filled.root), str(target)], check=True)
    return target


def _image_dir(root: Path) -> Path:
    return root / "image" / "overlay2"


def test_a_config_whose_digest_does_not_match(filled: Filled, copy: Path) -> None:
    name = next(t for t in filled.tags if t.endswith("/app1:1"))
    victim = filled.tags[name]
    config = _image_dir(copy) / "imagedb" / "content" / "sha256" / victim.split(":", 1)[1]
    config.write_bytes(config.read_bytes() + b" ")  # still the same JSON, no longer the same digest
    store = read_docker_root(copy)
    assert victim not in store.images
    report = store.report()
    assert f"image {victim}: {json.dumps(str(config))}: contents have digest sha256:" in report[0]
    assert f"reference {name}: " in report[1] and "cannot be migrated" in report[1]
    assert len([line for line in report if line.startswith("reference ")]) == 2  # the tag and the pulled digest
    assert len(store.images) == len(read_docker_root(filled.root).images) - 1


def test_a_cache_id_that_climbs_out_of_the_root(filled: Filled, store: DockerStore, copy: Path) -> None:
    top = store.images[filled.built].layers[-1]
    cache_id = _image_dir(copy) / "layerdb" / "sha256" / top.split(":", 1)[1] / "cache-id"
    cache_id.write_text("../../../../../etc")
    damaged = read_docker_root(copy)
    report = damaged.report()
    assert report[0] == (
        f'layer {top}: {json.dumps(str(cache_id))}: "../../../../../etc" is not an overlay2 layer directory name'
    )
    assert f"image {filled.built}: " in report[1] and f"layer {top}: its layer store entry cannot be read" in report[1]
    assert report[2].startswith("reference built:1: ")
    assert len(report) == 3


def test_a_truncated_tar_split(filled: Filled, store: DockerStore, copy: Path) -> None:
    base = store.images[filled.built].layers[0]
    tar_split = _image_dir(copy) / "layerdb" / "sha256" / base.split(":", 1)[1] / "tar-split.json.gz"
    tar_split.write_bytes(tar_split.read_bytes()[: tar_split.stat().st_size // 2])
    damaged = read_docker_root(copy)
    assert damaged.problems == []  # the record is only read when the layer is rebuilt
    with pytest.raises(InvalidArgument, match=r"tar-split: the gzip stream is truncated"):
        b"".join(LayerStream(damaged.layers[base]))
    verify_layers(damaged)
    report = damaged.report()
    assert report[0].startswith(f"layer {base}: layer {base} ({json.dumps(str(tar_split))}): tar-split: ")
    assert damaged.images == {} and damaged.references == []  # every image stands on that base layer
    assert len([line for line in report if line.startswith("image ")]) == len(read_docker_root(filled.root).images)


def test_a_file_changed_in_a_diff_directory(filled: Filled, store: DockerStore, copy: Path) -> None:
    layer = store.layers[store.images[filled.built].layers[1]]  # etc/a, etc/b, opt/d/...
    changed = copy / "overlay2" / layer.cache_id / "diff" / "etc" / "b"
    changed.write_bytes(b"BB\n")  # same size, other bytes
    damaged = read_docker_root(copy).layers[layer.chain_id]
    with pytest.raises(InvalidArgument, match=r'file "etc/b": contents differ from the tar-split\'s CRC-64'):
        b"".join(LayerStream(damaged))
    with pytest.raises(InvalidArgument, match=r"the rebuilt tar stream has digest sha256:\w+, not its diff id"):
        b"".join(LayerStream(damaged, check_crc=False))
    changed.unlink()
    changed.symlink_to("/etc/hostname")
    with pytest.raises(InvalidArgument, match=r"etc/b\": is a symbolic link"):
        b"".join(LayerStream(damaged))


def test_a_vfs_root_and_schema1_leftovers(tmp_path: Path) -> None:
    root = tmp_path / "docker"
    content = root / "image" / "vfs" / "imagedb" / "content" / "sha256"
    content.mkdir(parents=True)
    (content / ("0" * 64)).write_text("{}")
    (root / "vfs" / "dir").mkdir(parents=True)
    (root / "graph").mkdir()
    (root / "repositories-vfs").write_text("{}")
    store = read_docker_root(root)
    assert store.images == {} and store.layers == {}
    assert store.report() == [
        f'graph driver vfs: "{root}/image/vfs": images of the vfs graph driver (1 images) are not migrated: '
        "only overlay2 is",
        f'schema1 leftovers: "{root}/graph": the pre-1.10 image store (schema1 era) is not migrated',
        f'schema1 leftovers: "{root}/repositories-vfs": the pre-1.10 image store (schema1 era) is not migrated',
        f'image store: "{root}/image/overlay2": no overlay2 image store in this root',
    ]


def test_links_bad_names_bad_json_and_broken_chains(filled: Filled, store: DockerStore, copy: Path) -> None:
    images = _image_dir(copy)
    repos = images / "repositories.json"
    shutil.move(repos, images / "elsewhere.json")
    repos.symlink_to("elsewhere.json")
    content = images / "imagedb" / "content" / "sha256"
    (content / "not-a-digest").write_text("{}")
    app2 = filled.tags[next(t for t in filled.tags if t.endswith("/app2:1"))]
    meta = images / "imagedb" / "metadata" / "sha256" / filled.built.split(":", 1)[1] / "parent"
    meta.write_text("sha256:short")
    top = store.images[app2].layers[-1]
    layer_dir = images / "layerdb" / "sha256" / top.split(":", 1)[1]
    (layer_dir / "diff").write_text("{not json")
    middle = store.images[filled.built].layers[1]  # below every image's own layers
    dist = images / "distribution" / "v2metadata-by-diffid" / "sha256"
    victim = next(dist.iterdir())
    victim.write_text("[{]")
    shutil.rmtree(images / "layerdb" / "sha256" / middle.split(":", 1)[1])
    damaged = read_docker_root(copy)
    report = damaged.report()
    assert f'layer {top}: {json.dumps(str(layer_dir / "diff"))}: diff id "{{not json" is not a sha256 digest' in report
    assert f"distribution metadata: {json.dumps(str(victim))}: not valid JSON" in "\n".join(report)
    assert (
        f"image sha256:not-a-digest: {json.dumps(str(content / 'not-a-digest'))}: the name is not a sha256 digest"
        in report
    )
    assert f"tags: {json.dumps(str(repos))}: is a symbolic link" in report
    assert any(line.startswith(f"image {filled.built}: ") and "layer" in line for line in report)
    broken_above = [line for line in report if f"parent layer {middle} is missing or broken" in line]
    assert broken_above  # the layers above the removed one
    assert damaged.images == {} and damaged.references == []


def test_a_read_only_bind_mount_of_the_root_reads_in_full(filled: Filled, tmp_path: Path) -> None:
    """Any write at all (even an access time) would fail with EROFS on the way."""
    target = tmp_path / "ro"
    target.mkdir()
    subprocess.run(["mount", "--bind", str(filled.root), str(target)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(target)], check=True)
        store = read_docker_root(target)
        verify_layers(store)
        assert store.report() == []
        assert len(store.images) == len(read_docker_root(filled.root).images)
    finally:
        unmount(target, detach=True)


def test_tar_split_of_real_layers_is_gzip_json_lines(store: DockerStore) -> None:
    layer = next(iter(store.layers.values()))
    lines = gzip.decompress(layer.tar_split.read_bytes()).splitlines()
    kinds = {json.loads(line)["type"] for line in lines}
    assert kinds == {1, 2}  # 1: file, 2: segment (as tar-split's storage package numbers them)
