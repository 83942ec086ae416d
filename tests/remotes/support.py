"""Test images pushed with our own pusher, and the resolvers that reach the test registries."""

from __future__ import annotations

import functools
import io
from collections.abc import Callable
from typing import BinaryIO

from pycontainerd.images import Descriptor
from pycontainerd.remotes import Pusher
from tests.ocibuild import Image, MultiImage, busybox_files, image, sha


def desc(media_type: str, data: bytes) -> Descriptor:
    return Descriptor(media_type, sha(data), len(data))


def opener(data: bytes) -> Callable[[], BinaryIO]:
    return lambda: io.BytesIO(data)


@functools.cache
def busybox_image(marker: bytes = b"") -> Image:
    """busybox in one layer, plus a small layer of its own so that images differ when wanted."""
    layers = [busybox_files()] + ([{"etc/marker": marker}] if marker else [])
    return image(layers)


def push_image(pusher: Pusher, img: Image, mount_from: tuple[str, ...] = ()) -> list[str]:
    """Blobs first (config, layers), then the manifest; the pusher's answers in that order."""
    m = img.manifest
    layers = m["layers"]
    assert isinstance(layers, list)
    out = []
    for child in [m["config"], *layers]:
        assert isinstance(child, dict)
        data = img.blobs[child["digest"]]
        out.append(pusher.push(desc(child["mediaType"], data), opener(data), mount_from))
    out.append(pusher.push(desc(img.media_type, img.manifest_bytes), opener(img.manifest_bytes)))
    return out


def push_multi(pusher: Pusher, multi: MultiImage) -> None:
    for img in multi.images:
        push_image(pusher, img)
    data = multi.index_bytes
    assert pusher.push(desc(multi.media_type, data), opener(data)) == "pushed"
