"""HTTP to one registry: connection pooling, authentication, retries and timeouts.

Every request names the token scopes it needs.  A 401 answer carries the
registry's challenge; the session meets it (basic credentials, or a bearer
token fetched from the challenge's realm) and repeats the request once.
Tokens are cached per host and scope until they expire, so parallel layer
fetches share one.  Idempotent requests that fail with a connection error,
a timeout or a 5xx answer are retried a bounded number of times with
backoff; the rest fail at once, with the registry's own error message.
"""

from __future__ import annotations

import base64
import json
import ssl
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import urllib3
from urllib3.exceptions import HTTPError, SSLError, TimeoutError

from ...errors import (
    ContainerdError,
    DeadlineExceeded,
    InvalidArgument,
    PermissionDenied,
    Unauthenticated,
    Unavailable,
    Unknown,
)
from ._challenge import Challenge, parse_challenges
from ._hosts import host_config

__all__ = ["Credentials", "HostOptions", "Session", "registry_error"]

Credentials = Callable[[str], tuple[str, str] | None]
USER_AGENT = "pycontainerd/0.1"
_IDEMPOTENT = frozenset({"GET", "HEAD", "PUT"})  # PUT: manifests and upload completion are idempotent
_LOCAL = ("localhost", "127.0.0.1", "[::1]", "::1")


@dataclass(frozen=True)
class HostOptions:
    """How to reach registries: the client's side of containerd's hosts configuration."""

    plain_http: bool = False  # HTTP for every host (localhost always uses it)
    ca_file: str = ""  # extra CA bundle for HTTPS
    skip_verify: bool = False
    hosts_dir: str = ""  # per-host CAs, skip_verify and headers (containerd's certs.d layout)
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout: float = 30.0  # connect and per-read, seconds
    retries: int = 3
    chunk_size: int = 16 << 20  # uploads above this go in chunks of this size

    def scheme(self, host: str) -> str:
        name = host.rsplit(":", 1)[0] if not host.startswith("[") else host.split("]", maxsplit=1)[0] + "]"
        return "http" if self.plain_http or name in _LOCAL else "https"


def registry_host(domain: str) -> str:
    """Where a reference's domain is served: Docker Hub's API lives on another name."""
    return "registry-1.docker.io" if domain in ("docker.io", "index.docker.io") else domain


def registry_error(resp: Any) -> str:
    """The registry's own account of a failed request (``{"errors": [...]}``), or the HTTP reason."""
    try:
        doc = json.loads(resp.data or b"{}")
        errs = doc.get("errors") if isinstance(doc, dict) else None
        if isinstance(errs, list) and errs:
            parts = []
            for e in errs[:3]:
                if isinstance(e, dict):
                    parts.append(": ".join(str(e[k]) for k in ("code", "message") if e.get(k)))
            if parts:
                return "; ".join(parts)
    except (ValueError, TypeError, HTTPError):
        pass
    return f"{resp.status} {resp.reason or ''}".strip()


@dataclass
class _Token:
    header: str
    expires: float


class Session:
    """Requests to registries with auth and retries; thread-safe, one pool per resolver."""

    def __init__(self, options: HostOptions, credentials: Credentials | None = None) -> None:
        self.options = options
        self._credentials = credentials
        self._pools: dict[str, urllib3.PoolManager] = {}
        self._tokens: dict[tuple[str, str], _Token] = {}
        self._basic: dict[str, str] = {}
        self._lock = threading.Lock()

    def _pool(self, host: str) -> urllib3.PoolManager:
        """One pool per registry, with that registry's TLS settings."""
        with self._lock:
            pool = self._pools.get(host)
            if pool is not None:
                return pool
        extra = host_config(self.options.hosts_dir, host)
        skip = self.options.skip_verify if extra.skip_verify is None else extra.skip_verify
        context = ssl.create_default_context()
        if skip:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        for ca in (self.options.ca_file, *extra.ca_files):
            if ca:
                try:
                    context.load_verify_locations(cafile=ca)
                except (OSError, ssl.SSLError) as e:
                    raise InvalidArgument(f"{host}: cannot use CA file {ca}: {e}") from None
        pool = urllib3.PoolManager(maxsize=16, block=False, ssl_context=context, headers=dict(extra.headers) or None)
        with self._lock:
            return self._pools.setdefault(host, pool)

    def base(self, host: str) -> str:
        h = registry_host(host)
        scheme = host_config(self.options.hosts_dir, host).scheme or self.options.scheme(h)
        return f"{scheme}://{h}/v2/"

    # -- auth ----------------------------------------------------------------

    def _cached(self, host: str, scopes: Sequence[str]) -> str | None:
        key = (host, " ".join(sorted(scopes)))
        with self._lock:
            tok = self._tokens.get(key)
            if tok is not None and tok.expires > time.monotonic():
                return tok.header
            return self._basic.get(host)

    def _creds(self, host: str) -> tuple[str, str] | None:
        if self._credentials is None:
            return None
        return self._credentials(host)

    def _authorize(self, host: str, scopes: Sequence[str], challenges: list[Challenge]) -> None:
        """Meet a 401's challenge so that the next try carries an Authorization header."""
        bearer = next((c for c in challenges if c.scheme == "bearer"), None)
        creds = self._creds(host)
        if bearer is not None and bearer.params.get("realm"):
            self._fetch_token(host, scopes, bearer, creds)
            return
        if any(c.scheme == "basic" for c in challenges):
            if creds is None:
                raise Unauthenticated(f"{host}: the registry asks for credentials and none were given")
            token = base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode()
            with self._lock:
                self._basic[host] = f"Basic {token}"
            return
        raise Unauthenticated(f"{host}: unsupported authentication challenge")

    def _fetch_token(
        self, host: str, scopes: Sequence[str], challenge: Challenge, creds: tuple[str, str] | None
    ) -> None:
        realm = challenge.params["realm"]
        if not realm.startswith(("https://", "http://")):
            raise Unauthenticated(f"{host}: token realm {realm!r} is not an HTTP URL")
        query: list[tuple[str, str]] = []
        if challenge.params.get("service"):
            query.append(("service", challenge.params["service"]))
        wanted = list(scopes) or ([challenge.params["scope"]] if challenge.params.get("scope") else [])
        query += [("scope", s) for s in wanted]
        headers = {"User-Agent": USER_AGENT}
        if creds is not None and creds[0] != "<token>":
            query.append(("account", creds[0]))
            headers["Authorization"] = "Basic " + base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode()
        url = realm + ("&" if "?" in realm else "?") + urlencode(query)
        try:
            resp = self._pool(host).request("GET", url, headers=headers, timeout=self._timeout(), retries=False)
        except TimeoutError:
            raise DeadlineExceeded(f"{host}: the token server at {realm} did not answer in time") from None
        except HTTPError as e:
            raise Unavailable(f"{host}: cannot reach the token server at {realm}: {e}") from None
        if resp.status in (401, 403):
            who = f"as {creds[0]!r}" if creds else "without credentials"
            raise Unauthenticated(f"{host}: authentication {who} refused by {realm} ({registry_error(resp)})")
        if resp.status != 200:
            raise Unavailable(f"{host}: token server {realm} answered {registry_error(resp)}")
        try:
            doc = json.loads(resp.data)
            token = doc.get("token") or doc.get("access_token")
            expires_in = int(doc.get("expires_in") or 60)
        except (ValueError, TypeError, AttributeError):
            raise Unavailable(f"{host}: token server {realm} sent no usable token") from None
        if not isinstance(token, str) or not token:
            raise Unavailable(f"{host}: token server {realm} sent no token")
        with self._lock:
            self._tokens[(host, " ".join(sorted(scopes)))] = _Token(
                f"Bearer {token}", time.monotonic() + max(expires_in - 5, 1)
            )

    # -- requests ------------------------------------------------------------

    def _timeout(self) -> urllib3.Timeout:
        return urllib3.Timeout(connect=self.options.timeout, read=self.options.timeout)

    def request(
        self,
        method: str,
        url: str,
        *,
        host: str,
        scopes: Sequence[str],
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        stream: bool = False,
        what: str = "",
    ) -> Any:
        """One request, authenticated and retried as it allows; the response (unread when ``stream``)."""
        what = what or f"{method} {url}"
        attempts = self.options.retries + 1 if method in _IDEMPOTENT else 1
        authed = False
        attempt = 0
        while True:
            hdrs = {"User-Agent": USER_AGENT, **self.options.headers, **(headers or {})}
            auth = self._cached(host, scopes)
            if auth:
                hdrs["Authorization"] = auth
            try:
                resp = self._pool(host).request(
                    method,
                    url,
                    headers=hdrs,
                    body=body,
                    preload_content=not stream,
                    timeout=self._timeout(),
                    retries=urllib3.Retry(total=None, connect=0, read=0, status=0, other=0, redirect=5),
                )
            except HTTPError as e:
                cause = getattr(e, "reason", None) or e  # urllib3 wraps the failure of its last try
                if isinstance(cause, SSLError) or isinstance(e, SSLError):
                    raise Unavailable(f"{what}: TLS with {host} failed: {_reason(e)}") from None
                attempt += 1
                if attempt < attempts:
                    self._backoff(attempt)
                    continue
                if isinstance(cause, TimeoutError) or isinstance(e, TimeoutError):
                    raise DeadlineExceeded(f"{what}: {host} did not answer within {self.options.timeout:g} s") from None
                raise Unavailable(f"{what}: cannot reach {host}: {_reason(e)}") from None
            if resp.status == 401 and not authed:
                challenges = parse_challenges(resp.headers.get("WWW-Authenticate", ""))
                _drain(resp)
                self._authorize(host, scopes, challenges)
                authed = True
                continue
            if resp.status == 401:
                _drain(resp)
                raise Unauthenticated(f"{what}: {host} refused the credentials ({registry_error(resp)})")
            if resp.status == 403:
                _drain(resp)
                raise PermissionDenied(f"{what}: {host} denied access ({registry_error(resp)})")
            if (resp.status >= 500 or resp.status == 429) and attempt + 1 < attempts:
                attempt += 1
                _drain(resp)
                self._backoff(attempt)
                continue
            return resp

    def _backoff(self, attempt: int) -> None:
        time.sleep(min(0.2 * 2 ** (attempt - 1), 2.0))

    def close(self) -> None:
        with self._lock:
            pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.clear()


def _drain(resp: Any) -> None:
    try:
        resp.data  # noqa: B018 - read what is left, so the connection can be reused
    except HTTPError:
        pass
    finally:
        resp.release_conn()


def _reason(e: Exception) -> str:
    inner = getattr(e, "reason", None)
    text = str(inner or e)
    return text.split(": ", 1)[-1] if "Max retries" in text else text


def fail(resp: Any, what: str, host: str) -> ContainerdError:
    """The error for an answer the caller did not expect."""
    _drain(resp)
    if resp.status >= 500:
        return Unavailable(f"{what}: {host} answered {registry_error(resp)}")
    return Unknown(f"{what}: unexpected answer from {host}: {registry_error(resp)}")
