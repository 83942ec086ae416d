"""Image removal where containers are involved, and removal of one platform of a multi-platform image.

:func:`check_users` is Docker's conflict rule, pure: what the containers
using an image allow a removal to do.  :func:`delete_platforms` takes some
platforms' manifests out of an image that keeps the rest.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence

from pycontainerd import platforms
from pycontainerd.client import Client
from pycontainerd.errors import InvalidArgument, NotFound
from pycontainerd.images import Descriptor
from pycontainerd.images import mediatypes as mt

from ._errors import Conflict
from ._events import EventLog
from ._manifests import PlatformManifest, PlatformNotFound, platform_manifests

__all__ = ["Users", "check_users", "delete_platforms"]

Users = Callable[[str], list[tuple[str, bool]]]  # image ID -> the containers using it: (container ID, running)


def _short(image_id: str) -> str:
    return image_id.partition(":")[2][:12]


def check_users(users: Sequence[tuple[str, bool]], image_id: str, name: str, *, by_id: bool, force: bool) -> bool:
    """Refuse to remove an image containers use (Docker's 409s); whether its content must stay.

    By ID: a running container's image never goes, a stopped one's only when
    forced (and then it goes).  By its last name: only when forced, and then
    the name goes while the image stays as a dangling one for the container.
    """
    if not users:
        return False
    if by_id:
        running = [c for c, up in users if up]
        if running:
            raise Conflict(
                f"conflict: unable to delete {_short(image_id)} (cannot be forced) - "
                f"image is being used by running container {running[0][:12]}"
            )
        if not force:
            raise Conflict(
                f"conflict: unable to delete {_short(image_id)} (must be forced) - "
                f"image is being used by stopped container {users[0][0][:12]}"
            )
        return False
    if not force:
        raise Conflict(
            f'conflict: unable to remove repository reference "{name}" (must force) - '
            f"container {users[0][0][:12]} is using its referenced image {_short(image_id)}"
        )
    return True


def delete_platforms(
    client: Client,
    target: Descriptor,
    name: str,
    wanted: Sequence[platforms.Platform],
    *,
    users: Users,
    events: EventLog,
    forget: Callable[[str], None],
) -> list[dict[str, str]]:
    """``docker rmi --platform``: the named platforms' manifests leave a multi-platform image, which stays.

    Each manifest's blob is deleted, so the collector takes its config and
    layers unless another image holds them; the index keeps naming it, as a
    pull of only some platforms leaves it.  ``forget`` drops the blob from
    the caller's document cache.
    """
    if not mt.is_index(target.media_type):
        raise InvalidArgument(f"{name} has a single platform: remove the image instead")
    entries, _ = platform_manifests(client.content, lambda _d: True, target)
    doomed: list[PlatformManifest] = []
    for p in wanted:
        matcher = platforms.only_strict(p)
        found = [e for e in entries if matcher.match(e.platform)]
        if not found:
            raise PlatformNotFound(name, p)
        doomed += [e for e in found if e not in doomed]
    for e in doomed:
        using = users(e.manifest.config.digest)
        if using:
            raise Conflict(
                f"conflict: unable to delete {_short(e.manifest.config.digest)} (must be forced) - "
                f"platform {platforms.format(e.platform)} is being used by container {using[0][0][:12]}"
            )
    records = []
    for e in doomed:
        with contextlib.suppress(NotFound):
            client.content.delete(e.desc.digest)
        forget(e.desc.digest)
        records.append({"Deleted": e.desc.digest})
        events.publish("image", "delete", e.manifest.config.digest, {"name": e.desc.digest})
    return records
