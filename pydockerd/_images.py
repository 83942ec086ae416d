"""Images in Docker's terms, on containerd's image records and content store.

Each containerd image record in the namespace is one name (the full
normalised reference) pointing at a manifest or index.  Docker's view groups
them by image ID — the digest of the config of the platform in use (this
host's, or the one platform whose content is here) — so an ID has RepoTags
(familiar names) and RepoDigests (``name@target digest``).  A record named
``moby-dangling@<digest>`` keeps an image that lost its last name, as in
Docker's containerd store.  All calls block (gRPC); the API runs them in
threads.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from pycontainerd import platforms
from pycontainerd.client import Client, RegistryOptions
from pycontainerd.errors import AlreadyExists, InvalidArgument, NotFound
from pycontainerd.images import Descriptor, Image
from pycontainerd.images.identity import chain_id
from pycontainerd.images.manifest import MAX_CONFIG_SIZE
from pycontainerd.images.walk import image_platforms, image_size, manifest_for
from pycontainerd.reference import Reference

from ._auth import AuthConfig
from ._errors import Conflict, NoSuchImage
from ._events import EventLog
from ._filters import Filters, bool_filter, glob_match, label_match
from ._imagedelete import check_users, delete_platforms
from ._imageload import LoadResult, create_or_move, load_archive
from ._imageprune import Candidate, prune
from ._imagepush import PushJob, prepare_push, run_push
from ._imagesave import SaveJob, prepare_save, save_chunks
from ._imageviews import Documents, Group, ImageView, Resolved, config_labels, parse_time, rfc3339
from ._manifests import PlatformNotFound, parse_platform
from ._progress import Message, PullReporter
from ._refs import dangling_name, familiar, familiar_name, is_dangling, looks_like_id, parse_docker, with_tag
from ._version import at_least
from .archive.load import Loaded

__all__ = ["IMAGE_FILTERS", "ImageService", "ImageView", "PullJob"]

IMAGE_FILTERS = ("dangling", "label", "label!", "reference")
_NAME_LABELS = ("io.containerd.image.name", "org.opencontainers.image.ref.name")


@dataclass(frozen=True)
class PullJob:
    """A pull checked and ready to run: the reference, platform and credentials."""

    ref: Reference
    platform: platforms.Platform | None
    auth: AuthConfig | None


class ImageService:
    """Docker's image operations over one namespace of a containerd."""

    def __init__(
        self,
        client: Client,
        *,
        insecure_registries: Sequence[str] = (),
        unpack: bool = True,
        snapshotter: str = "",
        events: EventLog | None = None,
        users: Callable[[str], Sequence[str | tuple[str, bool]]] | None = None,
        running: Callable[[str], bool] | None = None,
    ) -> None:
        self._client = client
        self._events = events if events is not None else EventLog()
        self._insecure = set(insecure_registries)
        self._unpack = unpack
        self._snapshotter = snapshotter
        self._documents = Documents(client.content)
        # Name changes (tag, pull, delete) are read-modify-write on records: one at a time.
        self._names = threading.Lock()
        # Image ID -> the containers using it (their IDs, or (ID, running) pairs); container ID -> whether it
        # runs, for bare IDs.  The container service provides both.
        self._users_fn = users
        self._running = running
        self._pruning = threading.Lock()

    def _users(self, image_id: str) -> list[tuple[str, bool]]:
        """The containers using ``image_id``, each with whether it runs."""
        if self._users_fn is None or not image_id:
            return []
        out = []
        for u in self._users_fn(image_id):
            if isinstance(u, str):
                out.append((u, bool(self._running and self._running(u))))
            else:
                out.append((u[0], u[1]))
        return out

    # -- reading ------------------------------------------------------------

    def _read_config(self, desc: Descriptor) -> Mapping[str, Any]:
        if desc.size > MAX_CONFIG_SIZE:
            raise InvalidArgument(f"image config {desc.digest} is too large")
        try:
            doc = json.loads(self._documents.read(desc.digest))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise InvalidArgument(f"image config {desc.digest} is not JSON") from None
        if not isinstance(doc, dict):
            raise InvalidArgument(f"image config {desc.digest} is not a JSON object")
        return doc

    def _resolve_target(self, target: Descriptor, wanted: platforms.Platform | None = None) -> Resolved | None:
        """The platform in use: ``wanted`` (strictly), else this host's if its content is here, else the first whose is."""
        documents = self._documents
        matchers: list[platforms.Matcher] = [platforms.default_matcher()]
        if wanted is not None:
            matchers = [platforms.only_strict(wanted)]
        else:
            with contextlib.suppress(NotFound, InvalidArgument):
                matchers += [platforms.only_strict(p) for p in image_platforms(documents, target)]
        for matcher in matchers:
            try:
                desc, manifest = manifest_for(documents, target, matcher)
                config = self._read_config(manifest.config)
                self._layers_here(manifest.layers, config)
                size = image_size(documents, target, matcher)
            except NotFound:
                continue
            os_, arch = str(config.get("os", "")), str(config.get("architecture", ""))
            platform = platforms.Platform(os_, arch, str(config.get("variant", "")))
            return Resolved(desc, manifest, manifest.config.digest, config, platform, size)
        return None

    def _layers_here(self, layers: Sequence[Descriptor], config: Mapping[str, Any]) -> None:
        """NotFound unless each layer's blob is here, or the image is unpacked (its top snapshot exists).

        An image whose layers live only in snapshots is whole, as containerd
        keeps one after ``discard_unpacked_layers``: a migrated image is one.
        """
        try:
            for layer in layers:
                self._client.content.info(layer.digest)
            return
        except NotFound:
            rootfs = config.get("rootfs")
            diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
            if not isinstance(diff_ids, list) or len(diff_ids) != len(layers):
                raise
        self._client.snapshotter(self._snapshotter).stat(chain_id([str(d) for d in diff_ids]))

    def views(self) -> list[ImageView]:
        """Every record whose content for some platform is here."""
        out = []
        for record in self._client.images.list():
            resolved = self._resolve_target(record.target)
            if resolved is not None:
                out.append(ImageView(record, resolved))
        return out

    def _groups(self) -> dict[str, Group]:
        groups: dict[str, Group] = {}
        for view in self.views():
            groups.setdefault(view.id, Group()).views.append(view)
        return groups

    def _view(self, record: Image) -> ImageView | None:
        resolved = self._resolve_target(record.target)
        return ImageView(record, resolved) if resolved else None

    def resolve(self, ref_or_id: str) -> tuple[ImageView, list[ImageView], bool]:
        """The image ``ref_or_id`` names, all records with its ID, and whether it was named by ID.

        A name is normalised (``busybox`` is ``docker.io/library/busybox:latest``);
        ``name@digest`` matches a record of that repository whose target has the digest;
        an ID is ``sha256:<hex>`` or a unique prefix of the hex.  NoSuchImage otherwise.
        """
        wanted_id = looks_like_id(ref_or_id)
        ref: Reference | None = None
        if not (ref_or_id.startswith("sha256:") and wanted_id):
            try:
                ref = parse_docker(ref_or_id)
            except InvalidArgument:
                if wanted_id is None:
                    raise
        if ref is not None:
            view = self._by_name(ref)
            if view is not None:
                same = [v for v in self.views() if v.id == view.id]
                return view, same, False
        if wanted_id is not None:
            groups = [g for i, g in self._groups().items() if i.partition(":")[2].startswith(wanted_id)]
            if len(groups) > 1:
                raise InvalidArgument(f"ambiguous image ID prefix {ref_or_id!r}: it matches {len(groups)} images")
            if groups:
                views = groups[0].views
                return (groups[0].named or views)[0], views, True
        raise NoSuchImage(familiar(ref) if ref is not None else ref_or_id)

    def _by_name(self, ref: Reference) -> ImageView | None:
        if ref.digest and not ref.tag:
            for record in self._client.images.list():
                if record.target.digest == ref.digest and record.name.startswith(ref.name + ":"):
                    return self._view(record)
            return None
        try:
            record = self._client.images.get(str(ref))
        except NotFound:
            return None
        return self._view(record)

    # -- list, inspect, history --------------------------------------------

    def summaries(self, filters: Filters, version: str) -> list[dict[str, Any]]:
        """``GET /images/json``: one summary per image ID, newest first."""
        dangling = bool_filter(filters, "dangling")
        patterns = filters.get("reference", [])
        summaries = []
        for group in self._groups().values():
            named = group.named
            if dangling is not None and dangling != (not named):
                continue
            labels = config_labels(group.first.resolved.config)
            if not all(label_match(s, labels) for s in filters.get("label", [])):
                continue
            if any(label_match(s, labels) for s in filters.get("label!", [])):
                continue
            if patterns:
                named = [v for v in named if v.reference and _ref_matches(patterns, v.reference)]
                if not named:
                    continue
            summaries.append(self._summary(group, named, version))
        summaries.sort(key=lambda s: s["Created"], reverse=True)
        return summaries

    def _created(self, view: ImageView) -> datetime | None:
        return parse_time(view.resolved.config.get("created")) or view.record.created_at

    def _summary(self, group: Group, named: list[ImageView], version: str) -> dict[str, Any]:
        first = group.first
        created = self._created(first)
        size = first.resolved.size
        out: dict[str, Any] = {
            "Id": first.id,
            "ParentId": "",
            "RepoTags": [familiar(v.reference) for v in named if v.reference],
            "RepoDigests": _repo_digests(named),
            "Created": int(created.timestamp()) if created else 0,
            "Size": size,
            "SharedSize": -1,
            "Labels": config_labels(first.resolved.config),
            "Containers": -1,
        }
        if not at_least(version, "1.44"):
            out["VirtualSize"] = size
        if at_least(version, "1.48"):
            out["Descriptor"] = _descriptor_json(first.record.target)
        return out

    def _on_platform(self, ref_or_id: str, platform: str) -> tuple[ImageView, list[ImageView]]:
        """The image ``ref_or_id`` names, seen on ``platform`` when one is asked (404 when it has none here)."""
        view, same, _ = self.resolve(ref_or_id)
        wanted = parse_platform(platform)
        if wanted is None:
            return view, same
        resolved = self._resolve_target(view.record.target, wanted)
        if resolved is None:
            raise PlatformNotFound(familiar(view.reference) if view.reference else ref_or_id, wanted)
        return replace(view, resolved=resolved), [
            v for v in same if v.record.target.digest == view.record.target.digest
        ]

    def inspect(self, ref_or_id: str, version: str, platform: str = "") -> dict[str, Any]:
        """``GET /images/{name}/json``; ``platform`` (JSON or os/arch) picks one of a multi-platform image."""
        view, same = self._on_platform(ref_or_id, platform)
        named = [v for v in same if v.reference is not None]
        cfg = view.resolved.config
        inner = cfg.get("config")
        rootfs = cfg.get("rootfs")
        if not isinstance(rootfs, Mapping):
            rootfs = {}
        size = view.resolved.size
        config: dict[str, Any] = {}
        if not at_least(version, "1.50"):
            config = {
                "Hostname": "",
                "Domainname": "",
                "User": "",
                "AttachStdin": False,
                "AttachStdout": False,
                "AttachStderr": False,
                "Tty": False,
                "OpenStdin": False,
                "StdinOnce": False,
                "Env": None,
                "Cmd": None,
                "Image": "",
                "Volumes": None,
                "WorkingDir": "",
                "Entrypoint": None,
                "OnBuild": None,
                "Labels": None,
            }
        if isinstance(inner, Mapping):
            config.update(inner)
        out: dict[str, Any] = {
            "Id": view.id,
            "RepoTags": [familiar(v.reference) for v in named if v.reference],
            "RepoDigests": _repo_digests(named),
            "Parent": "",
            "Comment": str(cfg.get("comment", "")),
            "Created": str(cfg.get("created") or rfc3339(view.record.created_at)),
            "DockerVersion": str(cfg.get("docker_version", "")),
            "Author": str(cfg.get("author", "")),
            "Config": config,
            "Architecture": view.resolved.platform.architecture,
            "Os": view.resolved.platform.os,
            "Size": size,
            "GraphDriver": {"Name": self._snapshotter or "overlayfs", "Data": None},
            "RootFS": {"Type": str(rootfs.get("type", "layers")), "Layers": list(rootfs.get("diff_ids") or [])},
            "Metadata": {"LastTagTime": rfc3339(view.record.updated_at)},
        }
        if view.resolved.platform.variant:
            out["Variant"] = view.resolved.platform.variant
        if cfg.get("os.version"):
            out["OsVersion"] = str(cfg["os.version"])
        if not at_least(version, "1.44"):
            out["VirtualSize"] = size
        if not at_least(version, "1.45"):
            out["Container"] = ""
            out["ContainerConfig"] = None
        if at_least(version, "1.48"):
            out["Descriptor"] = _descriptor_json(view.record.target)
        return out

    def history(self, ref_or_id: str, platform: str = "") -> list[dict[str, Any]]:
        """``GET /images/{name}/history``: the config's history, newest first, layer sizes beside."""
        view, same = self._on_platform(ref_or_id, platform)
        cfg = view.resolved.config
        layers = list(view.resolved.manifest.layers)
        entries = cfg.get("history")
        if not isinstance(entries, list) or not entries:
            entries = [{"created": cfg.get("created", "")} for _ in layers] or [{"created": cfg.get("created", "")}]
        out = []
        for entry in entries:
            if not isinstance(entry, Mapping):
                continue
            size = 0
            if not entry.get("empty_layer") and layers:
                size = layers.pop(0).size
            created = parse_time(entry.get("created"))
            out.append(
                {
                    "Id": "<missing>",
                    "Created": int(created.timestamp()) if created else 0,
                    "CreatedBy": str(entry.get("created_by", "")),
                    "Tags": None,
                    "Size": size,
                    "Comment": str(entry.get("comment", "")),
                }
            )
        out.reverse()
        if out:
            out[0]["Id"] = view.id
            out[0]["Tags"] = [familiar(v.reference) for v in same if v.reference] or None
        return out

    # -- pull, tag, delete --------------------------------------------------

    def prepare_pull(self, from_image: str, tag: str, platform: str, auth: AuthConfig | None) -> PullJob:
        """Check a pull's arguments (400 for a bad reference or platform) before its stream starts."""
        if not from_image:
            raise InvalidArgument("fromImage is required (importing with fromSrc is not supported yet)")
        ref = parse_docker(with_tag(from_image, tag))
        wanted = None
        if platform:
            try:
                wanted = platforms.normalize(platforms.parse(platform))
            except InvalidArgument as e:
                raise InvalidArgument(f"invalid platform {platform!r}: {e}") from None
        return PullJob(ref, wanted, auth)

    def pull(self, job: PullJob, emit: Callable[[Message], None]) -> None:
        """Pull ``job.ref`` into a record of its full name, reporting Docker's messages to ``emit``."""
        name = str(job.ref)
        reporter = PullReporter(emit, job.ref.path, job.ref.digest or job.ref.tag)
        credentials = job.auth.credentials() if job.auth else None
        registry = RegistryOptions(
            plain_http=job.ref.domain in self._insecure,
            credentials=(lambda _host: credentials) if credentials else None,
        )
        with self._names:
            old = None
            with contextlib.suppress(NotFound):
                old = self._client.images.get(name)
            # Held as dangling before the name may move: once the name leaves it, its content is collectable.
            held = old is not None and self._hold_dangling(old)
            image: Image | None = None
            try:
                image = self._client.pull(
                    name,
                    platforms=[job.platform] if job.platform else (),
                    registry=registry,
                    progress=reporter,
                    unpack=self._unpack,
                    snapshotter=self._snapshotter,
                )
            finally:
                if held and old is not None and (image is None or image.target.digest == old.target.digest):
                    with contextlib.suppress(NotFound):
                        self._client.images.delete(dangling_name(old.target.digest))
            with contextlib.suppress(NotFound):
                self._client.images.delete(dangling_name(image.target.digest))
        newer = old is None or old.target.digest != image.target.digest or reporter.downloaded
        reporter.finish(image.target.digest, familiar(job.ref), newer)
        self._events.publish("image", "pull", familiar(job.ref), {"name": familiar(job.ref)})

    def _hold_dangling(self, old: Image) -> bool:
        """Keep ``old``'s content as a dangling image if no other name holds it; whether a record was made.

        Made before ``old``'s name moves away, as Docker's store does: the
        daemon may collect what no record references as soon as it can.
        """
        if any(r.target.digest == old.target.digest and r.name != old.name for r in self._client.images.list()):
            return False
        labels = {k: v for k, v in old.labels.items() if k not in _NAME_LABELS}
        try:
            self._client.images.create(replace(old, name=dangling_name(old.target.digest), labels=labels))
        except AlreadyExists:
            return False
        return True

    def tag(self, source: str, repo: str, tag: str) -> None:
        """``POST /images/{name}/tag``: one more name for the image; a name taken is moved."""
        view, _, _ = self.resolve(source)
        if not repo:
            raise InvalidArgument("repository name must have at least one component")
        ref = parse_docker(with_tag(repo, tag))
        if ref.digest:
            raise InvalidArgument("refusing to create a tag with a digest reference")
        target = view.record.target
        labels = {k: v for k, v in view.record.labels.items() if k not in _NAME_LABELS}
        record = Image(name=str(ref), target=target, labels=labels)
        with self._names:
            try:
                self._client.images.create(record)
            except AlreadyExists:
                old = self._client.images.get(record.name)
                if old.target.digest == target.digest:
                    return
                held = self._hold_dangling(old)
                try:
                    self._client.images.update(record, ["target", "labels"])
                except BaseException:
                    if held:
                        self._client.images.delete(dangling_name(old.target.digest))
                    raise
            with contextlib.suppress(NotFound):
                self._client.images.delete(dangling_name(target.digest))
        self._events.publish("image", "tag", view.id, {"name": familiar(ref)})

    def delete(self, ref_or_id: str, force: bool) -> list[dict[str, str]]:
        """``DELETE /images/{name}``: untag a name; delete the image when its last name goes (or by ID).

        An image containers use is not deleted: a running container's never
        (409, even forced), a stopped one's only when forced, and then its
        content stays as a dangling image for the container, as Docker does.
        """
        with self._names:
            view, same, by_id = self.resolve(ref_or_id)
            named = [v for v in same if v.reference is not None]
            if by_id:
                if len(named) > 1 and not force:
                    raise Conflict(
                        f"conflict: unable to delete {_short(view.id)} (must be forced) - "
                        "image is referenced in multiple repositories"
                    )
                doomed = same
            elif any(v.record.name != view.record.name for v in named):
                doomed = [view]
            else:
                doomed = same
            keep = False
            if doomed is same:
                name = familiar(view.reference) if view.reference else view.record.name
                keep = check_users(self._users(view.id), view.id, name, by_id=by_id, force=force)
            records: list[dict[str, str]] = []
            if keep:
                self._hold_dangling(view.record)
                doomed = [v for v in doomed if v.reference is not None]
            for i, v in enumerate(doomed):
                self._client.images.delete(v.record.name, sync=i == len(doomed) - 1)
                if v.reference is not None:
                    records.append({"Untagged": familiar(v.reference)})
                    self._events.publish("image", "untag", view.id, {"name": familiar(v.reference)})
            if doomed is same and not keep:
                records.append({"Deleted": view.id})
                self._events.publish("image", "delete", view.id, {"name": view.id})
            return records

    def delete_platforms(self, ref_or_id: str, wanted: Sequence[str]) -> list[dict[str, str]]:
        """``docker rmi --platform``: see :func:`._imagedelete.delete_platforms`."""
        chosen = [p for p in (parse_platform(w) for w in wanted) if p is not None]
        with self._names:
            view, _, _ = self.resolve(ref_or_id)
            name = familiar(view.reference) if view.reference else ref_or_id
            return delete_platforms(
                self._client,
                view.record.target,
                name,
                chosen,
                users=self._users,
                events=self._events,
                forget=self._documents.forget,
            )

    def count(self) -> int:
        return len(self._groups())

    # -- push ---------------------------------------------------------------

    def prepare_push(self, name: str, tag: str, platform: str, auth: AuthConfig | None) -> PushJob:
        """Check a push before its stream starts: 404 for an unknown tag, 400 for bad input."""
        return prepare_push(self._client, name, tag, parse_platform(platform), auth)

    def push(self, job: PushJob, emit: Callable[[Message], None]) -> None:
        run_push(self._client, job, emit, self._events, self._insecure)

    # -- save ---------------------------------------------------------------

    def prepare_save(self, names: Sequence[str], platform: str) -> SaveJob:
        """Plan ``docker save`` of ``names``: 404 for an unknown one, before any byte is sent."""

        def resolve(name: str) -> tuple[Image, bool]:
            view, _, by_id = self.resolve(name)
            return view.record, by_id

        return prepare_save(self._client, resolve, names, parse_platform(platform))

    def save_chunks(self, job: SaveJob) -> Iterator[bytes]:
        return save_chunks(self._client, job, self._events)

    # -- prune --------------------------------------------------------------

    def prune(self, filters: Filters, until_ns: int | None) -> dict[str, Any]:
        """``POST /images/prune``: remove unused images (dangling ones only with ``dangling=true``)."""
        if not self._pruning.acquire(blocking=False):
            raise Conflict("a prune operation is already running")
        try:
            with self._names:
                candidates = []
                for record in self._client.images.list():
                    view = self._view(record)
                    ref = view.reference if view else None
                    candidates.append(
                        Candidate(
                            record,
                            view.id if view else "",
                            config_labels(view.resolved.config) if view else {},
                            is_dangling(record.name, record.target.digest),
                            familiar(ref) if ref else "",
                        )
                    )
                return prune(
                    self._client,
                    candidates,
                    filters=filters,
                    until_ns=until_ns,
                    used=lambda i: bool(i and self._users(i)),
                    events=self._events,
                )
        finally:
            self._pruning.release()

    # -- load ---------------------------------------------------------------

    def load(self, chunks: Iterable[bytes], platform: str) -> list[str]:
        """``docker load`` of the archive in ``chunks``: Docker's "Loaded image" lines; nothing made on failure."""
        wanted = parse_platform(platform)

        def record(loaded: list[Loaded]) -> list[LoadResult]:
            out: list[LoadResult] = []
            with self._names:
                records = self._client.images.list()
                named_targets = {r.target.digest for r in records if not is_dangling(r.name, r.target.digest)}
                for item in loaded:
                    if item.name:
                        rec = create_or_move(self._client, Image(item.name, item.target), self._hold_dangling)
                        named_targets.add(item.target.digest)
                        with contextlib.suppress(NotFound):
                            self._client.images.delete(dangling_name(item.target.digest))
                        out.append(LoadResult(rec, True))
                        continue
                    unnamed = Image(dangling_name(item.target.digest), item.target)
                    if item.target.digest not in named_targets:
                        with contextlib.suppress(AlreadyExists):
                            self._client.images.create(unnamed)
                    out.append(LoadResult(unnamed, False))
            return out

        results = load_archive(
            self._client,
            chunks,
            platform=wanted,
            unpack=self._unpack,
            snapshotter=self._snapshotter,
            record=record,
        )
        lines = []
        for r in results:
            if r.named:
                lines.append(f"Loaded image: {familiar(parse_docker(r.record.name))}")
            else:
                view = self._view(r.record)
                lines.append(f"Loaded image ID: {view.id if view else r.record.target.digest}")
            digest = r.record.target.digest
            self._events.publish("image", "load", digest, {"name": digest})
        return lines


def _short(image_id: str) -> str:
    return image_id.partition(":")[2][:12]


def _ref_matches(patterns: Sequence[str], ref: Reference) -> bool:
    names = (familiar(ref), familiar_name(ref))
    return any(glob_match(p, n) for p in patterns for n in names)


def _repo_digests(named: Sequence[ImageView]) -> list[str]:
    out: list[str] = []
    for v in named:
        if v.reference is None:
            continue
        entry = f"{familiar_name(v.reference)}@{v.record.target.digest}"
        if entry not in out:
            out.append(entry)
    return out


def _descriptor_json(desc: Descriptor) -> dict[str, Any]:
    out: dict[str, Any] = {"mediaType": desc.media_type, "digest": desc.digest, "size": desc.size}
    if desc.annotations:
        out["annotations"] = dict(desc.annotations)
    return out
