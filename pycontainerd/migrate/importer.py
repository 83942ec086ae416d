"""Writing a Docker data root into pycontainerd through its client: configs, manifests, snapshots, image records.

Everything goes through :class:`~pycontainerd.client.Client` (Content,
Snapshots, Images and Leases services), so a real containerd would take the
same path; only the apply runs here, client-side as ``ctr`` unpacks, into the
mounts the daemon's snapshotter hands out (the caller is root on the
daemon's machine).

What an image becomes:

* its config, byte for byte, so the config digest stays Docker's image id;
* an OCI image manifest made here (Docker kept only the config, never the
  manifest it pulled): config of type ``application/vnd.oci.image.config.v1+json``
  and one *uncompressed* layer per diff id, ``application/vnd.oci.image.layer.v1.tar``,
  digest the diff id, size the tar stream's length;
* one committed snapshot per layer, named by its chain id on top of its
  parent's, labelled ``containerd.io/snapshot.ref`` as the unpacker labels it;
  the stream applied is the one rebuilt from tar-split, never a walk of the
  diff directory, which is what makes the diff ids exact;
* each layer's tar-split record, as Docker stored it (a few MiB for a GiB
  of layer), held by the manifest (:mod:`.labels`).  The layer blobs
  themselves are not stored: the OCI spec lets a manifest name blobs that
  are absent (containerd leaves images so with ``discard_unpacked_layers``),
  and the record plus the snapshot's files rebuild the exact stream
  whenever a blob is wanted, for a push or an export
  (:mod:`.ondemand`, which stores them compressed then).  So the layers'
  bytes are written once, into the snapshots, as ``docker save`` writes
  them once into its archive;
* image records: each tag and digest reference of ``repositories.json`` under
  its normalised name (``docker.io/library/busybox:latest``, as Docker's
  containerd store names them).  A digest reference keeps its name although
  the manifest here is not the one pulled by it.  An image without a name
  that no other image is built on becomes ``moby-dangling@<manifest digest>``,
  as pydockerd and Docker name such images; the classic builder's
  intermediate images (parents of another image) are left out, their layers
  come with the images built on them.

The collector keeps it all through the usual references: the manifest names
the config (``containerd.io/gc.ref.content.config``) and the tar-split
records (``containerd.io/gc.ref.content.tar-split.<i>``), the config the
top snapshot (``containerd.io/gc.ref.snapshot.<snapshotter>``), each
snapshot its parent.

Every step looks before it writes, so a second run writes nothing at all
(not even a lease).  The first write creates the lease :data:`LEASE_ID`
(expiring after a day), which holds what a run makes until the image records
hold it; a run that is killed leaves its finished layers under that lease,
and the next run takes the lease over, finds them and goes on.  An active
snapshot left half applied (key ``migrate-docker <chain id>``) is removed
first.  The Docker root is only read.

Speed: each layer's stream is rebuilt and applied in one pass, hashed once
(by the applier, whose digest must be the diff id) and handed to the
applier's threads in batches (:class:`_Counter`); the per-file CRC-64 of
tar-split is not checked on the way, because the stream's sha256 must equal
the diff id anyway: only a layer that fails that check is rebuilt once more
with the CRCs, to name the file at fault.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Final

from ..content import Info, read_blob
from ..errors import AlreadyExists, ContainerdError, InvalidArgument, NotFound
from ..images import Descriptor, Image
from ..images import mediatypes as mt
from ..images.manifest import parse_manifest
from ..leases import LABEL_EXPIRE, Resource
from ..limits import current
from ..reference import parse_normalized
from ..snapshots import LABEL_SNAPSHOT_REF, exists
from .dockerstore import read_docker_root
from .labels import LABEL_DIFF_ID, tar_split_label
from .layerstream import LayerStream, read_tar_split, stream_length
from .records import DockerStore, ImageRecord, LayerRecord, Problem

if TYPE_CHECKING:
    from ..client import Client
    from ..snapshots.proxy import ProxySnapshotter

__all__ = [
    "DANGLING_PREFIX",
    "LEASE_ID",
    "Event",
    "MigrateOptions",
    "MigrationReport",
    "Outcome",
    "Planned",
    "build_manifest",
    "migrate_docker",
    "plan_images",
]

LEASE_ID: Final = "pyctr-migrate-docker"
LEASE_EXPIRY: Final = timedelta(hours=24)
DANGLING_PREFIX: Final = "moby-dangling@"
KEY_PREFIX: Final = "migrate-docker "
LABEL_GC_CONTENT: Final = "containerd.io/gc.ref.content"
LABEL_GC_SNAPSHOT: Final = "containerd.io/gc.ref.snapshot."
BATCH: Final = 256 << 10
REPORT_EVERY: Final = 4 << 20

# States of an image or layer event, in the order they can come.
MIGRATING, VERIFYING, APPLYING = "migrating", "verifying", "applying"
VERIFIED, DONE, PRESENT, FAILED = "verified", "done", "already present", "failed"
WOULD_MIGRATE, MIGRATED = "would migrate", "migrated"


@dataclass(frozen=True)
class Event:
    """Progress: ``kind`` is ``image`` (``subject`` its id, ``names`` its records) or ``layer`` (a chain id)."""

    kind: str
    subject: str
    state: str
    done: int = 0
    total: int = 0
    names: tuple[str, ...] = ()
    reason: str = ""


@dataclass(frozen=True)
class MigrateOptions:
    """``snapshotter`` "" is the daemon's default; ``dry_run`` rebuilds and checks every layer, writes nothing."""

    snapshotter: str = ""
    dry_run: bool = False
    progress: Callable[[Event], None] | None = None


@dataclass(frozen=True)
class Outcome:
    """One image: ``state`` is migrated, already present, would migrate (dry run) or failed (``reason``)."""

    image_id: str
    names: tuple[str, ...]
    state: str
    reason: str = ""


@dataclass
class MigrationReport:
    """What a run did; :attr:`problems` are what the Docker root holds that cannot be migrated."""

    root: Path
    dry_run: bool
    images: list[Outcome] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # names not recorded, and why
    intermediate: int = 0
    layers_written: int = 0
    bytes_written: int = 0

    def count(self, state: str) -> int:
        return sum(1 for o in self.images if o.state == state)

    @property
    def changed(self) -> bool:
        return self.count(MIGRATED) > 0 or self.layers_written > 0

    @property
    def ok(self) -> bool:
        """No image failed and every name was recorded (the root's own problems do not count)."""
        return self.count(FAILED) == 0 and not self.failures


@dataclass(frozen=True)
class Planned:
    """An image to migrate and the names of its records (none: it gets a dangling name)."""

    image: ImageRecord
    names: tuple[str, ...]


def _normalised(name: str) -> str:
    return str(parse_normalized(name))


def plan_images(store: DockerStore) -> tuple[list[Planned], list[str], int]:
    """The images to migrate with their record names, names that cannot be used (and why), intermediates left out.

    Named images come first, in name order; the dangling ones after them.
    """
    parents = {i.parent for i in store.images.values() if i.parent}
    bad: list[str] = []
    named: list[Planned] = []
    unnamed: list[ImageRecord] = []
    intermediate = 0
    for image in store.images.values():
        names: set[str] = set()
        for ref in image.references:
            try:
                names.add(_normalised(ref))
            except InvalidArgument as exc:
                bad.append(f"reference {ref}: {exc}")
        if names:
            named.append(Planned(image, tuple(sorted(names))))
        elif image.id in parents:
            intermediate += 1
        else:
            unnamed.append(image)
    named.sort(key=lambda p: p.names)
    unnamed.sort(key=lambda i: i.id)
    return named + [Planned(i, ()) for i in unnamed], bad, intermediate


def build_manifest(image: ImageRecord, sizes: list[int]) -> bytes:
    """The OCI manifest of ``image`` whose layers are its uncompressed tar streams of ``sizes`` bytes.

    Compact JSON in a fixed key order, so the same image always gives the same digest.
    """
    doc = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "config": {"mediaType": mt.OCI_CONFIG, "digest": image.id, "size": len(image.config)},
        "layers": [
            {"mediaType": mt.OCI_LAYER, "digest": d, "size": s} for d, s in zip(image.diff_ids, sizes, strict=True)
        ],
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class _Counter:
    """Counts a stream's bytes as they pass, reporting progress every :data:`REPORT_EVERY` bytes.

    A rebuilt stream comes in pieces as small as one header block (a
    segment, then a small file, then the next segment): :meth:`counted`
    hands them on joined into chunks of at least :data:`BATCH` bytes, since
    each chunk passes between the applier's threads, and a thread switch
    per 512-byte header would cost more than the copy that joining makes.
    """

    def __init__(self, progress: Callable[[int], None]) -> None:
        self._progress = progress
        self.size = 0
        self._reported = 0

    def counted(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        held: list[bytes] = []
        pending = 0
        for chunk in chunks:
            self.size += len(chunk)
            if self.size - self._reported >= REPORT_EVERY:
                self._reported = self.size
                self._progress(self.size)
            if not held and len(chunk) >= BATCH:
                yield chunk
                continue
            held.append(chunk)
            pending += len(chunk)
            if pending >= BATCH:
                yield b"".join(held)
                held.clear()
                pending = 0
        if held:
            yield b"".join(held)


class _Job:
    """One run against one namespace of one daemon."""

    def __init__(self, client: Client, store: DockerStore, options: MigrateOptions, report: MigrationReport) -> None:
        self.client = client
        self.store = store
        self.options = options
        self.report = report
        self.snapshotter_name = options.snapshotter or client.default_snapshotter()
        self._leased: Client | None = None
        self.sizes: dict[str, int] = {}  # chain id -> stream length, once done (or verified)
        self.splits: dict[str, str] = {}  # chain id -> digest of its tar-split record, once stored
        self._configs: dict[str, str | None] = {}  # manifest digest -> its config's, as read
        self._dangling: dict[str, str] | None = None  # image id -> its dangling record, listed on first use
        self._hold_found = False  # whether what is found for the current image goes into the lease
        self.failed: dict[str, str] = {}  # chain id -> why

    # -- plumbing ---------------------------------------------------------------

    def emit(self, event: Event) -> None:
        if self.options.progress is not None:
            self.options.progress(event)

    @property
    def leased(self) -> Client:
        """The client holding the migration's lease, made (or taken over from a killed run) on first use."""
        if self._leased is None:
            from ..client import expire_label

            with contextlib.suppress(AlreadyExists):  # a run that did not finish: its work goes on under it
                self.client.leases.create(LEASE_ID, {LABEL_EXPIRE: expire_label(LEASE_EXPIRY)})
            self._leased = self.client.with_lease(LEASE_ID)
        return self._leased

    def finish(self) -> None:
        """Every image record now holds what it needs: the lease goes."""
        if self._leased is not None:
            with contextlib.suppress(NotFound):
                self.client.leases.delete(LEASE_ID)

    def snapshotter(self) -> ProxySnapshotter:
        return (self._leased or self.client).snapshotter(self.snapshotter_name)

    def info(self, digest: str) -> Info | None:
        try:
            return self.client.content.info(digest)
        except NotFound:
            return None

    # -- layers -----------------------------------------------------------------

    def layer(self, layer: LayerRecord) -> int:
        """Make sure the layer is a committed snapshot with its blob stored (or, dry, that it rebuilds); its size."""
        done = self.sizes.get(layer.chain_id)
        if done is not None:
            return done
        if self.options.dry_run:
            size = self._verify(layer)
        else:
            record = read_tar_split(layer)
            digest = _digest(record)
            have_record = self._found(digest, "content")
            have_snapshot = self._found(layer.chain_id, f"snapshots/{self.snapshotter_name}")
            if have_snapshot:
                size = stream_length(layer, record)
                self._record_blob(layer, record, digest, have_record)
                self.emit(Event("layer", layer.chain_id, PRESENT if have_record else DONE, size, size))
            else:
                size = self._import(layer, record, digest, have_record)
            self.splits[layer.chain_id] = digest
        self.sizes[layer.chain_id] = size
        return size

    def _found(self, id: str, kind: str) -> bool:
        """Whether the blob or snapshot ``id`` is there; held by the lease first when no record holds the image.

        An image whose records are gone (removed, say) may have left its
        layers to the collector: what is found for it is taken into the
        lease, then looked at again, so it cannot go between the look and
        the record that will hold it.
        """
        if not self._there(id, kind):
            return False
        if not self._hold_found:
            return True
        self.leased.leases.add_resource(LEASE_ID, Resource(id=id, type=kind))
        return self._there(id, kind)

    def _there(self, id: str, kind: str) -> bool:
        if kind == "content":
            return self.info(id) is not None
        return exists(self.client.snapshotter(self.snapshotter_name), id)

    def _verify(self, layer: LayerRecord) -> int:
        """Dry run: rebuild the stream to nowhere, which checks its digest."""
        total = stream_length(layer)
        self.emit(Event("layer", layer.chain_id, VERIFYING, 0, total))
        counter = _Counter(self._progress(layer, VERIFYING, total))
        for _ in counter.counted(LayerStream(layer, check_crc=False)):
            pass
        self.emit(Event("layer", layer.chain_id, VERIFIED, total, total))
        return counter.size

    def _progress(self, layer: LayerRecord, state: str, total: int) -> Callable[[int], None]:
        """Progress of ``layer``; a total known only roughly (Docker's size, headers left out) grows with what passed."""
        return lambda n: self.emit(Event("layer", layer.chain_id, state, n, max(total, n)))

    def _import(self, layer: LayerRecord, record: bytes, digest: str, have_record: bool) -> int:
        """Apply the layer's rebuilt stream into a new snapshot, then store its tar-split record; the stream's length.

        Docker's ``size`` (its files' bytes) stands for the progress total:
        the stream's exact length would take a pass over the record first.
        """
        self.emit(Event("layer", layer.chain_id, APPLYING, 0, layer.size))
        counter = _Counter(self._progress(layer, APPLYING, layer.size))
        stream = LayerStream(layer, check_crc=False, verify=False, record=record)
        self._apply(layer, counter.counted(stream))
        self._record_blob(layer, record, digest, have_record)
        self.report.layers_written += 1
        self.report.bytes_written += counter.size
        self.emit(Event("layer", layer.chain_id, DONE, counter.size, counter.size))
        return counter.size

    def _record_blob(self, layer: LayerRecord, record: bytes, digest: str, have: bool) -> None:
        """Store the layer's tar-split record (unless there), labelled with the diff id it rebuilds."""
        labels = {LABEL_DIFF_ID: layer.diff_id}
        if not have:
            from ..content.helpers import write_blob

            write_blob(self.leased.content, f"migrate-{digest}", record, expected=digest, labels=labels)
            self.report.bytes_written += len(record)
        self._label(digest, labels)  # shared from another namespace without them

    def _apply(self, layer: LayerRecord, chunks: Iterator[bytes]) -> None:
        """Prepare ``migrate-docker <chain id>`` on the parent, apply ``chunks`` into it, commit it as the chain id."""
        from ..diff.local import LocalDiffer

        sn = self.snapshotter()
        key = KEY_PREFIX + layer.chain_id
        labels = {LABEL_SNAPSHOT_REF: layer.chain_id}
        try:
            mounts = sn.prepare(key, layer.parent or "", labels)
        except AlreadyExists:
            sn.remove(key)  # half applied by a run that was killed
            mounts = sn.prepare(key, layer.parent or "", labels)
        try:
            applied = LocalDiffer(self.leased.content).apply_chunks(chunks, mounts)
            if applied.digest != layer.diff_id:
                raise InvalidArgument(
                    f"layer {layer.chain_id}: the rebuilt tar stream has digest {applied.digest}, "
                    f"not its diff id {layer.diff_id}"
                )
            try:
                sn.commit(layer.chain_id, key, labels)
            except AlreadyExists:
                sn.remove(key)  # another run committed it meanwhile
        except BaseException:
            with contextlib.suppress(Exception):
                sn.remove(key)
            raise

    def why(self, layer: LayerRecord, exc: ContainerdError) -> str:
        """The reason a layer failed; a rebuild with CRCs names the file when the digest alone caught it."""
        if isinstance(exc, InvalidArgument):
            try:
                for _ in LayerStream(layer, check_crc=True):
                    pass
            except ContainerdError as precise:
                return str(precise)
        return str(exc)

    # -- images -----------------------------------------------------------------

    def image(self, plan: Planned) -> Outcome:
        image = plan.image
        below = next((c for c in image.layers if c in self.failed), None)
        if below is not None:
            return self._failed(plan, f"layer {below}: {self.failed[below]}")
        self.emit(Event("image", image.id, VERIFYING if self.options.dry_run else MIGRATING, names=plan.names))
        named = self._named(plan)  # records name it under every name already, maybe on a push's manifest
        self._hold_found = not self.options.dry_run and not named
        written = self.report.layers_written
        sizes = []
        for layer in self.store.layer_chain(image):
            try:
                sizes.append(self.layer(layer))
            except ContainerdError as exc:
                self.failed[layer.chain_id] = self.why(layer, exc)
                self.emit(Event("layer", layer.chain_id, FAILED, reason=self.failed[layer.chain_id]))
                return self._failed(plan, f"layer {layer.chain_id}: {self.failed[layer.chain_id]}")
        manifest = build_manifest(image, sizes)
        target = Descriptor(mt.OCI_MANIFEST, _digest(manifest), len(manifest))
        try:
            names = plan.names or (self._dangling_name(image.id) or DANGLING_PREFIX + target.digest,)
            if self.options.dry_run:
                present = named and self.info(image.id) is not None
                return self._done(plan, names, PRESENT if present else WOULD_MIGRATE)
            changed = self.report.layers_written != written
            changed |= self._blob(image.id, image.config, self._config_labels(image))
            if named:
                return self._done(plan, names, MIGRATED if changed else PRESENT)
            labels = _manifest_labels(image, [self.splits[c] for c in image.layers])
            changed |= self._blob(target.digest, manifest, labels)
            recorded = 0
            for name in names:
                made = self._record(name, target, image.id)
                if made is not None:
                    changed |= made
                    recorded += 1
            if not recorded:
                return self._failed(plan, "none of its names could be recorded", names)
        except ContainerdError as exc:
            return self._failed(plan, str(exc), names)
        return self._done(plan, names, MIGRATED if changed else PRESENT)

    def _config_labels(self, image: ImageRecord) -> dict[str, str]:
        return {LABEL_GC_SNAPSHOT + self.snapshotter_name: image.layers[-1]} if image.layers else {}

    def _blob(self, digest: str, data: bytes, labels: dict[str, str]) -> bool:
        """Store ``data`` with ``labels`` unless it is there with them; whether anything was written."""
        if not self._found(digest, "content"):
            from ..content.helpers import write_blob

            write_blob(self.leased.content, f"migrate-{digest}", data, expected=digest, labels=labels)
            self._label(digest, labels)  # a blob another namespace has is shared without them
            return True
        return self._label(digest, labels)

    def _label(self, digest: str, labels: dict[str, str]) -> bool:
        """Give the blob ``labels`` where it lacks them; whether it did."""
        info = self.client.content.info(digest)
        missing = {k: v for k, v in labels.items() if info.labels.get(k) != v}
        if missing:
            update = replace(info, labels={**info.labels, **missing})
            self.client.content.update(update, [f"labels.{k}" for k in missing])
        return bool(missing)

    def _config_of(self, desc: Descriptor) -> str | None:
        """The config digest of the manifest ``desc`` (None for anything else, or one that cannot be read)."""
        if desc.digest not in self._configs:
            config = None
            if mt.is_manifest(desc.media_type) and desc.size <= current().max_manifest_size:
                with contextlib.suppress(NotFound, InvalidArgument):
                    config = parse_manifest(read_blob(self.client.content, desc.digest), desc.media_type).config.digest
            self._configs[desc.digest] = config
        return self._configs[desc.digest]

    def _holds(self, record: Image, target: Descriptor, image_id: str) -> bool:
        """Whether ``record`` names the image: the manifest made here, or another on its config.

        A push or export replaces the manifest made here with one listing
        compressed layers (:mod:`.ondemand`), and a pull of the same image
        names its own; either way the record's image id is Docker's.
        """
        return record.target.digest == target.digest or self._config_of(record.target) == image_id

    def _named(self, plan: Planned) -> bool:
        """Whether records name the image already under all its names (a dangling one under any)."""
        if not plan.names:
            return self._dangling_name(plan.image.id) is not None
        for name in plan.names:
            try:
                if self._config_of(self.client.images.get(name).target) != plan.image.id:
                    return False
            except NotFound:
                return False
        return True

    def _dangling_name(self, image_id: str) -> str | None:
        """The ``moby-dangling@…`` record that names the image already, if one does (its digest may be a push's)."""
        if self._dangling is None:
            self._dangling = {}
            for record in self.client.images.list():
                if record.name.startswith(DANGLING_PREFIX):
                    config = self._config_of(record.target)
                    if config is not None:
                        self._dangling.setdefault(config, record.name)
        return self._dangling.get(image_id)

    def _record(self, name: str, target: Descriptor, image_id: str) -> bool | None:
        """Create the record ``name``; False when it names the image already, None (and a failure noted) for another."""
        try:
            found = self.client.images.get(name)
        except NotFound:
            try:
                self.leased.images.create(Image(name=name, target=target))
                return True
            except AlreadyExists:
                found = self.client.images.get(name)
        if self._holds(found, target, image_id):
            return False
        self.report.failures.append(
            f"{name}: already names another image ({found.target.digest}) in this namespace; left as it is"
        )
        return None

    def _done(self, plan: Planned, names: tuple[str, ...], state: str) -> Outcome:
        self.emit(Event("image", plan.image.id, state, names=names))
        return Outcome(plan.image.id, names, state)

    def _failed(self, plan: Planned, reason: str, names: tuple[str, ...] = ()) -> Outcome:
        names = names or plan.names
        self.emit(Event("image", plan.image.id, FAILED, names=names, reason=reason))
        return Outcome(plan.image.id, names, FAILED, reason)


def _manifest_labels(image: ImageRecord, records: list[str]) -> dict[str, str]:
    """The config and each layer's tar-split record, held by the manifest (its layer blobs are not stored)."""
    labels = {f"{LABEL_GC_CONTENT}.config": image.id}
    labels.update({tar_split_label(i): d for i, d in enumerate(records)})
    return labels


def migrate_docker(client: Client, root: Path, options: MigrateOptions | None = None) -> MigrationReport:
    """Migrate the overlay2 images of the Docker root ``root`` into ``client``'s namespace.

    Failures of single images and names end up in the report; an error
    raised is one that stops the whole run (the root cannot be opened, the
    daemon does not answer), after which the lease keeps what was done for
    the next run.
    """
    options = options or MigrateOptions()
    store = read_docker_root(root)
    report = MigrationReport(root=root, dry_run=options.dry_run, problems=list(store.problems))
    plan, bad, report.intermediate = plan_images(store)
    report.failures.extend(bad)
    job = _Job(client, store, options, report)
    for planned in plan:
        report.images.append(job.image(planned))
    job.finish()
    return report
