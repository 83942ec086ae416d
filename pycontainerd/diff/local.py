"""The daemon's differ: layer blobs from the content store applied onto mounts, and back.

Apply avoids mounting where it can: an overlay mount with an upper
directory is applied straight into that directory, whiteouts in overlay's
own form, with the lower directories consulted for lookups; a writable bind
mount (the native snapshotter, a bottom overlay layer) straight into its
source.  Anything else is mounted on a temporary directory first.
"""

from __future__ import annotations

import pathlib
from collections.abc import Sequence

from ..content import Provider, open_blob
from ..errors import InvalidArgument, quote
from ..images import Descriptor
from ..images import mediatypes as mt
from ..mount import Mount, lowerdirs, mounted, option_value, readonly, validate
from .apply import WhiteoutMode, apply_layer

__all__ = ["LocalDiffer"]


def _encrypted(media_type: str) -> bool:
    return media_type.endswith("+encrypted")


class LocalDiffer:
    """An :class:`~pycontainerd.diff.differ.Applier` over a content store."""

    def __init__(self, content: Provider, scratch: pathlib.Path | None = None) -> None:
        self._content = content
        self._scratch = scratch

    def apply(self, desc: Descriptor, mounts: Sequence[Mount]) -> Descriptor:
        if _encrypted(desc.media_type):
            raise InvalidArgument(f"encrypted layer {desc.digest}: decryption is not supported")
        try:
            kind = mt.diff_compression(desc.media_type)
        except Exception:
            raise InvalidArgument(f"unsupported diff media type {quote(desc.media_type)}") from None
        media_type = "" if kind == "unknown" else desc.media_type  # sniff what the type does not say
        validate(mounts)
        with open_blob(self._content, desc.digest) as blob:
            if len(mounts) == 1 and mounts[0].type == "overlay" and option_value(mounts[0].options, "upperdir"):
                m = mounts[0]
                upper = pathlib.Path(option_value(m.options, "upperdir") or "")
                parents = [pathlib.Path(p) for p in lowerdirs(m)]
                result = apply_layer(
                    upper, blob, media_type=media_type, whiteouts=WhiteoutMode.OVERLAY, parents=parents
                )
            elif len(mounts) == 1 and mounts[0].type in ("bind", "rbind") and not readonly(mounts[0]):
                result = apply_layer(pathlib.Path(mounts[0].source), blob, media_type=media_type)
            else:
                if any(readonly(m) for m in mounts):
                    raise InvalidArgument("cannot apply a layer to read-only mounts")
                with mounted(mounts, parent=self._scratch) as root:
                    result = apply_layer(root, blob, media_type=media_type)
        return Descriptor(media_type=mt.OCI_LAYER, digest=result.diff_id, size=result.size)
