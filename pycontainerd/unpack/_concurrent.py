"""Unpacking while the fetch runs: each layer applied as soon as every layer below it is, while it downloads.

containerd's pull unpacks this way (its unpacker wraps the fetch's
handlers).  Here the fetch tells an :class:`Unpacker` of each blob it has
put in the store, fetched and verified or found there already, with its
labels set; one thread per :class:`UnpackTarget` runs :func:`unpack`, whose
reads wait until the fetch has reported the blob they need.  Snapshots,
labels and checks are therefore exactly :func:`unpack`'s; only the waiting
differs.  A blob the fetch ends without (a platform it did not fetch) is
read from the store as it is, so an unpack fails as it would have after the
fetch.

A layer need not wait for its download to end: when the fetch can show its
ingest (the daemon's local store) and the applier can read from elsewhere
than the store (the local differ), the layer is applied as its bytes come,
each read waiting for the bytes it wants.  Layers are small next to what
their inflating and writing cost, so a one-layer image takes about the
longer of its download and its apply rather than their sum.  Such an apply
answers only after the download is stored and digest checked.

Either side's failure stops the other: an unpack that fails sets the
transfer's cancel event, which the fetch checks between reads; unpacks
waiting for a blob give up when the fetch fails.  :meth:`Unpacker.wait`
joins the threads, so nothing touches the store after the caller's lease is
gone.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol, cast

from .. import platforms
from ..content import Info, ReaderAt
from ..diff.differ import Applier
from ..errors import Canceled
from ..images import Descriptor
from ..mount import Mount
from ..snapshots import Snapshotter
from ._unpack import LayerEvent, UnpackContent, UnpackResult, unpack

__all__ = ["UnpackTarget", "Unpacker"]

_POLL = 0.25  # how often a waiting unpack looks at the cancel event, which cannot wake it


class _Stopped(Canceled):
    """An unpack gave up waiting because the fetch failed or the transfer was canceled: not a failure of its own."""


@dataclass(frozen=True)
class UnpackTarget:
    """Where one unpack goes: a snapshotter (under the caller's lease), its name, an applier and a platform."""

    snapshotter: Snapshotter
    snapshotter_name: str
    applier: Applier
    matcher: platforms.Matcher | None = None  # None: this host's platform


class _Arrivals:
    """The blobs a running fetch has stored, or is writing; readers block until what they need is there."""

    def __init__(self, cancel: threading.Event) -> None:
        self._cancel = cancel
        self._cond = threading.Condition()
        self._stored: set[str] = set()
        self._writing: dict[str, tuple[ReaderAt, int]] = {}  # layers downloading: their ingest, bytes written
        self._ended: bool | None = None  # None while fetching; then whether the fetch succeeded

    def stored(self, digest: str) -> None:
        with self._cond:
            self._stored.add(digest)
            self._cond.notify_all()

    def writing(self, digest: str, reader: ReaderAt, offset: int) -> None:
        with self._cond:
            old = self._writing.get(digest)
            self._writing[digest] = (reader, offset)
            self._cond.notify_all()
        if old is not None:
            old[0].close()

    def written(self, digest: str, offset: int) -> None:
        with self._cond:
            reader, _ = self._writing[digest]
            self._writing[digest] = (reader, offset)
            self._cond.notify_all()

    def _check(self, digest: str) -> None:
        if self._ended is False or self._cancel.is_set():
            raise _Stopped(f"unpack stopped waiting for {digest}: the fetch did not complete")

    def wait_readable(self, digest: str) -> ReaderAt | None:
        """Once ``digest`` is stored (None) or downloading (its ingest's reader); _Stopped if the fetch failed."""
        with self._cond:
            while digest not in self._stored:
                if digest in self._writing:
                    return self._writing[digest][0]
                self._check(digest)
                if self._ended:
                    return None
                self._cond.wait(_POLL)
            return None

    def wait_bytes(self, digest: str, end: int) -> int | None:
        """How many bytes of the layer are written, once at least ``end`` are; None once it is stored.

        _Stopped if the fetch failed.
        """
        with self._cond:
            while digest not in self._stored:
                written = self._writing[digest][1]
                if written >= end:
                    return written
                self._check(digest)
                if self._ended:
                    raise _Stopped(f"the fetch ended without storing {digest}")
                self._cond.wait(_POLL)
            return None

    def close(self) -> None:
        with self._cond:
            readers = [r for r, _ in self._writing.values()]
            self._writing.clear()
        for r in readers:
            r.close()

    def end(self, ok: bool) -> None:
        with self._cond:
            self._ended = ok
            self._cond.notify_all()

    def wait(self, digest: str) -> None:
        """Return once ``digest`` is stored, or the fetch succeeded without it; _Stopped if the fetch failed."""
        with self._cond:
            while digest not in self._stored:
                if self._ended is False or self._cancel.is_set():
                    raise _Stopped(f"unpack stopped waiting for {digest}: the fetch did not complete")
                if self._ended:
                    return
                self._cond.wait(_POLL)


class _Downloading:
    """A layer's ingest, read as the fetch writes it: each read waits until its bytes are there.

    Shared by every target's unpack, so closing it is left to the Unpacker.
    """

    def __init__(self, arrivals: _Arrivals, layer: Descriptor, ingest: ReaderAt) -> None:
        self._arrivals = arrivals
        self._layer = layer
        self._ingest = ingest

    @property
    def size(self) -> int:
        return self._layer.size

    def read_at(self, offset: int, n: int) -> bytes:
        """What is there of the ``n`` bytes at ``offset``, once there is some: short reads keep the apply close behind."""
        end = min(offset + n, self._layer.size)
        if end <= offset:
            return b""
        written = self._arrivals.wait_bytes(self._layer.digest, offset + 1)
        if written is not None:
            end = min(end, written)
        return self._ingest.read_at(offset, end - offset)

    def close(self) -> None:
        pass


class _AppliesFrom(Protocol):
    """An applier that can read a layer from elsewhere than its content store (the local differ)."""

    def apply_from(self, reader: ReaderAt, desc: Descriptor, mounts: Sequence[Mount]) -> Descriptor: ...


@dataclass(frozen=True)
class _ApplyingFrom:
    """An Applier for one layer, reading it from its ingest while it downloads.

    Whatever the apply makes of the bytes, it answers only once the download
    is stored, digest checked: a download that fails is the error to report
    (a corrupt blob fails its inflate or its diffID too, but that is the
    symptom), and no snapshot is committed from bytes the store refused.
    """

    differ: _AppliesFrom
    reader: ReaderAt
    arrivals: _Arrivals
    digest: str

    def apply(self, desc: Descriptor, mounts: Sequence[Mount]) -> Descriptor:
        try:
            applied = self.differ.apply_from(self.reader, desc, mounts)
        except Exception:
            self.arrivals.wait(self.digest)
            raise
        self.arrivals.wait(self.digest)
        return applied


class _Arriving:
    """A content store whose reads first wait for the fetch to store the blob read."""

    def __init__(self, inner: UnpackContent, arrivals: _Arrivals) -> None:
        self._inner = inner
        self._arrivals = arrivals

    def reader_at(self, digest: str) -> ReaderAt:
        self._arrivals.wait(digest)
        return self._inner.reader_at(digest)

    def info(self, digest: str) -> Info:
        self._arrivals.wait(digest)
        return self._inner.info(digest)

    def update(self, info: Info, fieldpaths: Sequence[str] = ()) -> Info:
        return self._inner.update(info, fieldpaths)

    def walk(self, filters: Sequence[str] = ()) -> Iterator[Info]:
        return self._inner.walk(filters)

    def delete(self, digest: str) -> None:
        self._inner.delete(digest)


class Unpacker:
    """Unpack ``image`` into each target on threads of its own, while a fetch fills ``content``.

    The fetch calls :meth:`stored` for each blob it has stored and
    :meth:`fetch_ended` when it is over, however it ended; then the caller
    calls :meth:`wait`.  ``cancel`` is the transfer's: an unpack that fails
    sets it, so the fetch stops.  ``progress`` is called from the threads.
    """

    def __init__(
        self,
        content: UnpackContent,
        image: Descriptor,
        targets: Sequence[UnpackTarget],
        *,
        cancel: threading.Event,
        progress: Callable[[LayerEvent], None] | None = None,
    ) -> None:
        self._arrivals = _Arrivals(cancel)
        self._content = _Arriving(content, self._arrivals)
        self._image = image
        self._cancel = cancel
        self._progress = progress
        self._lock = threading.Lock()
        self._results: list[UnpackResult | None] = [None] * len(targets)
        self._failure: BaseException | None = None
        self._stopped_fetch = False
        self._stopped: _Stopped | None = None
        self._threads = [
            threading.Thread(target=self._run, args=(i, t), name=f"unpack-{t.snapshotter_name}", daemon=True)
            for i, t in enumerate(targets)
        ]
        for t in self._threads:
            t.start()

    def stored(self, desc: Descriptor) -> None:
        """The fetch has put ``desc`` in the store, with its labels."""
        self._arrivals.stored(desc.digest)

    def receiving(self, desc: Descriptor, reader: ReaderAt, offset: int) -> None:
        """Layer ``desc`` is downloading into an ingest ``reader`` shows; ``offset`` bytes are there."""
        self._arrivals.writing(desc.digest, reader, offset)

    def received(self, desc: Descriptor, offset: int) -> None:
        """``offset`` bytes of layer ``desc`` are written."""
        self._arrivals.written(desc.digest, offset)

    def fetch_ended(self, ok: bool) -> None:
        """The fetch is over: it stored everything (``ok``), or it failed and will store nothing more."""
        self._arrivals.end(ok)

    def cause(self) -> BaseException | None:
        """The unpack failure that canceled the transfer, if one did: the error to report rather than the fetch's."""
        with self._lock:
            return self._failure if self._stopped_fetch else None

    def join(self) -> None:
        """Wait until every unpack thread is done, however it ended."""
        for t in self._threads:
            t.join()
        self._arrivals.close()

    def wait(self) -> list[UnpackResult]:
        """Join the unpacks; their results in the order of the targets, or the first failure raised."""
        self.join()
        if self._failure is not None:
            raise self._failure
        if self._stopped is not None:
            raise self._stopped
        return [r for r in self._results if r is not None]

    def _applier_for(self, applier: Applier, layer: Descriptor) -> Applier:
        """The applier for ``layer`` once it can be read: from its ingest while it downloads, if the differ can."""
        ingest = self._arrivals.wait_readable(layer.digest)
        if ingest is None:
            return applier
        if not hasattr(applier, "apply_from"):
            self._arrivals.wait(layer.digest)
            return applier
        reader = _Downloading(self._arrivals, layer, ingest)
        return _ApplyingFrom(cast(_AppliesFrom, applier), reader, self._arrivals, layer.digest)

    def _run(self, i: int, target: UnpackTarget) -> None:
        try:
            self._results[i] = unpack(
                self._content,
                target.snapshotter,
                target.snapshotter_name,
                target.applier,
                self._image,
                matcher=target.matcher,
                progress=self._progress,
                applier_for=lambda layer: self._applier_for(target.applier, layer),
            )
        except _Stopped as e:
            with self._lock:
                self._stopped = self._stopped or e
        except BaseException as e:
            with self._lock:
                if self._failure is None:
                    self._failure = e
                    self._stopped_fetch = not self._cancel.is_set()
            self._cancel.set()  # the fetch stops; the other unpacks stop at their next wait
