"""The daemon's differ: layer blobs from the content store applied onto mounts, and back.

Apply avoids mounting where it can: an overlay mount with an upper
directory is applied straight into that directory, whiteouts in overlay's
own form, with the lower directories consulted for lookups; a writable bind
mount (the native snapshotter, a bottom overlay layer) straight into its
source.  Anything else is mounted on a temporary directory first.

Compare likewise reads an overlay snapshot's upper directory directly when
the lower mounts are exactly its parents, which is the case for a
container's changes; otherwise both sides are mounted read-only and walked.
The layer streams into an ingest as it is written, and is committed with its
diff id as the ``containerd.io/uncompressed`` label.
"""

from __future__ import annotations

import contextlib
import io
import pathlib
import secrets
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import BinaryIO, Protocol, cast

from ..content import BlobFile, Ingester, Provider, ReaderAt, Writer, open_blob
from ..content.helpers import CHUNK
from ..errors import AlreadyExists, InvalidArgument, quote
from ..images import Descriptor
from ..images import mediatypes as mt
from ..mount import Mount, lowerdirs, mounted, option_value, readonly, validate
from .apply import WhiteoutMode, apply_layer
from .compare import write_diff
from .compression import Compression
from .differ import LABEL_UNCOMPRESSED

_COMPARE_TYPES = {
    mt.OCI_LAYER: Compression.NONE,
    mt.OCI_LAYER_GZIP: Compression.GZIP,
    mt.OCI_LAYER_ZSTD: Compression.ZSTD,
    mt.DOCKER_LAYER_GZIP: Compression.GZIP,
}


class _Content(Provider, Ingester, Protocol):
    """What the differ needs of the content store: reading layers, and writing new ones."""


class _IngestFile(io.RawIOBase):
    """An open ingest as a file the tar writer can write to."""

    def __init__(self, w: Writer) -> None:
        self._w = w

    def writable(self) -> bool:
        return True

    def write(self, b: object) -> int:
        data = bytes(b)  # type: ignore[call-overload]
        self._w.write(data)
        return len(data)


def _layer_dirs(mounts: Sequence[Mount]) -> list[str] | None:
    """The directories, highest first, that a read-only mount list shows; None when it is not that simple."""
    if not mounts:
        return []
    if len(mounts) != 1:
        return None
    m = mounts[0]
    if m.type in ("bind", "rbind"):
        return [m.source]
    if m.type == "overlay" and option_value(m.options, "upperdir") is None:
        return lowerdirs(m)
    return None


@contextlib.contextmanager
def _mounted_ro(mounts: Sequence[Mount], scratch: pathlib.Path | None) -> Iterator[pathlib.Path | None]:
    """``mounts`` read-only on a temporary directory; None for an empty list (an empty tree)."""
    if not mounts:
        yield None
        return
    ro = [Mount(m.type, m.source, (*(o for o in m.options if o not in ("rw", "ro")), "ro"), m.target) for m in mounts]
    with mounted(ro, parent=scratch) as root:
        yield root


__all__ = ["LocalDiffer"]


def _encrypted(media_type: str) -> bool:
    return media_type.endswith("+encrypted")


class LocalDiffer:
    """An :class:`~pycontainerd.diff.differ.Applier` over a content store."""

    def __init__(self, content: _Content, scratch: pathlib.Path | None = None) -> None:
        self._content = content
        self._scratch = scratch

    def apply(self, desc: Descriptor, mounts: Sequence[Mount]) -> Descriptor:
        return self._apply(desc, mounts, open_blob(self._content, desc.digest))

    def apply_from(self, reader: ReaderAt, desc: Descriptor, mounts: Sequence[Mount]) -> Descriptor:
        """Apply ``desc`` reading its blob from ``reader`` instead of the store (a layer still downloading).

        The diffID returned is what the caller must check: nothing here
        vouches for bytes that did not come from the store.
        """
        return self._apply(desc, mounts, cast(BinaryIO, io.BufferedReader(BlobFile(reader), CHUNK)))

    def apply_chunks(self, chunks: Iterable[bytes], mounts: Sequence[Mount]) -> Descriptor:
        """Apply an uncompressed tar stream made by the caller (a layer rebuilt from its parts), chunk by chunk.

        No store, reader or buffer sits between the chunks and the extractor,
        and the stream is hashed once, here; as with :meth:`apply_from`, the
        diffID returned is the caller's to check.
        """
        return self._apply_blob(Descriptor(mt.OCI_LAYER, "", 0), mounts, chunks)

    def _apply(self, desc: Descriptor, mounts: Sequence[Mount], blob_file: BinaryIO) -> Descriptor:
        with blob_file:
            return self._apply_blob(desc, mounts, blob_file)

    def _apply_blob(self, desc: Descriptor, mounts: Sequence[Mount], blob: BinaryIO | Iterable[bytes]) -> Descriptor:
        if _encrypted(desc.media_type):
            raise InvalidArgument(f"encrypted layer {desc.digest}: decryption is not supported")
        try:
            kind = mt.diff_compression(desc.media_type)
        except Exception:
            raise InvalidArgument(f"unsupported diff media type {quote(desc.media_type)}") from None
        media_type = "" if kind == "unknown" else desc.media_type  # sniff what the type does not say
        validate(mounts)
        if len(mounts) == 1 and mounts[0].type == "overlay" and option_value(mounts[0].options, "upperdir"):
            m = mounts[0]
            upper = pathlib.Path(option_value(m.options, "upperdir") or "")
            parents = [pathlib.Path(p) for p in lowerdirs(m)]
            result = apply_layer(upper, blob, media_type=media_type, whiteouts=WhiteoutMode.OVERLAY, parents=parents)
        elif len(mounts) == 1 and mounts[0].type in ("bind", "rbind") and not readonly(mounts[0]):
            result = apply_layer(pathlib.Path(mounts[0].source), blob, media_type=media_type)
        else:
            if any(readonly(m) for m in mounts):
                raise InvalidArgument("cannot apply a layer to read-only mounts")
            with mounted(mounts, parent=self._scratch) as root:
                result = apply_layer(root, blob, media_type=media_type)
        return Descriptor(media_type=mt.OCI_LAYER, digest=result.diff_id, size=result.size)

    def compare(
        self,
        lower: Sequence[Mount],
        upper: Sequence[Mount],
        *,
        media_type: str = "",
        ref: str = "",
        labels: Mapping[str, str] | None = None,
    ) -> Descriptor:
        media_type = media_type or mt.OCI_LAYER_GZIP
        compression = _COMPARE_TYPES.get(media_type)
        if compression is None:
            raise InvalidArgument(f"unsupported diff media type {quote(media_type)}")
        if not upper:
            raise InvalidArgument("no upper mounts given")
        validate(upper)
        if lower:
            validate(lower)
        writer = self._content.writer(ref or f"diff-{secrets.token_hex(8)}")
        try:
            out = cast(BinaryIO, _IngestFile(writer))
            up = upper[0]
            upperdir = option_value(up.options, "upperdir") if len(upper) == 1 and up.type == "overlay" else None
            if upperdir is not None and _layer_dirs(lower) == lowerdirs(up):
                result = write_diff(out, None, pathlib.Path(upperdir), upper_is_overlay=True, compression=compression)
            else:
                with _mounted_ro(lower, self._scratch) as lo, _mounted_ro(upper, self._scratch) as hi:
                    assert hi is not None
                    result = write_diff(out, lo, hi, compression=compression)
            all_labels = {**(labels or {}), LABEL_UNCOMPRESSED: result.diff_id}
            try:
                writer.commit(result.size, result.digest, all_labels)
            except AlreadyExists:
                pass  # the same change was written before: the blob is there
        except BaseException:
            with contextlib.suppress(Exception):
                writer.close()
            raise
        return Descriptor(media_type=media_type, digest=result.digest, size=result.size)
