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
* those layer blobs themselves, written in the same pass as the apply.  The
  OCI spec allows absent blobs (containerd runs an image pulled with
  ``discard_unpacked_layers``), but pycontainerd's unpack labels each layer
  blob even when its snapshot exists and pydockerd lists only images whose
  layer blobs are there, so they are stored; the cost is the layers' size
  once more, as in Docker's own containerd store, and in return a push sends
  them as they are, with a valid manifest (see *Pushing* below);
* one committed snapshot per layer, named by its chain id on top of its
  parent's, labelled ``containerd.io/snapshot.ref`` as the unpacker labels it;
  the stream applied is the one rebuilt from tar-split, never a walk of the
  diff directory, which is what makes the diff ids exact;
* image records: each tag and digest reference of ``repositories.json`` under
  its normalised name (``docker.io/library/busybox:latest``, as Docker's
  containerd store names them).  A digest reference keeps its name although
  the manifest here is not the one pulled by it.  An image without a name
  that no other image is built on becomes ``moby-dangling@<manifest digest>``,
  as pydockerd and Docker name such images; the classic builder's
  intermediate images (parents of another image) are left out, their layers
  come with the images built on them.

The collector keeps it all through the usual references: the manifest names
the config and layers (``containerd.io/gc.ref.content.config`` and ``.l.<i>``),
the config the top snapshot (``containerd.io/gc.ref.snapshot.<snapshotter>``),
each snapshot its parent.

Every step looks before it writes, so a second run writes nothing at all
(not even a lease).  The first write creates the lease :data:`LEASE_ID`
(expiring after a day), which holds what a run makes until the image records
hold it; a run that is killed leaves its finished layers under that lease,
and the next run takes the lease over, finds them and goes on.  An active
snapshot left half applied (key ``migrate-docker <chain id>``) is removed
first.  The Docker root is only read.

Pushing: ``pyctr images push`` sends the manifest made here and its
uncompressed layers as stored; no gzip copy is made, on demand or
otherwise.  The OCI image spec lists ``application/vnd.oci.image.layer.v1.tar``
as a layer type like any other, docker-registry stores it, and skopeo and
Docker 20.10's ``docker pull`` take it, giving back Docker's image id and
diff ids (tests/migrate/test_push.py).  Compressing at push time would give
each layer a second digest, so the manifest pushed would not be the one
recorded here (a pull of it back would be another image record's target),
and would cost gzip's CPU time on every push or a stored compressed copy of
every layer; what it saves is the registry's bandwidth and disk.  Whoever
wants compressed layers in the registry has ``skopeo copy --dest-compress``
or a rebuild; the migration keeps one exact copy.

Speed: the per-file CRC-64 of tar-split is not checked while importing,
because the stream's sha256 must equal the diff id anyway; only a layer that
fails that check is rebuilt once more with the CRCs, to name the file at fault.
The layer blob's WRITEs to the daemon are pipelined by the content proxy
(:mod:`pycontainerd.content.proxy`), so storing the blob does not wait for
a round trip per MiB while the apply goes on.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Final

from ..content import Info, Writer
from ..diff.differ import LABEL_UNCOMPRESSED
from ..errors import AlreadyExists, ContainerdError, InvalidArgument, NotFound
from ..images import Descriptor, Image
from ..images import mediatypes as mt
from ..leases import LABEL_EXPIRE
from ..reference import parse_normalized
from ..snapshots import LABEL_SNAPSHOT_REF, exists
from .dockerstore import read_docker_root
from .layerstream import LayerStream, stream_length
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
WRITE_CHUNK: Final = 1 << 20
REPORT_EVERY: Final = 4 << 20

# States of an image or layer event, in the order they can come.
MIGRATING, VERIFYING, APPLYING, STORING = "migrating", "verifying", "applying", "storing"
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


class _Sink:
    """Where a layer's stream goes besides the applier: an ingest (in 1 MiB writes), and the progress count."""

    def __init__(self, write: Callable[[bytes], object] | None, progress: Callable[[int], None]) -> None:
        self._write = write
        self._progress = progress
        self._buffer = bytearray()
        self.size = 0
        self._reported = 0

    def __call__(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self._write is not None:
            self._buffer += chunk
            if len(self._buffer) >= WRITE_CHUNK:
                self._write(bytes(self._buffer))
                self._buffer.clear()
        if self.size - self._reported >= REPORT_EVERY:
            self._reported = self.size
            self._progress(self.size)

    def flush(self) -> None:
        if self._write is not None and self._buffer:
            self._write(bytes(self._buffer))
            self._buffer.clear()


class _StreamAt:
    """A layer's tar stream as the :class:`~pycontainerd.content.ReaderAt` the differ reads, front to back.

    ``size`` must be the stream's exact length (:func:`stream_length`);
    every chunk also goes to ``sink``.  :meth:`finish` reads whatever the
    applier left, so the stream's own end check (its digest) always runs.
    """

    def __init__(self, chunks: Iterator[bytes], size: int, sink: Callable[[bytes], None]) -> None:
        self._chunks = chunks
        self._size = size
        self._sink = sink
        self._buffer = bytearray()
        self._offset = 0
        self._ended = False

    @property
    def size(self) -> int:
        return self._size

    def _more(self) -> bool:
        chunk = next(self._chunks, None)
        if chunk is None:
            self._ended = True
            return False
        self._sink(chunk)
        self._buffer += chunk
        return True

    def read_at(self, offset: int, n: int) -> bytes:
        if offset != self._offset:
            raise InvalidArgument(f"layer stream read at {offset}, not at {self._offset}: it is read in order only")
        while len(self._buffer) < n and not self._ended and self._more():
            pass
        out = bytes(self._buffer[:n])
        del self._buffer[:n]
        self._offset += len(out)
        return out

    def finish(self) -> None:
        while not self._ended:
            self._more()
        extra = len(self._buffer) + self._offset - self._size
        if extra:
            raise InvalidArgument(f"the layer stream is {self._size + extra} bytes, not the {self._size} recorded")

    def close(self) -> None:
        pass


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
            blob = self.info(layer.diff_id)
            have_snapshot = exists(self.client.snapshotter(self.snapshotter_name), layer.chain_id)
            if blob is not None and have_snapshot:
                size = blob.size
                self.emit(Event("layer", layer.chain_id, PRESENT, size, size))
            else:
                size = self._import(layer, need_blob=blob is None, need_snapshot=not have_snapshot)
        self.sizes[layer.chain_id] = size
        return size

    def _verify(self, layer: LayerRecord) -> int:
        """Dry run: rebuild the stream to nowhere, which checks its digest."""
        total = stream_length(layer)
        self.emit(Event("layer", layer.chain_id, VERIFYING, 0, total))
        counter = _Sink(None, self._progress(layer, VERIFYING, total))
        for chunk in LayerStream(layer, check_crc=False):
            counter(chunk)
        self.emit(Event("layer", layer.chain_id, VERIFIED, total, total))
        return counter.size

    def _progress(self, layer: LayerRecord, state: str, total: int) -> Callable[[int], None]:
        return lambda n: self.emit(Event("layer", layer.chain_id, state, n, total))

    def _import(self, layer: LayerRecord, *, need_blob: bool, need_snapshot: bool) -> int:
        total = stream_length(layer)
        state = APPLYING if need_snapshot else STORING
        self.emit(Event("layer", layer.chain_id, state, 0, total))
        leased = self.leased
        ref = f"migrate-{layer.diff_id}"
        writer: Writer | None = None
        if need_blob:
            from ..content.helpers import open_writer

            try:
                writer = open_writer(leased.content, ref, total=total, expected=layer.diff_id)
            except AlreadyExists:
                writer = None
            else:
                if writer.status().offset:
                    writer.truncate(0)  # left by a run that was killed
        sink = _Sink(writer.write if writer is not None else None, self._progress(layer, state, total))
        stream = LayerStream(layer, check_crc=False)
        try:
            if need_snapshot:
                self._apply(layer, stream, total, sink, writer)
            else:
                for chunk in stream:
                    sink(chunk)
                self._commit_blob(layer, sink, writer)
        except BaseException:
            if writer is not None:
                writer.close()
                with contextlib.suppress(Exception):
                    leased.content.abort(ref)
            raise
        if need_blob:
            self._label(layer.diff_id, {LABEL_UNCOMPRESSED: layer.diff_id})  # shared from another namespace
        self.report.layers_written += 1
        self.report.bytes_written += total
        self.emit(Event("layer", layer.chain_id, DONE, total, total))
        return total

    def _commit_blob(self, layer: LayerRecord, sink: _Sink, writer: Writer | None) -> None:
        if writer is None:
            return
        sink.flush()
        with contextlib.suppress(AlreadyExists):
            writer.commit(sink.size, layer.diff_id, {LABEL_UNCOMPRESSED: layer.diff_id})

    def _apply(self, layer: LayerRecord, stream: LayerStream, total: int, sink: _Sink, writer: Writer | None) -> None:
        """Prepare ``migrate-docker <chain id>`` on the parent, apply the stream into it, commit it as the chain id."""
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
            source = _StreamAt(iter(stream), total, sink)
            desc = Descriptor(mt.OCI_LAYER, layer.diff_id, total)
            applied = LocalDiffer(self.leased.content).apply_from(source, desc, mounts)
            source.finish()
            if applied.digest != layer.diff_id:
                raise InvalidArgument(f"layer {layer.chain_id}: applied {applied.digest}, not its diff id")
            self._commit_blob(layer, sink, writer)
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
        names = plan.names or (DANGLING_PREFIX + target.digest,)
        try:
            if self.options.dry_run:
                present = all(self._record_is(name, target) for name in names) and self.info(image.id) is not None
                return self._done(plan, names, PRESENT if present else WOULD_MIGRATE)
            changed = self.report.layers_written != written
            changed |= self._blob(image.id, image.config, self._config_labels(image))
            changed |= self._blob(target.digest, manifest, _manifest_labels(image))
            recorded = 0
            for name in names:
                made = self._record(name, target)
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
        if self.info(digest) is None:
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

    def _record_is(self, name: str, target: Descriptor) -> bool:
        try:
            return self.client.images.get(name).target.digest == target.digest
        except NotFound:
            return False

    def _record(self, name: str, target: Descriptor) -> bool | None:
        """Create the record ``name``; False when it is there already, None (and a failure noted) for another image."""
        try:
            found = self.client.images.get(name)
        except NotFound:
            try:
                self.leased.images.create(Image(name=name, target=target))
                return True
            except AlreadyExists:
                found = self.client.images.get(name)
        if found.target.digest == target.digest:
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


def _manifest_labels(image: ImageRecord) -> dict[str, str]:
    labels = {f"{LABEL_GC_CONTENT}.config": image.id}
    labels.update({f"{LABEL_GC_CONTENT}.l.{i}": d for i, d in enumerate(image.diff_ids)})
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
