"""A pull's progress as Docker's JSON messages, translated from containerd's transfer progress.

containerd reports each blob by its ingest name (``layer-sha256:...``) with
events ``downloading``, ``complete``, ``already exists`` and, when layers are
unpacked, ``unpacking`` and ``unpacked``.  Docker's client expects one line
of JSON per change, each layer named by the first 12 hex digits of its
digest: ``Pulling fs layer``, ``Downloading`` (with ``progressDetail``),
``Download complete``, ``Extracting``, ``Pull complete`` or ``Already
exists``, then ``Digest:`` and ``Status:`` lines.  Pure: messages go to the
``emit`` callable given.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from pycontainerd.transfer.progress import Progress

__all__ = ["Message", "PullReporter", "PushReporter", "aux_message", "error_message", "progress_bar", "short_id"]

Message = dict[str, Any]
_BAR = 50


def short_id(digest: str) -> str:
    return digest.partition(":")[2][:12] or digest[:12]


def _human(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.4g}{unit}"
        n /= 1000
    return f"{n}B"  # pragma: no cover


def progress_bar(current: int, total: int) -> str:
    """Docker's ``[====>   ]  1.2MB/3.4MB`` (the CLI draws its own on a terminal; logs keep this)."""
    if total <= 0:
        return ""
    done = min(_BAR, _BAR * current // total)
    arrow = ">" if done < _BAR else "="
    return f"[{'=' * done}{arrow}{' ' * (_BAR - done - 1)}] {_human(current):>8}/{_human(total)}"


def error_message(message: str) -> Message:
    """The last line of a stream that failed after it started."""
    return {"errorDetail": {"message": message}, "error": message}


class PullReporter:
    """Turns one pull's progress events into Docker messages; thread-safe (events come from workers)."""

    def __init__(self, emit: Callable[[Message], None], repository: str, tag_or_digest: str) -> None:
        self._emit = emit
        self._repository = repository
        self._tag = tag_or_digest
        self._lock = threading.Lock()
        self._started = False
        self._layers: dict[str, str] = {}  # short id -> last status sent
        self._order: list[str] = []
        self.downloaded = False
        """Whether any blob (not only a layer) was fetched, rather than found here."""

    def _header(self) -> None:
        if not self._started:
            self._started = True
            self._emit({"status": f"Pulling from {self._repository}", "id": self._tag})

    def _layer(self, layer: str, status: str, current: int = -1, total: int = 0) -> None:
        msg: Message = {"status": status, "progressDetail": {}, "id": layer}
        if current >= 0:
            msg["progressDetail"] = {"current": current, "total": total}
            msg["progress"] = progress_bar(current, total)
        self._layers[layer] = status
        self._emit(msg)

    def __call__(self, p: Progress) -> None:
        with self._lock:
            if p.event.startswith("Pulling from"):
                self._header()
                return
            if p.event == "complete":
                self.downloaded = True
            if not p.name.startswith("layer-"):
                return  # indexes, manifests and configs: Docker shows layers only
            self._header()
            layer = short_id(p.name.removeprefix("layer-"))
            if layer not in self._layers:
                if p.event == "waiting":
                    return  # announced at its first real event, which may be "already exists"
                self._order.append(layer)
                if p.event in ("already exists", "already unpacked"):
                    self._layer(layer, "Already exists")
                    return
                self._layer(layer, "Pulling fs layer")
            last = self._layers[layer]
            if last in ("Already exists", "Pull complete"):
                return
            if p.event == "downloading" and p.progress > 0:
                self._layer(layer, "Downloading", p.progress, p.total)
            elif p.event == "complete":
                self._layer(layer, "Verifying Checksum")
                self._layer(layer, "Download complete")
            elif p.event == "already exists":
                self._layer(layer, "Already exists")
            elif p.event == "unpacking":
                self._layer(layer, "Extracting", 0, p.total)
            elif p.event in ("unpacked", "already unpacked"):
                self._layer(layer, "Pull complete")

    def finish(self, target_digest: str, familiar_ref: str, newer: bool) -> None:
        """The closing lines: every layer complete, the digest, and whether anything new came."""
        with self._lock:
            self._header()
            for layer in self._order:
                if self._layers[layer] not in ("Already exists", "Pull complete"):
                    self._layer(layer, "Pull complete")
            self._emit({"status": f"Digest: {target_digest}"})
            if newer:
                self._emit({"status": f"Status: Downloaded newer image for {familiar_ref}"})
            else:
                self._emit({"status": f"Status: Image is up to date for {familiar_ref}"})


def aux_message(aux: Message) -> Message:
    """A message carrying data for the client rather than text (a push's result)."""
    return {"progressDetail": {}, "aux": aux}


class PushReporter:
    """Turns one push's progress events into Docker's per-layer messages; thread-safe.

    Only layers are shown, each by its short id: ``Preparing`` when the push
    starts, ``Pushing`` with progress, then ``Pushed``, ``Layer already
    exists`` or ``Mounted from <repository>``.  ``mounted_from`` names the
    repository a mounted blob came from.
    """

    def __init__(self, emit: Callable[[Message], None], mounted_from: Callable[[str], str] | None = None) -> None:
        self._emit = emit
        self._mounted_from = mounted_from
        self._lock = threading.Lock()
        self._done: set[str] = set()
        self._started: set[str] = set()

    def _layer(self, layer: str, status: str, current: int = -1, total: int = 0) -> None:
        msg: Message = {"status": status, "progressDetail": {}, "id": layer}
        if current >= 0:
            msg["progressDetail"] = {"current": current, "total": total}
            msg["progress"] = progress_bar(current, total)
        self._emit(msg)

    def __call__(self, p: Progress) -> None:
        if not p.name.startswith("layer-"):
            return
        digest = p.name.removeprefix("layer-")
        layer = short_id(digest)
        with self._lock:
            if layer in self._done:
                return
            if p.event == "waiting":
                if layer not in self._started:
                    self._started.add(layer)
                    self._layer(layer, "Preparing")
            elif p.event == "uploading":
                self._layer(layer, "Pushing", p.progress, p.total)
            elif p.event == "complete":
                self._done.add(layer)
                if p.total:
                    self._layer(layer, "Pushing", p.total, p.total)
                self._layer(layer, "Pushed")
            elif p.event == "already exists":
                self._done.add(layer)
                self._layer(layer, "Layer already exists")
            elif p.event == "mounted":
                self._done.add(layer)
                source = self._mounted_from(digest) if self._mounted_from else ""
                self._layer(layer, f"Mounted from {source}" if source else "Pushed")
