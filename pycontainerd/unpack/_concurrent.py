"""Unpacking while the fetch runs: each layer applied as soon as it, and every layer below it, is stored.

containerd's pull unpacks this way (its unpacker wraps the fetch's
handlers).  Here the fetch tells an :class:`Unpacker` of each blob it has
put in the store, fetched and verified or found there already, with its
labels set; one thread per :class:`UnpackTarget` runs :func:`unpack`, whose
reads wait until the fetch has reported the blob they need.  Snapshots,
labels and checks are therefore exactly :func:`unpack`'s; only the waiting
differs.  A blob the fetch ends without (a platform it did not fetch) is
read from the store as it is, so an unpack fails as it would have after the
fetch.

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

from .. import platforms
from ..content import Info, ReaderAt
from ..diff.differ import Applier
from ..errors import Canceled
from ..images import Descriptor
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
    """The blobs a running fetch has stored so far; readers block until theirs is there or the fetch is over."""

    def __init__(self, cancel: threading.Event) -> None:
        self._cancel = cancel
        self._cond = threading.Condition()
        self._stored: set[str] = set()
        self._ended: bool | None = None  # None while fetching; then whether the fetch succeeded

    def stored(self, digest: str) -> None:
        with self._cond:
            self._stored.add(digest)
            self._cond.notify_all()

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

    def wait(self) -> list[UnpackResult]:
        """Join the unpacks; their results in the order of the targets, or the first failure raised."""
        self.join()
        if self._failure is not None:
            raise self._failure
        if self._stopped is not None:
            raise self._stopped
        return [r for r in self._results if r is not None]

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
                fetched=lambda layer: self._arrivals.wait(layer.digest),
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
