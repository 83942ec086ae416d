"""A migrated image's layer blobs, produced when something needs them: a push, an export, a save.

A migrated image is stored without its layer blobs (see :mod:`.labels`):
its manifest lists each layer uncompressed, digest the diff id, and the
bytes live in the committed snapshots, with Docker's tar-split record of
each layer beside them as a small blob.  :func:`materialize` makes the
missing blobs from those two and points the image at a manifest that lists
them, so everything that reads layer blobs (the pusher, the exporters)
works on the image unchanged.

For each layer whose blob is absent:

* a read-only view of its committed snapshot (the chain id of the layers up
  to it) is mounted.  In the merged tree every regular file that layer's tar
  carries has exactly that layer's contents, so the view serves any
  snapshotter, overlayfs and native alike; files without data (directories,
  links, whiteouts, empty files) are never read;
* the tar stream is rebuilt from the tar-split record and those files, and
  gzipped into an ingest; the ingest is committed (labelled
  ``containerd.io/uncompressed`` = the diff id) only once the stream's
  sha256 is the diff id, and aborted on any failure.  The record is input
  like any other: its label must name the diff id, and what it may expand
  to is bounded by the layer's size before anything is read;
* a gzip blob already stored for the diff id (another image sharing the
  layer was materialized before) is taken as it is, as containerd trusts
  the ``containerd.io/uncompressed`` label, once it is in the lease: the
  image that made it may be deleted, and the collector run, meanwhile.

A layer whose blob is absent though the manifest lists it compressed (a
blob deleted after an earlier call) is rebuilt the same way when its
tar-split record is labelled with the config's diff id for it.  The views
are mounted read-only, ``nodev``, ``nosuid`` and ``noexec``; those of a
snapshotter whose views are copies (not overlayfs) one at a time.

Then a new manifest is written: the same config (the image id and the diff
ids never change), those layers as ``…tar+gzip`` with their new digests
and sizes, the layers that were present as they were, and the gc labels a
pull writes.  Every record that named the old manifest is pointed at it.
All of it runs under a lease, so the collector takes nothing meanwhile; a
second call finds the blobs and changes nothing, and one holding a
``moby-dangling@`` record an earlier call renamed gets the renamed one.

The functions take the core interfaces (:class:`Stores`): the daemon calls
them on its metadata stores, a client on its proxies — on the daemon's
machine and as root, since the views are mounted here.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import secrets
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, BinaryIO, Final, Protocol, cast

from .. import content as content_api
from .. import images as images_api
from ..content import Manager, Provider, open_blob, read_blob
from ..content.helpers import CHUNK, ensure_labels, open_writer, write_blob
from ..diff.compression import Compression, decompressed_chunks, from_media_type, open_compressed, sniff
from ..diff.differ import LABEL_UNCOMPRESSED
from ..errors import AlreadyExists, Canceled, ContainerdError, InvalidArgument, NotFound, quote
from ..images import Descriptor, Image
from ..images import mediatypes as mt
from ..images.identity import chain_ids
from ..images.manifest import Manifest, parse_config, parse_manifest
from ..images.walk import GC_REF_PREFIX, child_gc_labels
from ..limits import current, exceeded
from ..mount import Mount, mounted
from ..snapshots import Snapshotter
from ..transfer.progress import Progress, Throttle, ref_key
from ..unpack._unpack import LABEL_GC_SNAPSHOT
from ._safefs import SafeDir
from .importer import DANGLING_PREFIX
from .labels import LABEL_DIFF_ID, tar_split_label, tar_splits
from .layerstream import MAX_TAR_SPLIT, DiffDirSource
from .tarsplit import TarAssembler, TarSplitDecoder, TarSplitEntry

__all__ = [
    "COMPRESSED",
    "COMPRESSING",
    "KEY_PREFIX",
    "Stores",
    "find_tar_split",
    "materialize",
    "needs_blobs",
    "tar_split_labels",
]

COMPRESSING: Final = "compressing"
COMPRESSED: Final = "compressed"
#: Keys of the read-only views the files are read from: ``ondemand-<unique> <chain id>``.
KEY_PREFIX: Final = "ondemand-"
MAX_CONCURRENT: Final = 4
# What a tar-split record may expand to: a tar entry takes at least 512 bytes of stream, and its record
# line holds those bytes in base64 (4/3) with the entry's name and some 100 bytes of JSON, so no real
# record is larger than three times its stream; the MiB covers the smallest layers.
_RECORD_RATIO: Final = 3
_RECORD_SLACK: Final = 1 << 20
# How many entries a record may hold: each tar header (512 bytes) makes at most a segment and a file
# entry; the slack covers the end-of-archive segments.
_ENTRY_SLACK: Final = 16
#: The snapshotters whose views share the committed snapshot's files; another's view is a copy.
_SHARED_VIEWS: Final = frozenset({"overlayfs"})

ProgressFunc = Callable[[Progress], None]


class Stores(Protocol):
    """What producing blobs needs of a daemon: content, image records, snapshotters, and a lease over them.

    A :class:`~pycontainerd.client.Client` is one; the daemon wraps its
    metadata store in one.  ``lease()`` yields the same stores holding a new
    lease, removed when the block ends.
    """

    @property
    def content(self) -> content_api.Store: ...

    @property
    def images(self) -> images_api.Store: ...

    def snapshotter(self, name: str = "") -> Snapshotter:
        """Snapshotter ``name`` ("" for the daemon's default)."""
        ...

    def lease(self) -> AbstractContextManager[Stores]: ...


class _Content(Provider, Manager, Protocol):
    """The roles :func:`needs_blobs` reads through."""


def _present(content: Manager, digest: str) -> bool:
    try:
        content.info(digest)
    except NotFound:
        return False
    return True


def _read_manifest(content: Provider, target: Descriptor) -> tuple[Manifest, bytes]:
    limit = current().max_manifest_size
    if target.size > limit:
        raise exceeded(f"manifest {target.digest}: {target.size} bytes", "max_manifest_size", limit)
    data = read_blob(content, target.digest)
    return parse_manifest(data, target.media_type), data


def needs_blobs(content: _Content, target: Descriptor) -> bool:
    """Whether ``target`` is a manifest with tar-split records and at least one layer blob absent.

    What :func:`materialize` would change; for anything else (an index, a
    pulled image, a manifest that is not here) False.  It reads the
    manifest's labels first, so an image that was never migrated costs one
    question.
    """
    if not mt.is_manifest(target.media_type):
        return False
    try:
        if not tar_splits(dict(content.info(target.digest).labels)):
            return False
        manifest, _ = _read_manifest(content, target)
    except NotFound:
        return False
    return any(not _present(content, layer.digest) for layer in manifest.layers)


def find_tar_split(content: Manager, diff_id: str) -> str | None:
    """The digest of a stored tar-split record that rebuilds the layer ``diff_id``, if there is one."""
    for info in content.walk([f'labels."{LABEL_DIFF_ID}"=="{diff_id}"']):
        return info.digest
    return None


def _uncompressed(desc: Descriptor) -> bool:
    return from_media_type(desc.media_type) is Compression.NONE


def tar_split_labels(content: Manager, layers: Sequence[Descriptor], diff_ids: Sequence[str]) -> dict[str, str]:
    """The tar-split labels a new manifest on these layers needs: one for each absent layer a stored record rebuilds.

    For whoever writes a manifest on a migrated image's layers (a commit, a
    build step): with them the new image can be materialized too, and the
    collector keeps the records as long as it.  Only uncompressed layers
    can be absent this way; the others cost nothing to look at.
    """
    labels: dict[str, str] = {}
    for i, (layer, diff_id) in enumerate(zip(layers, diff_ids, strict=False)):
        if _uncompressed(layer) and layer.digest == diff_id and not _present(content, layer.digest):
            record = find_tar_split(content, diff_id)
            if record is not None:
                labels[tar_split_label(i)] = record
    return labels


# -- the plan -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Layer:
    """One absent layer to produce: where it is in the manifest, what rebuilds it and where its files are.

    ``desc`` is the uncompressed stream's descriptor (digest the diff id);
    when the manifest does not tell its size (a compressed layer whose
    blob went missing) ``sized`` is off, and the layer size limit bounds
    the stream instead.
    """

    index: int
    desc: Descriptor
    chain_id: str
    record: str  # the tar-split blob's digest
    sized: bool = True  # whether desc.size is the stream's

    @property
    def diff_id(self) -> str:
        return self.desc.digest

    def what(self, image: str) -> str:
        return f"image {quote(image)}: layer {self.index} ({self.diff_id})"


@dataclass(frozen=True)
class _Plan:
    manifest: Manifest
    raw: dict[str, Any]  # the manifest's document, to write again with new layers
    labels: dict[str, str]  # the manifest's labels
    absent: tuple[_Layer, ...]
    snapshotter: str


def _plan(content: content_api.Store, image: Image, snapshotter: str) -> _Plan:
    target = image.target
    manifest, data = _read_manifest(content, target)
    labels = dict(content.info(target.digest).labels)
    records = tar_splits(labels)
    limit = current().max_config_size
    if manifest.config.size > limit:
        raise exceeded(f"image config {manifest.config.digest}: {manifest.config.size} bytes", "max_config_size", limit)
    diff_ids = parse_config(read_blob(content, manifest.config.digest)).diff_ids
    if len(diff_ids) != len(manifest.layers):
        raise InvalidArgument(
            f"image {quote(image.name)}: its config lists {len(diff_ids)} diff ids for {len(manifest.layers)} layers"
        )
    chains = chain_ids(diff_ids)
    absent: list[_Layer] = []
    for i, (desc, diff_id) in enumerate(zip(manifest.layers, diff_ids, strict=True)):
        if _present(content, desc.digest):
            continue
        where = f"image {quote(image.name)}: layer {i} ({desc.digest})"
        if i not in records:
            raise NotFound(f"{where}: its blob is not in the content store and no tar-split record rebuilds it")
        if _uncompressed(desc) and desc.digest == diff_id:
            absent.append(_Layer(i, desc, chains[i], records[i]))
        elif _labelled_for(content, records[i], diff_id):  # a compressed blob lost: its stream is rebuilt all the same
            absent.append(_Layer(i, Descriptor(mt.OCI_LAYER, diff_id, 0), chains[i], records[i], sized=False))
        else:
            raise InvalidArgument(
                f"{where}: its blob is absent and it is not the uncompressed layer {diff_id} a tar-split record rebuilds"
            )
    if not snapshotter:
        snapshotter = _unpacked_in(content, manifest.config.digest, chains[-1] if chains else "")
    return _Plan(manifest, json.loads(data), labels, tuple(absent), snapshotter)


def _labelled_for(content: Manager, record: str, diff_id: str) -> bool:
    """Whether the stored blob ``record`` is a tar-split record labelled for the layer ``diff_id``."""
    try:
        return content.info(record).labels.get(LABEL_DIFF_ID) == diff_id
    except NotFound:
        return False


def _unpacked_in(content: Manager, config: str, top: str) -> str:
    """The snapshotter the config's gc label says the image is unpacked in; "" (the default) when none says so."""
    labels = content.info(config).labels
    found = sorted(
        k[len(LABEL_GC_SNAPSHOT) :] for k, v in labels.items() if k.startswith(LABEL_GC_SNAPSHOT) and v == top
    )
    return found[0] if found else ""


# -- one layer ----------------------------------------------------------------------


class _NotTheLayer(InvalidArgument):
    """The rebuilt stream is not the layer's (its digest differs): a changed file, or a record of another layer."""


class _Stopped(Canceled):
    """A layer given up because another failed (or was canceled): never the error the caller gets."""


class _Ingest(io.RawIOBase):
    """The gzip stream on its way into an open ingest: hashed and counted here, written in 1 MiB pieces."""

    def __init__(self, writer: content_api.Writer) -> None:
        self._writer = writer
        self._buffer = bytearray()
        self._sha = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        data = bytes(b)
        self._sha.update(data)
        self.size += len(data)
        self._buffer += data
        if len(self._buffer) >= CHUNK:
            self.drain()
        return len(data)

    def drain(self) -> None:
        if self._buffer:
            self._writer.write(bytes(self._buffer))
            self._buffer.clear()

    @property
    def digest(self) -> str:
        return "sha256:" + self._sha.hexdigest()


def _record_entries(raw: BinaryIO, limit: int, max_entries: int, check: Callable[[], None]) -> Iterator[TarSplitEntry]:
    """The entries of a gzip tar-split record, refusing one that expands past ``limit`` bytes or ``max_entries`` entries.

    ``check`` runs before each entry: entries that yield no bytes (empty
    segments, empty files) would otherwise never reach a cancel.
    """
    decoder = TarSplitDecoder()
    total = entries = 0

    def counted(batch: list[TarSplitEntry]) -> Iterator[TarSplitEntry]:
        nonlocal entries
        for entry in batch:
            check()
            entries += 1
            if entries > max_entries:
                raise InvalidArgument(
                    f"the tar-split record holds more than {max_entries} entries, more than its layer can need"
                )
            yield entry

    for chunk in decompressed_chunks(raw, Compression.GZIP):
        check()
        total += len(chunk)
        if total > limit:
            raise InvalidArgument(f"the tar-split record expands past {limit} bytes, more than its layer can need")
        yield from counted(decoder.feed(chunk))
    yield from counted(decoder.close())


#: Mount options the views never keep, and those they always get: read-only, and no file in them is
#: a device, a set-id program or anything executable (a record names the files the daemon opens).
_VIEW_DROPPED: Final = frozenset({"rw", "ro", "dev", "suid", "exec"})
_VIEW_OPTIONS: Final = ("ro", "nodev", "nosuid", "noexec")


@contextlib.contextmanager
def _read_only(mounts: Sequence[Mount]) -> Iterator[Path]:
    """The view's mounts on a temporary directory, read-only, nodev, nosuid and noexec whatever they say."""
    safe = [
        Mount(m.type, m.source, (*(o for o in m.options if o not in _VIEW_DROPPED), *_VIEW_OPTIONS), m.target)
        for m in mounts
    ]
    with mounted(safe) as root:
        yield root


class _Producer:
    """Makes the absent layers of one image, several at a time; the first failure stops the others."""

    def __init__(
        self, stores: Stores, plan: _Plan, name: str, progress: ProgressFunc | None, cancel: threading.Event | None
    ) -> None:
        self._stores = stores
        self._content = stores.content
        self._plan = plan
        self._name = name
        self._progress = progress
        self._stop = threading.Event()
        self._cancel = cancel or threading.Event()

    def _emit(self, p: Progress) -> None:
        if self._progress is not None:
            self._progress(p)

    def _check(self) -> None:
        """Canceled once the caller cancels or another layer failed."""
        if self._cancel.is_set():
            raise Canceled(f"making the layer blobs of {quote(self._name)} canceled")
        if self._stop.is_set():
            raise _Stopped("stopped: another layer failed")

    def run(self, max_concurrent: int) -> dict[int, Descriptor]:
        todo = self._plan.absent
        for layer in todo:
            self._emit(Progress(event="waiting", name=ref_key(layer.desc), total=layer.desc.size, desc=layer.desc))
        if self._views_are_copies():
            max_concurrent = 1  # each view holds a whole copy of its snapshot's tree
        with ThreadPoolExecutor(max(1, min(max_concurrent, len(todo))), thread_name_prefix="ondemand") as pool:
            futures = [pool.submit(self._one, layer) for layer in todo]
            errors: list[BaseException] = []
            for f in futures:
                try:
                    f.result()
                except BaseException as e:
                    errors.append(e)
        if errors:
            failed = [e for e in errors if not isinstance(e, _Stopped)]  # the failure, or the caller's cancel
            raise (failed or errors)[0]
        return {layer.index: f.result() for layer, f in zip(todo, futures, strict=True)}

    def _views_are_copies(self) -> bool:
        if not self._plan.absent:
            return False
        name = getattr(self._stores.snapshotter(self._plan.snapshotter), "name", self._plan.snapshotter)
        return name not in _SHARED_VIEWS

    def _one(self, layer: _Layer) -> Descriptor:
        try:
            found = self._reusable(layer.diff_id) or self._rebuild(layer)
        except BaseException as e:
            self._stop.set()  # the others stop at their next entry or chunk, not once this one's turn comes
            if isinstance(e, Canceled) or not isinstance(e, ContainerdError):
                raise
            raise type(e)(f"{layer.what(self._name)}: {e}") from e
        size = layer.desc.size
        self._emit(Progress(event=COMPRESSED, name=ref_key(layer.desc), progress=size, total=size, desc=layer.desc))
        return found

    def _reusable(self, diff_id: str) -> Descriptor | None:
        """A gzip blob already stored for ``diff_id`` (as a layer descriptor), if there is one, held by the lease.

        Only another image holds it until the new manifest does: deleted
        meanwhile, a collection (one removing a view triggers it) would
        take it, and the manifest would name a blob that is not there.
        """
        for info in self._content.walk([f'labels."{LABEL_UNCOMPRESSED}"=="{diff_id}"']):
            if info.digest == diff_id or not self._hold(info.digest):
                continue
            try:
                reader = self._content.reader_at(info.digest)
            except NotFound:
                continue
            try:
                head = reader.read_at(0, 4)
            finally:
                reader.close()
            if sniff(head) is Compression.GZIP:
                return Descriptor(mt.OCI_LAYER_GZIP, info.digest, info.size)
        return None

    def _hold(self, digest: str) -> bool:
        """Take the stored blob ``digest`` into the lease; whether it is still here.

        An ingest expecting a stored blob fails with AlreadyExists, and the
        store adds the blob to the writer's lease then; when it is not
        stored the ingest just opened is dropped.
        """
        ref = f"{KEY_PREFIX}hold-{secrets.token_hex(6)}"
        try:
            writer = open_writer(self._content, ref, expected=digest)
        except AlreadyExists:
            return _present(self._content, digest)
        with contextlib.suppress(Exception):
            writer.close()
        with contextlib.suppress(Exception):
            self._content.abort(ref)
        return False

    def _record(self, layer: _Layer) -> tuple[int, int]:
        """Check the tar-split blob before reading it; how many bytes and entries it may expand to."""
        try:
            info = self._content.info(layer.record)
        except NotFound:
            raise NotFound(f"its tar-split record {layer.record} is not in the content store") from None
        said = info.labels.get(LABEL_DIFF_ID, "")
        if said != layer.diff_id:
            raise InvalidArgument(
                f"the tar-split record {layer.record} is labelled for {quote(said) if said else 'no layer'}, not this one"
            )
        if info.size > MAX_TAR_SPLIT:
            raise InvalidArgument(f"the tar-split record {layer.record} is {info.size} bytes, over {MAX_TAR_SPLIT}")
        limit = current().max_layer_size
        if layer.desc.size > limit:
            raise exceeded(f"a layer of {layer.desc.size} bytes", "max_layer_size", limit)
        size = layer.desc.size if layer.sized else limit
        return _RECORD_RATIO * size + _RECORD_SLACK, 2 * (size // 512) + _ENTRY_SLACK

    def _rebuild(self, layer: _Layer) -> Descriptor:
        self._check()
        expands = self._record(layer)
        sn = self._stores.snapshotter(self._plan.snapshotter)
        key = f"{KEY_PREFIX}{secrets.token_hex(6)} {layer.chain_id}"
        try:
            mounts = sn.view(key, layer.chain_id)
        except NotFound:
            raise NotFound(f"its snapshot {layer.chain_id} is gone, so its blob cannot be rebuilt") from None
        try:
            with _read_only(mounts) as root:
                return self._compress(layer, root, expands)
        finally:
            with contextlib.suppress(ContainerdError):
                sn.remove(key)

    def _stream(self, layer: _Layer, root: Path, expands: tuple[int, int], *, check_crc: bool) -> Iterator[bytes]:
        """The layer's tar stream from its record and the files under ``root``; never longer than the layer."""
        limit = layer.desc.size if layer.sized else current().max_layer_size
        with (
            open_blob(self._content, layer.record) as raw,
            SafeDir.open(root) as tree,
            DiffDirSource(tree) as source,
        ):
            entries = _record_entries(raw, *expands, self._check)
            assembler = TarAssembler(entries, source, check_crc=check_crc)
            size = 0
            for chunk in assembler.chunks():
                size += len(chunk)
                if size > limit:
                    what = "the layer's" if layer.sized else "max_layer_size,"
                    raise InvalidArgument(f"the rebuilt tar stream is longer than {what} {limit} bytes")
                self._check()
                yield chunk
            result = assembler.result
        if layer.sized and result.size != limit:
            raise InvalidArgument(f"the rebuilt tar stream is {result.size} bytes, not the layer's {limit}")
        if result.digest != layer.diff_id:
            raise _NotTheLayer(f"the rebuilt tar stream has digest {result.digest}, not its diff id")

    def _compress(self, layer: _Layer, root: Path, expands: tuple[int, int]) -> Descriptor:
        content = self._content
        ref = f"{KEY_PREFIX}{layer.diff_id}-{secrets.token_hex(4)}"
        writer = open_writer(content, ref)
        name, total = ref_key(layer.desc), layer.desc.size
        throttle = Throttle()
        try:
            out = _Ingest(writer)
            gz = open_compressed(cast(BinaryIO, out), Compression.GZIP)
            done = 0
            try:
                for chunk in self._stream(layer, root, expands, check_crc=False):
                    gz.write(chunk)
                    done += len(chunk)
                    if throttle.due():
                        self._emit(Progress(event=COMPRESSING, name=name, progress=done, total=total, desc=layer.desc))
            except _NotTheLayer as e:
                raise self._precisely(layer, root, expands) or e from e
            gz.close()
            out.drain()
            try:
                writer.commit(out.size, out.digest, {LABEL_UNCOMPRESSED: layer.diff_id})
            except AlreadyExists:
                ensure_labels(content, out.digest, {LABEL_UNCOMPRESSED: layer.diff_id})
        except BaseException:
            with contextlib.suppress(Exception):
                writer.close()
            with contextlib.suppress(Exception):
                content.abort(ref)
            raise
        return Descriptor(mt.OCI_LAYER_GZIP, out.digest, out.size)

    def _precisely(self, layer: _Layer, root: Path, expands: tuple[int, int]) -> InvalidArgument | None:
        """The error that names the file at fault: the stream again, with the record's CRCs checked (slow, so only now)."""
        try:
            for _ in self._stream(layer, root, expands, check_crc=True):
                pass
        except _NotTheLayer:
            return None
        except InvalidArgument as precise:
            return precise
        return None


# -- the image ----------------------------------------------------------------------


def _layer_json(old: dict[str, Any], new: Descriptor) -> dict[str, Any]:
    docker = old.get("mediaType", "").startswith("application/vnd.docker.")
    media_type = mt.DOCKER_LAYER_GZIP if docker and new.media_type == mt.OCI_LAYER_GZIP else new.media_type
    return {**old, "mediaType": media_type, "digest": new.digest, "size": new.size}


def _write_manifest(content: content_api.Store, plan: _Plan, made: dict[int, Descriptor]) -> Descriptor:
    doc = dict(plan.raw)
    doc["layers"] = [_layer_json(entry, made[i]) if i in made else entry for i, entry in enumerate(doc["layers"])]
    data = json.dumps(doc, separators=(",", ":")).encode()
    manifest = parse_manifest(data, plan.manifest.media_type)
    target = Descriptor(plan.manifest.media_type, "sha256:" + hashlib.sha256(data).hexdigest(), len(data))
    kept = {
        k: v
        for k, v in plan.labels.items()
        if not k.startswith(GC_REF_PREFIX + ".l.") and k != GC_REF_PREFIX + ".config"
    }
    labels = {**kept, **child_gc_labels(target, [manifest.config, *manifest.layers])}
    write_blob(content, f"{KEY_PREFIX}{target.digest}", data, target.digest, labels)
    ensure_labels(content, target.digest, labels)
    return target


def _config_of(content: Provider, target: Descriptor) -> str | None:
    """The config digest of the manifest ``target``; None when it is not here (or not a manifest)."""
    if not mt.is_manifest(target.media_type):
        return None
    try:
        return _read_manifest(content, target)[0].config.digest
    except (NotFound, InvalidArgument):
        return None


def _dangling_of(images: images_api.Store, content: Provider, config: str, digest: str = "") -> Image | None:
    """The ``moby-dangling@`` record of the image with ``config``: the one named after ``digest`` first."""
    if digest:
        with contextlib.suppress(NotFound):
            return images.get(DANGLING_PREFIX + digest)
    for record in sorted(images.list(), key=lambda r: r.name):
        if record.name.startswith(DANGLING_PREFIX) and _config_of(content, record.target) == config:
            return record
    return None


def _current(stores: Stores, image: Image) -> Image:
    """The record as it is now: an earlier call may have moved it, and renamed a dangling one after its new manifest.

    A ``docker save <id> <id>``, or two saves of one dangling image at
    once, hold the name the first call removed.
    """
    try:
        return stores.images.get(image.name)
    except NotFound:
        pass
    if image.name.startswith(DANGLING_PREFIX):
        config = _config_of(stores.content, image.target)
        if config is not None:
            return _dangling_of(stores.images, stores.content, config) or image
    return image


def _retarget(images: images_api.Store, content: Provider, image: Image, old: Descriptor, new: Descriptor) -> Image:
    """Point every record naming ``old`` at ``new`` (a dangling one is renamed after it); ``image``'s record after.

    The records of one manifest are one image: left on the old manifest,
    the other names would keep it alive and be made again at their push.
    A dangling record another call renamed meanwhile is found by its name
    after ``new``, or by its config.
    """
    name = image.name
    for record in images.list([f'target.digest=="{old.digest}"']):
        if record.name == DANGLING_PREFIX + old.digest:
            made = replace(record, name=DANGLING_PREFIX + new.digest, target=new)
            with contextlib.suppress(AlreadyExists):
                images.create(made)
            with contextlib.suppress(NotFound):
                images.delete(record.name)
            if record.name == name:
                name = made.name
        else:
            images.update(replace(record, target=new), ["target"])
    try:
        return images.get(name)
    except NotFound:
        if not name.startswith(DANGLING_PREFIX):
            raise
        config = _config_of(content, new)
        renamed = _dangling_of(images, content, config, new.digest) if config else None
        if renamed is None:
            raise
        return renamed


def materialize(
    stores: Stores,
    image: Image,
    *,
    snapshotter: str = "",
    progress: ProgressFunc | None = None,
    cancel: threading.Event | None = None,
    max_concurrent: int = MAX_CONCURRENT,
) -> Image:
    """Make the absent layer blobs of a migrated image and point its records at a manifest listing them.

    Returns the image's record as it is afterwards (unchanged when nothing
    was absent).  ``snapshotter`` is where its snapshots are, by default the
    one its config says it is unpacked in.  ``progress`` hears ``waiting``,
    ``compressing`` and ``compressed`` per layer (named ``layer-<diff id>``,
    totals in uncompressed bytes), from worker threads; ``cancel`` set stops
    it (:class:`~pycontainerd.errors.Canceled`).  Errors name the
    image and layer: NotFound when a snapshot or record is gone,
    InvalidArgument when a record is damaged or the rebuilt stream is not
    the layer; nothing half-written stays and no record changes then.
    """
    image = _current(stores, image)
    if not needs_blobs(stores.content, image.target):
        return image
    plan = _plan(stores.content, image, snapshotter)
    with stores.lease() as leased:
        made = _Producer(leased, plan, image.name, progress, cancel).run(max_concurrent)
        target = _write_manifest(leased.content, plan, made)
        return _retarget(leased.images, leased.content, image, image.target, target)
