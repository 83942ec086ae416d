"""A Docker layer's exact tar stream, rebuilt from its tar-split record and its overlay2 ``diff`` directory.

The stream's sha256 must equal the layer's diff id: that is what lets a
migrated image keep Docker's image id and push with valid digests without
downloading anything again.  Files are read by the names the tar-split
records, below the layer's own directory and without following any
symbolic link (:class:`DiffDirSource`).
"""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO, Final

from ..errors import ContainerdError, InvalidArgument, quote
from ._safefs import SafeDir, clean_name, os_error
from .records import DockerStore, LayerRecord
from .tarsplit import Assembled, Segment, TarAssembler, read_entries

__all__ = [
    "MAX_TAR_SPLIT",
    "DiffDirSource",
    "LayerStream",
    "read_tar_split",
    "reassemble",
    "stream_length",
    "verify_layers",
]


class DiffDirSource:
    """:class:`~.tarsplit.FileSource` over a ``diff`` directory held open read-only.

    A tar stream lists a directory's files one after another, so the last
    directory walked to stays open for the next file (close the source, or
    use it as a context manager, to let it go).
    """

    def __init__(self, root: SafeDir) -> None:
        self._root = root
        self._dir: tuple[str, ...] | None = None
        self._dir_fd = -1

    def open(self, name: bytes) -> BinaryIO:
        try:
            parts = clean_name(name)
        except InvalidArgument as exc:
            raise InvalidArgument(f"{quote(str(self._root.path))}: {exc}") from exc
        if not parts:
            return os.fdopen(self._root.open_file(), "rb", buffering=0)  # raises: the top is a directory
        parent = parts[:-1]
        if parent != self._dir:
            self.close()
            self._dir_fd = self._root.walk(*parent)
            self._dir = parent
        return os.fdopen(self._root.open_file_in(self._dir_fd, parts), "rb", buffering=0)

    def close(self) -> None:
        if self._dir_fd >= 0:
            os.close(self._dir_fd)
        self._dir_fd, self._dir = -1, None

    def __enter__(self) -> DiffDirSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# The gzip record of a layer of a million files is some tens of MiB; this bounds what is read into memory.
MAX_TAR_SPLIT: Final = 256 << 20


def _tar_split(path: Path) -> BinaryIO:
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):  # a device is refused before it is opened
            raise InvalidArgument(f"{quote(str(path))}: not a regular file")
        # O_NONBLOCK: nor may a FIFO put there after the look hang the open
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError as exc:
        raise os_error(path, exc) from exc
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise InvalidArgument(f"{quote(str(path))}: not a regular file")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def _record(layer: LayerRecord, record: bytes | None) -> BinaryIO:
    """The layer's tar-split record to read: the bytes already read, else its file."""
    return io.BytesIO(record) if record is not None else _tar_split(layer.tar_split)


def read_tar_split(layer: LayerRecord) -> bytes:
    """The layer's tar-split record as stored (gzip), at most :data:`MAX_TAR_SPLIT` bytes; not parsed here."""
    with _tar_split(layer.tar_split) as f:
        data = f.read(MAX_TAR_SPLIT + 1)
    if len(data) > MAX_TAR_SPLIT:
        raise InvalidArgument(
            f"layer {layer.chain_id}: {quote(str(layer.tar_split))} is larger than {MAX_TAR_SPLIT} bytes"
        )
    return data


class LayerStream:
    """Iterate for the layer's tar stream in chunks; at the end its digest is held against the diff id.

    Any failure is raised as the same error class with the layer (and its
    tar-split file) named in front of the message that names the file.
    :attr:`result` is set once the iteration has ended cleanly.  With
    ``verify`` off the stream is not hashed here: the consumer hashes it
    and must hold the digest against the diff id itself.
    """

    def __init__(
        self, layer: LayerRecord, *, check_crc: bool = True, verify: bool = True, record: bytes | None = None
    ) -> None:
        self.layer = layer
        self.check_crc = check_crc
        self.verify = verify
        self.record = record  # the tar-split record already read (:func:`read_tar_split`), else read from its file
        self.result: Assembled | None = None

    def __iter__(self) -> Iterator[bytes]:
        layer = self.layer
        try:
            with (
                _record(layer, self.record) as ts,
                SafeDir.open(layer.diff_dir) as diff,
                DiffDirSource(diff) as source,
            ):
                assembler = TarAssembler(read_entries(ts), source, check_crc=self.check_crc, hashed=self.verify)
                yield from assembler.chunks()
                result = assembler.result
        except ContainerdError as exc:
            raise type(exc)(f"layer {layer.chain_id} ({quote(str(layer.tar_split))}): {exc}") from exc
        if self.verify and result.digest != layer.diff_id:
            raise InvalidArgument(
                f"layer {layer.chain_id}: the rebuilt tar stream has digest {result.digest}, not its diff id {layer.diff_id}"
            )
        self.result = result


def stream_length(layer: LayerRecord, record: bytes | None = None) -> int:
    """How many bytes the layer's tar stream has, from its tar-split record alone (no file is read).

    A writer that must announce a size before the stream (a reader of known
    length, a progress total) asks this first; the rebuild itself still
    checks every file's size against the record.  ``record``: the record
    already read (:func:`read_tar_split`), else it is read from its file.
    """
    total = 0
    try:
        with _record(layer, record) as ts:
            for entry in read_entries(ts):
                total += len(entry.payload) if isinstance(entry, Segment) else entry.size
    except ContainerdError as exc:
        raise type(exc)(f"layer {layer.chain_id} ({quote(str(layer.tar_split))}): {exc}") from exc
    return total


def reassemble(layer: LayerRecord, write: Callable[[bytes], object], *, check_crc: bool = True) -> Assembled:
    """Write the layer's tar stream through ``write``; its digest (the diff id, checked), length and entry count."""
    stream = LayerStream(layer, check_crc=check_crc)
    for chunk in stream:
        write(chunk)
    assert stream.result is not None
    return stream.result


def verify_layers(
    store: DockerStore, *, check_crc: bool = True, progress: Callable[[LayerRecord], object] | None = None
) -> None:
    """Rebuild every layer's stream (to nowhere) and drop from ``store`` each that fails, with what depends on it.

    What a dry run does: afterwards every layer left in ``store`` is known to
    rebuild to its diff id.
    """
    for layer in sorted(store.layers.values(), key=lambda layer: layer.chain_id):
        if layer.chain_id not in store.layers:
            continue  # dropped with a broken layer below it
        if progress is not None:
            progress(layer)
        try:
            for _ in LayerStream(layer, check_crc=check_crc):
                pass
        except ContainerdError as exc:
            store.drop_layer(layer.chain_id, layer.tar_split, str(exc))
