"""HTTP to registries and their mirrors: connection pooling, authentication, retries and timeouts.

A registry's name leads to one or more hosts (:class:`Endpoint`): the
mirrors its hosts directory lists, then its own server; each has its own
pool, TLS settings and tokens.  Choosing among them is the resolver's part.

Every request names the token scopes it needs.  A 401 answer carries the
registry's challenge; the session meets it (basic credentials, or a bearer
token fetched from the challenge's realm) and repeats the request once.
Tokens are cached per host and scope until they expire, so parallel layer
fetches share one.  Idempotent requests that fail with a connection error,
a timeout or a 5xx answer are retried a bounded number of times with
backoff; the rest fail at once, with the registry's own error message.  A
429 Too Many Requests is retried after the wait its ``Retry-After`` header
asks for (seconds or an HTTP date, capped at ``max_retry_after``), or with
backoff when it names none.  A host name that does not resolve is not
retried: DNS has answered, and asking again would only delay the error.
"""

from __future__ import annotations

import base64
import json
import ssl
import threading
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlencode

import urllib3
from urllib3.exceptions import (
    HTTPError,
    InsecureRequestWarning,
    NameResolutionError,
    NewConnectionError,
    SSLError,
    TimeoutError,
)

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
from ._credentials import redact, remember
from ._hosts import HostConfig, registry_hosts

__all__ = [
    "Credentials",
    "Endpoint",
    "HostOptions",
    "HostsFn",
    "Session",
    "drain",
    "endpoint",
    "is_local",
    "registry_error",
    "retry_after",
]

Credentials = Callable[[str], tuple[str, str] | None]
USER_AGENT = "pycontainerd/0.1"
_IDEMPOTENT = frozenset({"GET", "HEAD", "PUT"})  # PUT: manifests and upload completion are idempotent
_LOCAL = ("localhost", "127.0.0.1", "[::1]", "::1")


@dataclass(frozen=True)
class HostOptions:
    """How to reach a registry: the client's side of containerd's hosts configuration."""

    plain_http: bool = False  # HTTP, never TLS
    ca_file: str = ""  # extra CA bundle for HTTPS
    skip_verify: bool = False
    hosts_dir: str = ""  # per-registry mirrors, CAs, skip_verify and headers (containerd's certs.d layout)
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout: float = 30.0  # connect and per-read, seconds
    dial_timeout: float = 0.0  # connect only, when set (containerd's hosts.toml ``dial_timeout``)
    retries: int = 3  # further tries of an idempotent request after a 5xx or a connection failure
    max_retry_after: float = 30.0  # the longest wait a 429's Retry-After may impose, seconds
    chunk_size: int = 16 << 20  # uploads above this go in chunks of this size

    def scheme(self, host: str) -> str:
        """The scheme tried first for ``host`` when no hosts directory names one."""
        return endpoint(host, self.plain_http, self.ca_file != "" or self.skip_verify)[0]


def is_local(host: str) -> bool:
    """Whether ``host`` (``name[:port]``) is this machine, which containerd reaches over plain HTTP."""
    return _split_port(host)[0] in _LOCAL


def _split_port(host: str) -> tuple[str, str]:
    if host.count(":") > 1 and not host.startswith("["):  # a bare IPv6 address
        return host, ""
    if host.startswith("["):
        name, _, rest = host.partition("]")
        return name + "]", rest.removeprefix(":")
    name, _, port = host.partition(":")
    return name, port


def endpoint(host: str, plain_http: bool, tls_configured: bool, scheme: str = "") -> tuple[str, bool]:
    """(scheme, fall back to HTTP) for ``host``, as containerd chooses them.

    An explicit scheme wins; ``plain_http`` means HTTP.  Other hosts get HTTPS.
    A local registry gets HTTP, unless TLS was configured for it (a CA, or
    skip_verify): then HTTPS is tried first and HTTP used if the server
    answers the TLS handshake in plain HTTP, like containerd's HTTP fallback.
    A local host on port 443 or no port gets HTTPS, on port 80 plain HTTP.
    """
    if scheme:
        return scheme, False
    if plain_http:
        return "http", False
    if not is_local(host):
        return "https", False
    port = _split_port(host)[1]
    if port in ("", "443"):
        return "https", False
    if port == "80" or not tls_configured:
        return "http", False
    return "https", True


def registry_host(domain: str) -> str:
    """Where a reference's domain is served: Docker Hub's API lives on another name."""
    return "registry-1.docker.io" if domain in ("docker.io", "index.docker.io") else domain


def retry_after(value: str, now: datetime | None = None) -> float | None:
    """The wait a ``Retry-After`` header asks for, in seconds (RFC 9110: delay-seconds or an HTTP date); None if unusable."""
    value = value.strip()
    if not value:
        return None
    if value.isascii() and value.isdigit():
        return float(int(value))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # HTTP dates are GMT
        when = when.replace(tzinfo=UTC)
    return max((when - (now or datetime.now(UTC))).total_seconds(), 0.0)


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
                return redact("; ".join(parts))  # a registry may echo the Authorization header it got
    except (ValueError, TypeError, HTTPError):
        pass
    return f"{resp.status} {resp.reason or ''}".strip()


@dataclass
class _Token:
    header: str
    expires: float


@dataclass
class Endpoint:
    """One host a registry's name leads to (a mirror, or the registry's server), as a session reaches it."""

    key: str  # whose credentials and tokens: the registry's name for its own server, the host's for a mirror
    netloc: str
    scheme: str
    path: str  # the API root, "/v2" as a rule
    capabilities: frozenset[str]
    namespace: str  # the registry's name when this host serves it on its behalf (sent as ``?ns=``), else ""
    options: HostOptions
    pool: urllib3.PoolManager
    fallback: bool  # HTTPS first, HTTP if the server does not speak TLS
    headers: Mapping[str, str]

    @property
    def base(self) -> str:
        """The API root's URL, with a trailing slash."""
        return f"{self.scheme}://{self.netloc}{self.path}/"

    def url(self, repository: str, kind: str, name: str, *, proxied: bool = True) -> str:
        """``<base><repository>/<kind>/<name>``, telling a mirror which registry it stands in for."""
        url = f"{self.base}{repository}/{kind}/{name}"
        return f"{url}?{urlencode({'ns': self.namespace})}" if proxied and self.namespace else url


HostsFn = Callable[[str], HostOptions]


class Session:
    """Requests to registries with auth and retries; thread-safe, one pool per host.

    ``hosts`` is one :class:`HostOptions` for every registry or a function
    giving each registry's (``docker.io``, ``localhost:5000``); ``timeout``
    and ``retries``, when given, override the options' own.  A registry's
    hosts directory may list mirrors to try before it (:mod:`._hosts`).
    """

    def __init__(
        self,
        hosts: HostOptions | HostsFn,
        credentials: Credentials | None = None,
        *,
        user_agent: str = USER_AGENT,
        timeout: float | None = None,
        retries: int | None = None,
    ) -> None:
        if isinstance(hosts, HostOptions):
            every: HostOptions = hosts

            def same(_host: str) -> HostOptions:
                return every

            self._hosts_fn: HostsFn = same
        else:
            self._hosts_fn = hosts
        self._credentials = credentials
        self._user_agent = user_agent
        self._timeout_override = timeout
        self._retries_override = retries
        self._hosts: dict[str, tuple[Endpoint, ...]] = {}
        self._tokens: dict[tuple[str, str], _Token] = {}
        self._basic: dict[str, str] = {}
        self._lock = threading.Lock()

    def hosts(self, registry: str) -> tuple[Endpoint, ...]:
        """Where ``registry`` (a reference's domain) is served, in the order to try; its own server last."""
        with self._lock:
            known = self._hosts.get(registry)
        if known is not None:
            return known
        opts = self._hosts_fn(registry)
        if self._timeout_override is not None:
            opts = replace(opts, timeout=self._timeout_override)
        if self._retries_override is not None:
            opts = replace(opts, retries=self._retries_override)
        made = tuple(self._endpoint(registry, opts, c) for c in registry_hosts(opts.hosts_dir, registry))
        with self._lock:
            return self._hosts.setdefault(registry, made)

    def server(self, registry: str) -> Endpoint:
        """``registry``'s own server: the last of its hosts."""
        return self.hosts(registry)[-1]

    @staticmethod
    def _endpoint(registry: str, opts: HostOptions, c: HostConfig) -> Endpoint:
        if c.dial_timeout is not None:
            opts = replace(opts, dial_timeout=c.dial_timeout)
        skip = opts.skip_verify if c.skip_verify is None else c.skip_verify
        context = ssl.create_default_context()
        if skip:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            warnings.filterwarnings("ignore", category=InsecureRequestWarning)  # asked for, so no nagging
        cas = [ca for ca in (opts.ca_file, *c.ca_files) if ca]
        netloc = c.host or registry_host(registry)
        for ca in cas:
            try:
                context.load_verify_locations(cafile=ca)
            except (OSError, ssl.SSLError) as e:
                raise InvalidArgument(f"{netloc}: cannot use CA file {ca}: {e}") from None
        for cert, key in c.client_pairs:
            try:
                context.load_cert_chain(cert, key or None)
            except (OSError, ssl.SSLError) as e:
                raise InvalidArgument(f"{netloc}: cannot use client certificate {cert}: {e}") from None
        scheme, fallback = endpoint(netloc, opts.plain_http, bool(cas) or skip, c.scheme)
        own = netloc in (registry, registry_host(registry))
        pool = urllib3.PoolManager(maxsize=16, block=False, ssl_context=context)
        return Endpoint(
            key=registry if own else netloc,
            netloc=netloc,
            scheme=scheme,
            path=c.path,
            capabilities=c.capabilities,
            namespace="" if own else registry,
            options=opts,
            pool=pool,
            fallback=fallback,
            headers={**opts.headers, **c.headers},
        )

    def _fall_back(self, h: Endpoint) -> None:
        """Switch ``h`` to plain HTTP for good (URLs made before are rewritten as they are used)."""
        with self._lock:
            h.scheme, h.fallback = "http", False

    @staticmethod
    def _rewrite(h: Endpoint, url: str) -> str:
        if h.scheme == "http" and url.startswith(f"https://{h.netloc}/"):
            return "http://" + url.removeprefix("https://")
        return url

    # -- auth ----------------------------------------------------------------

    def _cached(self, host: str, scopes: Sequence[str]) -> str | None:
        """The Authorization header for ``host`` (an endpoint's ``key``) and ``scopes``, if one is known."""
        key = (host, " ".join(sorted(scopes)))
        with self._lock:
            tok = self._tokens.get(key)
            if tok is not None and tok.expires > time.monotonic():
                return tok.header
            return self._basic.get(host)

    def _creds(self, host: str) -> tuple[str, str] | None:
        if self._credentials is None:
            return None
        creds = self._credentials(host)
        if creds is not None:
            remember(*creds)
        return creds

    def _authorize(self, h: Endpoint, scopes: Sequence[str], challenges: list[Challenge]) -> None:
        """Meet a 401's challenge so that the next try carries an Authorization header."""
        host = h.key
        bearer = next((c for c in challenges if c.scheme == "bearer"), None)
        creds = self._creds(host)
        if bearer is not None and bearer.params.get("realm"):
            self._fetch_token(h, scopes, bearer, creds)
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
        self, h: Endpoint, scopes: Sequence[str], challenge: Challenge, creds: tuple[str, str] | None
    ) -> None:
        host = h.key
        realm = challenge.params["realm"]
        if not realm.startswith(("https://", "http://")):
            raise Unauthenticated(f"{host}: token realm {realm!r} is not an HTTP URL")
        query: list[tuple[str, str]] = []
        if challenge.params.get("service"):
            query.append(("service", challenge.params["service"]))
        wanted = list(scopes) or ([challenge.params["scope"]] if challenge.params.get("scope") else [])
        query += [("scope", s) for s in wanted]
        headers = {"User-Agent": self._user_agent}
        if creds is not None and creds[0] != "<token>":
            query.append(("account", creds[0]))
            headers["Authorization"] = "Basic " + base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode()
        url = realm + ("&" if "?" in realm else "?") + urlencode(query)
        try:
            resp = h.pool.request("GET", url, headers=headers, timeout=self._timeout(h), retries=False)
        except NewConnectionError as e:  # a TimeoutError to urllib3, though usually a refusal
            raise Unavailable(f"{host}: cannot reach the token server at {realm}: {_reason(e)}") from None
        except TimeoutError:
            raise DeadlineExceeded(f"{host}: the token server at {realm} did not answer in time") from None
        except HTTPError as e:
            raise Unavailable(f"{host}: cannot reach the token server at {realm}: {_reason(e)}") from None
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
        remember("", token)
        with self._lock:
            self._tokens[(host, " ".join(sorted(scopes)))] = _Token(
                f"Bearer {token}", time.monotonic() + max(expires_in - 5, 1)
            )

    # -- requests ------------------------------------------------------------

    @staticmethod
    def _timeout(h: Endpoint) -> urllib3.Timeout:
        o = h.options
        return urllib3.Timeout(connect=o.dial_timeout or o.timeout, read=o.timeout)

    def request(
        self,
        method: str,
        url: str,
        *,
        host: Endpoint,
        scopes: Sequence[str],
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        stream: bool = False,
        what: str = "",
    ) -> Any:
        """One request, authenticated and retried as it allows; the response (unread when ``stream``)."""
        what = what or f"{method} {url}"
        h = host
        timeout = h.options.timeout
        attempts = h.options.retries + 1 if method in _IDEMPOTENT else 1
        authed = False
        attempt = 0
        while True:
            url = self._rewrite(h, url)
            hdrs = {"User-Agent": self._user_agent, **h.headers, **(headers or {})}
            auth = self._cached(h.key, scopes)
            if auth:
                hdrs["Authorization"] = auth
            try:
                resp = h.pool.request(
                    method,
                    url,
                    headers=hdrs,
                    body=body,
                    preload_content=not stream,
                    timeout=self._timeout(h),
                    retries=urllib3.Retry(total=None, connect=0, read=0, status=0, other=0, redirect=5),
                )
            except HTTPError as e:
                cause = getattr(e, "reason", None) or e  # urllib3 wraps the failure of its last try
                if isinstance(cause, SSLError) or isinstance(e, SSLError):
                    if h.fallback and _speaks_http(e):
                        self._fall_back(h)
                        continue
                    raise Unavailable(f"{what}: TLS with {h.netloc} failed: {_reason(e)}") from None
                if isinstance(cause, NameResolutionError) or isinstance(e, NameResolutionError):
                    raise Unavailable(
                        f"{what}: cannot resolve the registry host {h.netloc}: {_dns_reason(e)}"
                    ) from None
                attempt += 1
                if attempt < attempts:
                    self._backoff(attempt)
                    continue
                refused = isinstance(cause, NewConnectionError) or isinstance(e, NewConnectionError)
                if not refused and (isinstance(cause, TimeoutError) or isinstance(e, TimeoutError)):
                    raise DeadlineExceeded(f"{what}: {h.netloc} did not answer within {timeout:g} s") from None
                tries = f" (after {attempt} tries)" if attempt > 1 else ""
                raise Unavailable(f"{what}: cannot reach {h.netloc}{tries}: {_reason(e)}") from None
            if resp.status == 401 and not authed:
                challenges = parse_challenges(resp.headers.get("WWW-Authenticate", ""))
                drain(resp)
                self._authorize(h, scopes, challenges)
                authed = True
                continue
            if resp.status == 401:
                drain(resp)
                raise Unauthenticated(f"{what}: {h.netloc} refused the credentials ({registry_error(resp)})")
            if resp.status == 403:
                drain(resp)
                raise PermissionDenied(f"{what}: {h.netloc} denied access ({registry_error(resp)})")
            if resp.status == 429 and attempt < h.options.retries:
                # The request was refused, not processed: any method may be sent again.
                attempt += 1
                wait = retry_after(resp.headers.get("Retry-After", ""))
                drain(resp)
                if wait is None:
                    self._backoff(attempt)
                else:
                    time.sleep(min(wait, h.options.max_retry_after))
                continue
            if resp.status >= 500 and attempt + 1 < attempts:
                attempt += 1
                drain(resp)
                self._backoff(attempt)
                continue
            return resp

    def _backoff(self, attempt: int) -> None:
        time.sleep(min(0.1 * 2 ** (attempt - 1), 2.0))

    def close(self) -> None:
        with self._lock:
            hosts, self._hosts = [h for hs in self._hosts.values() for h in hs], {}
        for h in hosts:
            h.pool.clear()


def _speaks_http(e: Exception) -> bool:
    """Whether a TLS failure came from a server that answered in plain HTTP."""
    text = str(getattr(e, "reason", None) or e).upper()
    return "WRONG_VERSION_NUMBER" in text or "RECORD LAYER FAILURE" in text or "HTTP_REQUEST" in text


def drain(resp: Any) -> None:
    """Read what is left of an unwanted answer's body, so that its connection can serve the next request."""
    try:
        resp.data  # noqa: B018 - read what is left, so the connection can be reused
    except HTTPError:
        pass
    finally:
        resp.release_conn()


def _dns_reason(e: Exception) -> str:
    """What the resolver said, without urllib3's wrapping (``Failed to resolve 'x' ([Errno -2] Name or ...)``)."""
    text = _reason(e)
    inner = text.rsplit("(", 1)[-1].rstrip(")") if "(" in text else text
    return inner.split("] ", 1)[-1] if "] " in inner else inner


def _reason(e: Exception) -> str:
    inner = getattr(e, "reason", None)
    text = str(inner or e)
    return text.split(": ", 1)[-1] if "Max retries" in text else text


def fail(resp: Any, what: str, host: str) -> ContainerdError:
    """The error for an answer the caller did not expect."""
    drain(resp)
    if resp.status >= 500:
        return Unavailable(f"{what}: {host} answered {registry_error(resp)}")
    if resp.status == 429:
        return Unavailable(f"{what}: {host} kept answering 429 Too Many Requests ({registry_error(resp)})")
    return Unknown(f"{what}: unexpected answer from {host}: {registry_error(resp)}")
