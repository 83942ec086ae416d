"""``docker push``: an image record's content sent to its registry, with Docker's progress messages.

The push runs here, over the Content API (as Docker's containerd store runs
its own), so that any descriptor can be sent: a multi-platform image whose
content is only partly here is pushed as the one manifest that is whole, as
Docker does, rather than as an index the registry would refuse.  A lease
holds what is being sent for the length of the push.  A migrated image's
layer blobs are made first (:mod:`pycontainerd.migrate.ondemand`), shown
as ``Compressing`` rows.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass

from pycontainerd import platforms
from pycontainerd.client import Client, RegistryOptions
from pycontainerd.content.helpers import ensure_labels
from pycontainerd.errors import InvalidArgument, NotFound
from pycontainerd.images import Image
from pycontainerd.leases import Resource
from pycontainerd.migrate.ondemand import COMPRESSED, COMPRESSING, materialize
from pycontainerd.reference import Reference
from pycontainerd.transfer import Progress, ProgressFunc, PushOptions, distribution_source_label, push_order
from pycontainerd.transfer import push as transfer_push

from ._auth import AuthConfig
from ._events import EventLog
from ._manifests import platform_manifests, push_target
from ._progress import Message, PushReporter, aux_message, progress_bar, short_id
from ._refs import familiar, familiar_name, is_dangling, parse_docker, with_tag

__all__ = ["PushJob", "prepare_push", "run_push"]


@dataclass(frozen=True)
class PushJob:
    """A push checked before its stream starts: the repository and the records (tags) to send."""

    repository: Reference
    records: tuple[Image, ...]
    platform: platforms.Platform | None
    auth: AuthConfig | None


def prepare_push(
    client: Client, name: str, tag: str, platform: platforms.Platform | None, auth: AuthConfig | None
) -> PushJob:
    """The records ``name`` (and ``tag``) name; 404 when there are none, 400 for a bad reference."""
    if not name:
        raise InvalidArgument("repository name must have at least one component")
    given = with_tag(name, tag)
    ref = parse_docker(given)
    if "@" in given or ":" in given.rsplit("/", 1)[-1]:
        try:
            record = client.images.get(str(ref))
        except NotFound:
            raise NotFound(f"tag does not exist: {familiar(ref)}") from None
        return PushJob(ref, (record,), platform, auth)
    # No tag: every tag of the repository, as `docker push --all-tags`.
    records = []
    for r in client.images.list():
        if is_dangling(r.name, r.target.digest):
            continue
        with contextlib.suppress(InvalidArgument):
            if parse_docker(r.name).name == ref.name:
                records.append(r)
    if not records:
        raise NotFound(f"An image does not exist locally with the tag: {familiar_name(ref)}")
    records.sort(key=lambda r: r.name)
    return PushJob(ref, tuple(records), platform, auth)


def _add_source(_key: str, old: str, new: str) -> str:
    """A source label lists repositories, comma-separated; ``new`` joins them once."""
    repos = [r for r in old.split(",") if r]
    return ",".join([*repos, new] if new not in repos else repos)


def _has(client: Client) -> Callable[[str], bool]:
    def has(digest: str) -> bool:
        try:
            client.content.info(digest)
        except NotFound:
            return False
        return True

    return has


def _compressing(emit: Callable[[Message], None]) -> ProgressFunc:
    """A migrated image's layers being made, as Docker-style rows: ``Compressing`` with progress, ``Compressed``."""
    lock = threading.Lock()

    def report(p: Progress) -> None:
        if not p.name.startswith("layer-") or p.event not in (COMPRESSING, COMPRESSED):
            return
        layer = short_id(p.name.removeprefix("layer-"))
        with lock:
            if p.event == COMPRESSING:
                detail = {"current": p.progress, "total": p.total}
                emit(
                    {
                        "status": "Compressing",
                        "progressDetail": detail,
                        "progress": progress_bar(p.progress, p.total),
                        "id": layer,
                    }
                )
            else:
                emit({"status": "Compressed", "progressDetail": {}, "id": layer})

    return report


def run_push(
    client: Client, job: PushJob, emit: Callable[[Message], None], events: EventLog, insecure: set[str]
) -> None:
    """Push each record of ``job``, reporting Docker's messages to ``emit``."""
    emit({"status": f"The push refers to repository [{job.repository.name}]"})
    credentials = job.auth.credentials() if job.auth else None
    registry = RegistryOptions(
        plain_http=job.repository.domain in insecure,
        credentials=(lambda _host: credentials) if credentials else None,
    )
    for record in job.records:
        _push_one(client, record, job, registry=registry, emit=emit, events=events)


def _push_one(
    client: Client,
    record: Image,
    job: PushJob,
    *,
    registry: RegistryOptions,
    emit: Callable[[Message], None],
    events: EventLog,
) -> None:
    ref = parse_docker(record.name)
    # A migrated image's layer blobs are made first (pydockerd runs on the daemon's machine, as root).
    record = materialize(client, record, progress=_compressing(emit))
    has = _has(client)
    entries, missing = platform_manifests(client.content, has, record.target)
    target = push_target(record.target, entries, missing, job.platform, familiar(ref))
    source_key, _ = distribution_source_label(str(ref))

    def mounted_from(digest: str) -> str:
        with contextlib.suppress(NotFound):
            sources = client.content.info(digest).labels.get(source_key, "")
            return next((s for s in sources.split(",") if s and s != ref.path), "")
        return ""

    reporter = PushReporter(emit, mounted_from)
    with client.lease() as leased:
        order = push_order(leased.content, target, platforms.ALL)
        lease_id = leased.lease_id or ""
        for desc in order:
            leased.leases.add_resource(lease_id, Resource(id=desc.digest, type="content"))
        with registry.resolver() as resolver:
            transfer_push(resolver, str(ref), leased.content, target, PushOptions(), progress=reporter)
        # The blobs are in this repository now too: a later push elsewhere on the registry mounts them from here.
        _, repo = distribution_source_label(str(ref))
        for desc in order:
            with contextlib.suppress(NotFound):
                ensure_labels(leased.content, desc.digest, {source_key: repo}, _add_source)
    tag = ref.tag or ref.digest
    if ref.tag:
        emit({"status": f"{ref.tag}: digest: {target.digest} size: {target.size}"})
    emit(aux_message({"Tag": tag, "Digest": target.digest, "Size": target.size}))
    events.publish("image", "push", familiar(ref), {"name": familiar_name(ref)})
