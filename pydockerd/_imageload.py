"""``POST /images/load``: an archive's images stored, unpacked for this host and named, or nothing at all.

Everything the load writes is held by one lease until the image records
exist: a refused archive (see :mod:`.archive.load`), a layer that does not
unpack, or a platform the archive lacks leaves no blob, snapshot or record
behind once the lease goes.  Unpacking comes before naming, so a named
image is always whole.  Names an archive gives move as a pull's do: an image
losing its last name stays as a dangling one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from pycontainerd import platforms
from pycontainerd.client import Client
from pycontainerd.errors import AlreadyExists, ContainerdError, InvalidArgument, NotFound
from pycontainerd.images import Image
from pycontainerd.leases import Resource

from ._manifests import PlatformNotFound, pick, platform_manifests
from .archive.load import ArchiveReader, Loaded

__all__ = ["LoadResult", "load_archive"]


@dataclass(frozen=True)
class LoadResult:
    """One image recorded by a load."""

    record: Image
    named: bool


def _has(client: Client) -> Callable[[str], bool]:
    def has(digest: str) -> bool:
        try:
            client.content.info(digest)
        except NotFound:
            return False
        return True

    return has


def load_archive(
    client: Client,
    chunks: Iterable[bytes],
    *,
    platform: platforms.Platform | None,
    unpack: bool,
    snapshotter: str,
    record: Callable[[list[Loaded]], list[LoadResult]],
) -> list[LoadResult]:
    """Read the archive in ``chunks``, unpack what this host (or ``platform``) runs, then ``record`` the names."""
    with client.lease() as leased:
        lease_id = leased.lease_id or ""

        def keep(digest: str) -> None:
            leased.leases.add_resource(lease_id, Resource(id=digest, type="content"))

        reader = ArchiveReader(leased.content, keep)
        try:
            for chunk in chunks:
                reader.feed(chunk)
            loaded = reader.finish()
        except BaseException:
            reader.abort()
            raise
        if not loaded:
            raise InvalidArgument("invalid image archive: it names no image")
        has = _has(leased)
        done: set[str] = set()
        for item in loaded:
            if item.target.digest in done:
                continue
            done.add(item.target.digest)
            entries, _ = platform_manifests(leased.content, has, item.target)
            label = item.name or item.target.digest
            try:
                chosen = pick(entries, platform, label)
            except PlatformNotFound:
                if platform is not None:
                    raise NotFound(
                        f"image {label} was loaded, but doesn't provide the requested platform "
                        f"({platforms.format(platform)})"
                    ) from None
                continue  # nothing for this host: stored, not unpacked, as Docker does
            if unpack:
                try:
                    leased.unpack(Image(name=label, target=chosen.desc), snapshotter=snapshotter)
                except ContainerdError as e:
                    raise InvalidArgument(f"invalid image archive: {label} cannot be unpacked: {e.message}") from None
        return record(loaded)


def without_names(labels: dict[str, str], drop: Iterable[str]) -> dict[str, str]:
    return {k: v for k, v in labels.items() if k not in set(drop)}


def create_or_move(client: Client, image: Image, hold: Callable[[Image], bool]) -> Image:
    """Create ``image``'s record, or point an existing one of the name at its target (held first)."""
    try:
        return client.images.create(image)
    except AlreadyExists:
        old = client.images.get(image.name)
        if old.target.digest == image.target.digest:
            return old
        held = hold(old)
        try:
            return client.images.update(replace(old, target=image.target), ["target"])
        except BaseException:
            if held:
                with contextlib.suppress(NotFound):
                    client.images.delete(f"moby-dangling@{old.target.digest}")
            raise
