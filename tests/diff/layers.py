"""Build layer tars in tests with Python's own tarfile (an independent writer to check our reader against)."""

from __future__ import annotations

import io
import tarfile

__all__ = ["LayerTar"]


class LayerTar:
    """A layer being written: one method per kind of entry; ``bytes()`` ends it."""

    def __init__(self, fmt: int = tarfile.PAX_FORMAT) -> None:
        self._buf = io.BytesIO()
        self._tar = tarfile.open(fileobj=self._buf, mode="w", format=fmt)  # noqa: SIM115 (closed by bytes())

    def _add(self, name: str, kind: bytes, data: bytes = b"", **attrs: object) -> LayerTar:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.size = len(data) if kind == tarfile.REGTYPE else 0
        info.mtime = 1_600_000_000
        info.mode = 0o644
        for key, value in attrs.items():
            setattr(info, key, value)
        self._tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
        return self

    def file(self, name: str, data: bytes = b"", *, xattrs: dict[str, str] | None = None, **attrs: object) -> LayerTar:
        if xattrs:
            attrs["pax_headers"] = {f"SCHILY.xattr.{k}": v for k, v in xattrs.items()}
        return self._add(name, tarfile.REGTYPE, data, **attrs)

    def dir(self, name: str, **attrs: object) -> LayerTar:
        attrs.setdefault("mode", 0o755)
        return self._add(name, tarfile.DIRTYPE, **attrs)

    def symlink(self, name: str, target: str, **attrs: object) -> LayerTar:
        attrs.setdefault("mode", 0o777)
        return self._add(name, tarfile.SYMTYPE, linkname=target, **attrs)

    def hardlink(self, name: str, target: str, **attrs: object) -> LayerTar:
        return self._add(name, tarfile.LNKTYPE, linkname=target, **attrs)

    def fifo(self, name: str, **attrs: object) -> LayerTar:
        return self._add(name, tarfile.FIFOTYPE, **attrs)

    def char(self, name: str, major: int, minor: int, **attrs: object) -> LayerTar:
        return self._add(name, tarfile.CHRTYPE, devmajor=major, devminor=minor, **attrs)

    def whiteout(self, name: str) -> LayerTar:
        head, _, base = name.rpartition("/")
        return self._add(f"{head}/.wh.{base}" if head else f".wh.{base}", tarfile.REGTYPE, mode=0)

    def opaque(self, directory: str) -> LayerTar:
        return self._add(f"{directory.rstrip('/')}/.wh..wh..opq", tarfile.REGTYPE, mode=0)

    def bytes(self) -> bytes:
        self._tar.close()
        return self._buf.getvalue()
