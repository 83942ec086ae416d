"""Resolving, fetching and pushing against an OCI distribution registry (``/v2/`` API).

When a registry's hosts.toml lists mirrors, a tag is resolved on the first
host with the ``resolve`` capability that knows it, a digest (manifest or
blob) fetched from the first with ``pull`` that has it, the next host tried
when one is unreachable or answers with an error; the registry's own server
comes last.  A push goes to the first host with ``push``, and only there.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import socket
from collections.abc import Callable, Sequence
from http.client import HTTPException
from types import TracebackType
from typing import Any, BinaryIO, TypeVar
from urllib.parse import urlencode, urljoin

from urllib3.exceptions import HTTPError, ReadTimeoutError

from ...errors import (
    DeadlineExceeded,
    InvalidArgument,
    NotFound,
    NotImplementedYet,
    OutOfRange,
    PermissionDenied,
    Unauthenticated,
    Unavailable,
    Unknown,
)
from ...images import Descriptor
from ...images import mediatypes as mt
from ...reference import Reference, parse_normalized
from ._hosts import PULL, PUSH, RESOLVE
from ._session import (
    USER_AGENT,
    Credentials,
    Endpoint,
    HostOptions,
    HostsFn,
    Session,
    drain,
    fail,
    registry_error,
    registry_host,
)

__all__ = ["DockerResolver"]

_ACCEPT = ", ".join(
    [
        mt.OCI_INDEX,
        mt.OCI_MANIFEST,
        mt.DOCKER_MANIFEST_LIST,
        mt.DOCKER_MANIFEST,
        mt.DOCKER_SCHEMA1_SIGNED,
        mt.DOCKER_SCHEMA1_MANIFEST,
        "*/*",
    ]
)
_MAX_DOCUMENT = 4 << 20


def _pull(ref: Reference) -> list[str]:
    return [f"repository:{ref.path}:pull"]


Reopen = Callable[[int], Any]


class _Response:
    """A streamed response body as a :class:`~pycontainerd.remotes.ReadStream`.

    Bodies without a content coding are read straight from the socket into
    the caller's buffer (no copies, no per-chunk Python work beyond one
    call); a connection is returned to the pool only when its body was read
    to the end, and closed otherwise.

    When the connection breaks, the body ends early or stalls for the
    timeout, a stream that can ``reopen`` asks again from the first byte not
    yet delivered (an HTTP Range request; a registry that ignores it sends
    the whole body and the bytes already delivered are skipped).  Up to
    ``retries`` failures in a row without a byte of progress are tried
    again; the next one is the error.
    """

    def __init__(
        self,
        resp: Any,
        what: str,
        host: str,
        timeout: float,
        *,
        reopen: Reopen | None = None,
        retries: int = 0,
        offset: int = 0,
    ) -> None:
        """``resp`` None: an empty body.  ``offset``: where in the blob ``resp``'s body starts."""
        self._resp = resp
        self._what = what
        self._host = host
        self._timeout = timeout
        self._reopen = reopen
        self._retries = retries
        self._pos = offset  # the blob's offset of the next byte to deliver
        self._fails = 0  # failures since the last byte of progress
        self._tries = 1
        self._aborted = False
        self._raw: Any = None
        self._done = resp is None
        if resp is not None:
            self._raw = self._raw_of(resp)

    @staticmethod
    def _raw_of(resp: Any) -> Any:
        coding = (resp.headers.get("Content-Encoding") or "identity").strip().lower()
        return resp._fp if coding == "identity" and resp._fp is not None else None

    def read(self, n: int = -1) -> bytes:
        if n < 0:
            chunks = []
            while chunk := self.read(1 << 20):
                chunks.append(chunk)
            return b"".join(chunks)
        buf = bytearray(n)
        got = self.readinto(buf)
        del buf[got:]
        return bytes(buf)

    def readinto(self, buf: bytearray | memoryview) -> int:
        while True:
            try:
                n = self._readinto(buf)
            except (Unavailable, DeadlineExceeded) as e:
                if self._aborted or self._raw is None or self._reopen is None or self._fails >= self._retries:
                    if self._tries > 1:
                        raise type(e)(f"{e} (after {self._tries} tries)") from None
                    raise
                self._fails += 1
                self._resume()
                continue
            if n:
                self._fails = 0
                self._pos += n
            return n

    def _readinto(self, buf: bytearray | memoryview) -> int:
        if self._done or not len(buf):
            return 0
        try:
            if self._raw is not None:
                n: int = self._read_some(self._raw, buf)
                if not n and (self._raw.length or 0) > 0:
                    raise Unavailable(f"{self._what}: {self._host} closed the connection before the end of the body")
                if self._raw.isclosed():  # the whole body is in: the connection can serve the next request
                    self._done = True
                    return n
            else:
                data: bytes = self._resp.read(len(buf))
                n = len(data)
                buf[:n] = data
        except (HTTPError, HTTPException, OSError) as e:
            raise self._error(e) from None
        if not n:
            self._done = True
        return n

    @staticmethod
    def _read_some(raw: Any, buf: bytearray | memoryview) -> int:
        """What one receive brings, straight into ``buf``.

        ``HTTPResponse.readinto`` fills the whole buffer with as many receives
        as it takes, and when the connection breaks half-way the bytes it had
        are lost with the count; one receive at a time keeps every byte that
        arrived, so a resumed fetch starts after them.  Bodies of a known
        length only (http.client's own bookkeeping is kept: ``length``, and the
        connection closed at the end); chunked ones go through http.client.
        """
        fp = raw.fp
        if fp is None or raw.chunked or raw.length is None or not hasattr(fp, "readinto1"):
            return int(raw.readinto(buf))
        want = min(len(buf), raw.length)
        if not want:
            raw._close_conn()
            return 0
        n = int(fp.readinto1(memoryview(buf)[:want]))
        if n:
            raw.length -= n
            if not raw.length:
                raw._close_conn()  # as HTTPResponse.readinto does at the end of a body
        return n

    def _resume(self) -> None:
        """Drop the broken connection and ask again from ``self._pos``."""
        assert self._reopen is not None
        old, self._resp, self._raw = self._resp, None, None
        with contextlib.suppress(Exception):
            old.close()
            old.release_conn()
        self._tries += 1
        try:
            resp = self._reopen(self._pos)
        except (Unavailable, DeadlineExceeded):
            self._done = True
            raise
        self._resp, self._raw = resp, self._raw_of(resp)
        if self._raw is None:
            self._done = True
            raise Unavailable(f"{self._what}: {self._host} sent the rest of the body with a content coding")
        if resp.status == 200 and self._pos:  # no range support: skip what was delivered already
            left, scratch = self._pos, memoryview(bytearray(min(self._pos, 1 << 20)))
            while left > 0:
                got = self._readinto(scratch[: min(left, len(scratch))])
                if not got:
                    raise Unavailable(f"{self._what}: {self._host} sent less than the {self._pos} bytes already held")
                left -= got

    def _error(self, e: Exception) -> Exception:
        if isinstance(e, TimeoutError | ReadTimeoutError) or "timed out" in str(e).lower():
            return DeadlineExceeded(f"{self._what}: {self._host} stopped sending for {self._timeout:g} s")
        return Unavailable(f"{self._what}: connection to {self._host} broke: {e}")

    def abort(self) -> None:
        # shutdown() wakes a recv blocked in another thread, where close() would not; the base class's,
        # because a TLS socket's own would drop its SSL object under the reader.
        self._aborted = True
        sock = getattr(getattr(self._resp, "connection", None), "sock", None)
        if isinstance(sock, socket.socket):
            with contextlib.suppress(OSError):
                socket.socket.shutdown(sock, socket.SHUT_RDWR)

    def close(self) -> None:
        if self._resp is None:
            return
        if not self._done:
            self._resp.close()  # unread bytes would confuse the next request on this connection
        self._resp.release_conn()

    def __enter__(self) -> _Response:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


_FALLBACK = (Unavailable, DeadlineExceeded, NotFound, Unauthenticated, PermissionDenied, Unknown, OutOfRange)
"""Failures another host may not have: the next host is tried (containerd tries it after any failure)."""

T = TypeVar("T")


def _capable(hosts: Sequence[Endpoint], capability: str, what: str) -> list[Endpoint]:
    found = [h for h in hosts if capability in h.capabilities]
    if not found:
        raise NotFound(f"{what}: no host in the registry's hosts.toml has the {capability!r} capability")
    return found


def _first(hosts: Sequence[Endpoint], what: str, attempt: Callable[[Endpoint], T]) -> T:
    """What ``attempt`` gives for the first host that can answer, trying them in order.

    The error, when none can, is the last host's, with what the others said
    after it on the same line.
    """
    earlier: list[str] = []
    for i, h in enumerate(hosts):
        try:
            return attempt(h)
        except _FALLBACK as e:
            if i + 1 < len(hosts):
                earlier.append(str(e).removeprefix(f"{what}: "))
                continue
            if earlier:
                raise type(e)(f"{e} (tried before: {'; '.join(earlier)})") from None
            raise
    raise AssertionError("no hosts")  # _capable never gives an empty list


class _Fetcher:
    def __init__(self, session: Session, ref: Reference) -> None:
        self._s = session
        self._ref = ref

    def fetch(self, desc: Descriptor, offset: int = 0) -> _Response:
        ref, s = self._ref, self._s
        what = f"fetch {ref.name}@{desc.digest}"
        if offset < 0 or offset > desc.size:
            raise InvalidArgument(f"{what}: offset {offset} outside the blob's {desc.size} bytes")
        if offset == desc.size and offset > 0:
            return _Response(None, what, ref.domain, 0.0)  # nothing left to fetch; a registry would answer 416
        document = mt.is_index(desc.media_type) or mt.is_manifest(desc.media_type) or mt.is_schema1(desc.media_type)
        kind = "manifests" if document else "blobs"
        accept = {"Accept": f"{desc.media_type}, {_ACCEPT}" if document else "*/*"}
        hosts = _capable(s.hosts(ref.domain), PULL, what)
        serving = [hosts[0]]  # the host that answered last: a resumed fetch asks it first

        def open_on(h: Endpoint, at: int) -> Any:
            headers = {**accept, "Range": f"bytes={at}-"} if at > 0 else accept
            url = h.url(ref.path, kind, desc.digest)
            resp = s.request("GET", url, host=h, scopes=_pull(ref), headers=headers, stream=True, what=what)
            if resp.status == 404:
                drain(resp)
                raise NotFound(f"{what}: not found on {h.netloc}")
            if resp.status == 416:
                drain(resp)
                raise OutOfRange(f"{what}: {h.netloc} cannot send from offset {at}")
            if resp.status not in (200, 206):
                raise fail(resp, what, h.netloc)
            serving[0] = h
            return resp

        def open_at(at: int) -> Any:
            order = [serving[0], *(h for h in hosts if h is not serving[0])]
            return _first(order, what, lambda h: open_on(h, at))

        resp = open_at(offset)
        h = serving[0]
        skip = offset if resp.status == 200 else 0  # no range support: skip what we have
        stream = _Response(
            resp, what, h.netloc, h.options.timeout, reopen=open_at, retries=h.options.retries, offset=offset - skip
        )
        if skip:
            left, scratch = skip, memoryview(bytearray(min(skip, 1 << 20)))
            while left > 0:
                got = stream.readinto(scratch[: min(left, len(scratch))])
                if not got:
                    stream.close()
                    raise Unavailable(f"{what}: {h.netloc} sent less than the {skip} bytes already held")
                left -= got
        return stream


def _same_registry(ref: Reference, names: Sequence[str]) -> list[str]:
    """The repositories among ``names`` (paths, or names with a domain) that live on ``ref``'s registry."""
    out: list[str] = []
    for name in names:
        first, sep, rest = name.partition("/")
        if sep and ("." in first or ":" in first or first == "localhost"):
            domain, path = ("docker.io" if first == "index.docker.io" else first), rest
        else:
            domain, path = ref.domain, name
        if domain == ref.domain and path and path != ref.path and path not in out:
            out.append(path)
    return out


class _Pusher:
    def __init__(self, session: Session, ref: Reference) -> None:
        self._s = session
        self._ref = ref

    def _host(self, what: str) -> Endpoint:
        """Where pushes go: the first host allowed to take them (containerd does not spread a push)."""
        return _capable(self._s.hosts(self._ref.domain), PUSH, what)[0]

    def _scopes(self, mount_from: Sequence[str] = ()) -> list[str]:
        return [f"repository:{self._ref.path}:pull,push", *(f"repository:{r}:pull" for r in mount_from)]

    def push(self, desc: Descriptor, open_blob: Callable[[], BinaryIO], mount_from: Sequence[str] = ()) -> str:
        if mt.is_index(desc.media_type) or mt.is_manifest(desc.media_type):
            return self._push_document(desc, open_blob)
        return self._push_blob(desc, open_blob, _same_registry(self._ref, mount_from))

    def _push_document(self, desc: Descriptor, open_blob: Callable[[], BinaryIO]) -> str:
        ref, s = self._ref, self._s
        target = ref.tag or desc.digest
        what = f"push {ref.name}:{target}" if ref.tag else f"push {ref.name}@{desc.digest}"
        h = self._host(what)
        url = f"{h.base}{ref.path}/manifests/"
        head = s.request(
            "HEAD",
            url + target,
            host=h,
            scopes=self._scopes(),
            headers={"Accept": f"{desc.media_type}, {_ACCEPT}"},
            what=what,
        )
        if head.status == 200 and head.headers.get("Docker-Content-Digest") == desc.digest:
            return "exists"
        with open_blob() as f:
            data = f.read()
        if len(data) != desc.size:
            raise InvalidArgument(f"{what}: the local document has {len(data)} bytes, its descriptor {desc.size}")
        resp = s.request(
            "PUT",
            url + target,
            host=h,
            scopes=self._scopes(),
            headers={"Content-Type": desc.media_type},
            body=data,
            what=what,
        )
        if resp.status not in (200, 201):
            raise _push_error(resp, what, h.netloc)
        return "pushed"

    def _push_blob(self, desc: Descriptor, open_blob: Callable[[], BinaryIO], mount_from: Sequence[str]) -> str:
        ref, s = self._ref, self._s
        what = f"push {ref.name}@{desc.digest}"
        h = self._host(what)
        base = f"{h.base}{ref.path}/blobs/"
        scopes = self._scopes(mount_from)
        head = s.request("HEAD", base + desc.digest, host=h, scopes=scopes, what=what)
        if head.status == 200:
            return "exists"
        location = ""
        for repo in mount_from:
            query = urlencode({"mount": desc.digest, "from": repo})
            resp = s.request("POST", f"{base}uploads/?{query}", host=h, scopes=scopes, what=what)
            if resp.status == 201:
                return "mounted"
            if resp.status == 202:  # not mountable from there: the registry opened an upload instead
                location = urljoin(base, resp.headers.get("Location", ""))
                break
        if not location:
            resp = s.request("POST", f"{base}uploads/", host=h, scopes=scopes, what=what)
            if resp.status != 202 or not resp.headers.get("Location"):
                raise _push_error(resp, what, h.netloc)
            location = urljoin(base, resp.headers["Location"])
        chunk = h.options.chunk_size
        with open_blob() as f:
            if desc.size <= chunk:
                data = f.read()
                return self._finish(h, location, desc, data, what)
            sent = 0
            while sent < desc.size:
                data = f.read(min(chunk, desc.size - sent))
                if not data:
                    break
                resp = s.request(
                    "PATCH",
                    location,
                    host=h,
                    scopes=scopes,
                    headers={
                        "Content-Type": "application/octet-stream",
                        "Content-Range": f"{sent}-{sent + len(data) - 1}",
                    },
                    body=data,
                    what=what,
                )
                if resp.status != 202:
                    raise _push_error(resp, what, h.netloc)
                location = urljoin(location, resp.headers.get("Location", location))
                sent += len(data)
        if sent != desc.size:
            raise InvalidArgument(f"{what}: the local blob has {sent} bytes, its descriptor {desc.size}")
        return self._finish(h, location, desc, b"", what)

    def _finish(self, h: Endpoint, location: str, desc: Descriptor, data: bytes, what: str) -> str:
        s = self._s
        url = location + ("&" if "?" in location else "?") + urlencode({"digest": desc.digest})
        resp = s.request(
            "PUT",
            url,
            host=h,
            scopes=self._scopes(),
            headers={"Content-Type": "application/octet-stream"},
            body=data,
            what=what,
        )
        if resp.status != 201:
            raise _push_error(resp, what, h.netloc)
        return "pushed"


def _push_error(resp: Any, what: str, host: str) -> Exception:
    if resp.status == 400:
        return InvalidArgument(f"{what}: {host} refused it: {registry_error(resp)}")
    if resp.status == 404:
        return NotFound(f"{what}: {host}: {registry_error(resp)}")
    return fail(resp, what, host)


class DockerResolver:
    """A :class:`~pycontainerd.remotes.Resolver` for registries speaking the distribution API."""

    def __init__(
        self,
        hosts: HostOptions | HostsFn | None = None,
        credentials: Credentials | None = None,
        *,
        user_agent: str = USER_AGENT,
        timeout: float | None = None,
        retries: int | None = None,
    ) -> None:
        """``hosts``: options for every registry, or a function of the registry's name giving them.

        ``credentials(host)`` answers ``(user, password)`` or None, asked only
        when a registry challenges; ``timeout`` (seconds, per connect and per
        read) and ``retries`` override those of the host options.
        """
        self._session = Session(
            hosts or HostOptions(), credentials, user_agent=user_agent, timeout=timeout, retries=retries
        )

    def resolve(self, ref: str) -> tuple[str, Descriptor]:
        r = parse_normalized(ref)
        what = f"resolve {r}"
        # A tag is trusted only from hosts allowed to resolve; a digest checks itself, so any puller will do.
        hosts = _capable(self._session.hosts(r.domain), PULL, what)
        if not r.digest:
            hosts = _capable(hosts, RESOLVE, what)
        return str(r), _first(hosts, what, lambda h: self._resolve_on(h, r, what))

    def _resolve_on(self, h: Endpoint, r: Reference, what: str) -> Descriptor:
        s = self._session
        url = h.url(r.path, "manifests", r.object)
        head = s.request("HEAD", url, host=h, scopes=_pull(r), headers={"Accept": _ACCEPT}, what=what)
        if head.status == 404:
            raise NotFound(f"{what}: not found on {h.netloc}")
        media_type = (head.headers.get("Content-Type") or "").split(";")[0].strip()
        digest = head.headers.get("Docker-Content-Digest") or ""
        size = head.headers.get("Content-Length")
        known = mt.is_index(media_type) or mt.is_manifest(media_type)
        if head.status == 200 and known and digest and size and (not r.digest or digest == r.digest):
            return Descriptor(media_type, digest, int(size))
        if head.status not in (200, 405):
            raise fail(head, what, h.netloc)
        # No usable HEAD answer: fetch the document and see for ourselves.
        resp = s.request("GET", url, host=h, scopes=_pull(r), headers={"Accept": _ACCEPT}, what=what)
        if resp.status == 404:
            raise NotFound(f"{what}: not found on {h.netloc}")
        if resp.status != 200:
            raise fail(resp, what, h.netloc)
        data: bytes = resp.data
        if len(data) > _MAX_DOCUMENT:
            raise InvalidArgument(f"{what}: the manifest on {h.netloc} is over {_MAX_DOCUMENT} bytes")
        media_type = (resp.headers.get("Content-Type") or "").split(";")[0].strip()
        declared = _declared_type(data)
        if mt.is_schema1(media_type) or declared == "schema1":
            raise NotImplementedYet(f"{what}: Docker schema 1 manifests are not supported")
        if not (mt.is_index(media_type) or mt.is_manifest(media_type)):
            media_type = declared
        if not (mt.is_index(media_type) or mt.is_manifest(media_type)):
            raise InvalidArgument(f"{what}: unknown manifest media type {media_type or '(none)'!r} on {h.netloc}")
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if r.digest and r.digest != digest:
            raise InvalidArgument(f"{what}: {h.netloc} sent content with digest {digest}")
        return Descriptor(media_type, digest, len(data))

    def fetcher(self, ref: str) -> _Fetcher:
        return _Fetcher(self._session, parse_normalized(ref))

    def login(self, host: str) -> None:
        """Prove that ``host`` accepts this resolver's credentials, as ``docker login`` does.

        The registry's ``/v2/`` root is asked for with no repository scope,
        meeting any challenge with the credentials; Unauthenticated when they
        are refused or missing, the usual errors when the registry cannot be
        reached.
        """
        s = self._session
        what = f"login to {registry_host(host)}"
        h = s.server(host)
        resp = s.request("GET", h.base, host=h, scopes=(), what=what)
        if resp.status != 200:
            raise fail(resp, what, h.netloc)
        resp.release_conn()

    def pusher(self, ref: str) -> _Pusher:
        return _Pusher(self._session, parse_normalized(ref))

    def close(self) -> None:
        """Drop the pooled connections."""
        self._session.close()

    def __enter__(self) -> DockerResolver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _declared_type(data: bytes) -> str:
    """The ``mediaType`` a document names for itself, ``schema1`` for schema 1, or ""."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return ""
    if not isinstance(doc, dict):
        return ""
    if doc.get("schemaVersion") == 1:
        return "schema1"
    m = doc.get("mediaType")
    if isinstance(m, str) and m:
        return m
    if "manifests" in doc:
        return mt.OCI_INDEX
    if "config" in doc and "layers" in doc:
        return mt.OCI_MANIFEST
    return ""
