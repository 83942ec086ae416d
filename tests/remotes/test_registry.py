"""Resolve, fetch and push against Debian's docker-registry over plain HTTP."""

from __future__ import annotations

import os
import threading

import pytest

from pycontainerd.errors import InvalidArgument, NotFound
from pycontainerd.images import Descriptor
from pycontainerd.images import mediatypes as mt
from pycontainerd.remotes.docker import DockerResolver, HostOptions
from tests.fixtures.registry import Registry
from tests.ocibuild import MultiImage, image, sha

from .support import busybox_image, desc, opener, push_image, push_multi


def test_push_resolve_fetch(registry: Registry) -> None:
    img = busybox_image()
    ref = f"{registry.host}/team/busybox:1"
    with DockerResolver() as r:
        assert push_image(r.pusher(ref), img) == ["pushed", "pushed", "pushed"]
        assert push_image(r.pusher(ref), img) == ["exists", "exists", "exists"]

        name, root = r.resolve(ref)
        assert name == ref
        assert root == Descriptor(mt.OCI_MANIFEST, img.digest, len(img.manifest_bytes))
        assert r.resolve(f"{registry.host}/team/busybox@{img.digest}")[1].digest == img.digest

        f = r.fetcher(ref)
        with f.fetch(root) as s:
            assert s.read() == img.manifest_bytes
        for digest, data in img.blobs.items():
            if digest == img.digest:
                continue  # the manifest: fetched above, through /manifests/
            with f.fetch(Descriptor(mt.OCI_LAYER_GZIP, digest, len(data))) as s:
                buf = bytearray(len(data) + 10)
                view, got = memoryview(buf), 0
                while n := s.readinto(view[got:]):
                    got += n
                assert bytes(buf[:got]) == data
                assert s.readinto(view) == 0


def test_fetch_with_offset(registry: Registry) -> None:
    img = busybox_image()
    ref = f"{registry.host}/resume/busybox:1"
    with DockerResolver() as r:
        push_image(r.pusher(ref), img)
        layer = max(img.blobs.values(), key=len)
        d = desc(mt.OCI_LAYER_GZIP, layer)
        for offset in (1, 1000, len(layer) - 1, len(layer)):
            with r.fetcher(ref).fetch(d, offset) as s:
                assert s.read() == layer[offset:]
        with r.fetcher(ref).fetch(d) as s:
            assert s.read(10) == layer[:10]  # closed early: the next request must not see the rest
        with r.fetcher(ref).fetch(d, 10) as s:
            assert s.read() == layer[10:]


def test_parallel_fetches_share_the_resolver(registry: Registry) -> None:
    blobs = [os.urandom(200_000 + i) for i in range(8)]
    ref = f"{registry.host}/parallel/blobs:1"
    with DockerResolver() as r:
        p = r.pusher(ref)
        for b in blobs:
            p.push(desc(mt.OCI_LAYER, b), opener(b))
        f, errors = r.fetcher(ref), []

        def fetch(b: bytes) -> None:
            for _ in range(3):
                with f.fetch(desc(mt.OCI_LAYER, b)) as s:
                    if s.read() != b:
                        errors.append(sha(b))

        threads = [threading.Thread(target=fetch, args=(b,)) for b in blobs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []


def test_chunked_upload(registry: Registry) -> None:
    big = os.urandom(300_001)
    ref = f"{registry.host}/chunks/blob:1"
    with DockerResolver(HostOptions(chunk_size=64 << 10)) as r:
        assert r.pusher(ref).push(desc(mt.OCI_LAYER, big), opener(big)) == "pushed"
        with r.fetcher(ref).fetch(desc(mt.OCI_LAYER, big)) as s:
            assert s.read() == big


def test_wrong_digest_is_refused_by_the_registry(registry: Registry) -> None:
    data = b"the real bytes"
    lie = Descriptor(mt.OCI_LAYER, sha(b"other bytes"), len(data))
    with DockerResolver() as r, pytest.raises(InvalidArgument, match=r"DIGEST_INVALID") as e:
        r.pusher(f"{registry.host}/lie/blob:1").push(lie, opener(data))
    assert registry.host in str(e.value)


def test_cross_repository_mount(registry: Registry) -> None:
    img = busybox_image()
    with DockerResolver() as r:
        push_image(r.pusher(f"{registry.host}/src/busybox:1"), img)
        answers = push_image(
            r.pusher(f"{registry.host}/dst/busybox:1"), img, mount_from=(f"{registry.host}/src/busybox", "nowhere/x")
        )
        assert answers == ["mounted", "mounted", "pushed"]
        # A repository lacking the blob: the registry opens an ordinary upload instead.
        other = busybox_image(b"other\n")
        assert (
            push_image(r.pusher(f"{registry.host}/dst2/busybox:1"), other, mount_from=("nowhere/x",)) == ["pushed"] * 4
        )
        assert r.resolve(f"{registry.host}/dst/busybox:1")[1].digest == img.digest


def test_index_and_docker_media_types(registry: Registry) -> None:
    multi = MultiImage([busybox_image(b"amd64\n"), image([{"etc/arch": b"arm64\n"}], "arm64", "v8")])
    docker = image([{"etc/x": b"x"}], docker=True)
    with DockerResolver() as r:
        push_multi(r.pusher(f"{registry.host}/multi/busybox:1"), multi)
        assert r.resolve(f"{registry.host}/multi/busybox:1")[1] == Descriptor(
            mt.OCI_INDEX, multi.digest, len(multi.index_bytes)
        )
        with r.fetcher(f"{registry.host}/multi/busybox:1").fetch(desc(mt.OCI_INDEX, multi.index_bytes)) as s:
            assert s.read() == multi.index_bytes
        push_image(r.pusher(f"{registry.host}/docker/x:1"), docker)
        assert r.resolve(f"{registry.host}/docker/x:1")[1].media_type == mt.DOCKER_MANIFEST


def test_push_by_digest_without_tag(registry: Registry) -> None:
    img = busybox_image()
    with DockerResolver() as r:
        push_image(r.pusher(f"{registry.host}/bydigest/busybox@{img.digest}"), img)
        assert r.resolve(f"{registry.host}/bydigest/busybox@{img.digest}")[1].digest == img.digest


def test_not_found(registry: Registry) -> None:
    with DockerResolver() as r:
        push_image(r.pusher(f"{registry.host}/there/busybox:1"), busybox_image())
        for ref in (f"{registry.host}/there/busybox:2", f"{registry.host}/absent/busybox:1"):
            with pytest.raises(NotFound) as e:
                r.resolve(ref)
            assert ref in str(e.value) and "not found" in str(e.value)
        missing = desc(mt.OCI_LAYER, b"never pushed")
        with pytest.raises(NotFound, match="not found"):
            r.fetcher(f"{registry.host}/there/busybox:1").fetch(missing)
