"""Routing of Engine API requests: the version prefix, path patterns, and errors turned into responses.

Patterns are written as dockerd's: ``/images/{name:.*}/json`` — a parameter
is ``{name}`` (one path segment) or ``{name:regex}``.  Every route answers
with and without the ``/vX.Y`` prefix; HEAD is served by the GET route.  An
unknown path is dockerd's 404 "page not found"; a handler's exception is
mapped to its status by :func:`~pydockerd._errors.status_and_message`.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence

from ._errors import MethodNotAllowed, PageNotFound, status_and_message
from ._http import Request, Response
from ._version import split_version

__all__ = ["Handler", "Router"]

Handler = Callable[[Request], Awaitable[Response]]
_PARAM = re.compile(r"\{(?P<name>[A-Za-z_]+)(?::(?P<regex>[^}]+))?\}")


def compile_pattern(pattern: str) -> re.Pattern[str]:
    out, last = [], 0
    for m in _PARAM.finditer(pattern):
        out.append(re.escape(pattern[last : m.start()]))
        out.append(f"(?P<{m['name']}>{m['regex'] or '[^/]+'})")
        last = m.end()
    out.append(re.escape(pattern[last:]))
    return re.compile("^" + "".join(out) + "$")


class Router:
    """Dispatch to handlers; ``headers`` go on every response (dockerd's Api-Version, Server, ...)."""

    def __init__(self, headers: Sequence[tuple[str, str]] = ()) -> None:
        self._routes: list[tuple[str, re.Pattern[str], Handler, bool]] = []
        self._headers = list(headers)

    def add(self, method: str, pattern: str, handler: Handler, *, stream: bool = False) -> None:
        """Route ``method`` on ``pattern`` to ``handler``; with ``stream`` the handler reads the body itself."""
        self._routes.append((method.upper(), compile_pattern(pattern), handler, stream))

    def resolve(self, method: str, path: str) -> tuple[Handler, dict[str, str], bool]:
        """The handler of ``method`` on ``path``, its parameters and whether it streams its body.

        PageNotFound or MethodNotAllowed when there is none.
        """
        wanted = "GET" if method == "HEAD" else method
        allowed = False
        for route_method, regex, handler, stream in self._routes:
            m = regex.match(path)
            if m is None:
                continue
            if route_method in (method, wanted):
                return handler, m.groupdict(), stream
            allowed = True
        if allowed:
            raise MethodNotAllowed(f"method {method} not allowed on {path}")
        raise PageNotFound()

    async def __call__(self, request: Request) -> Response:
        try:
            request.version, path = split_version(request.path)
            handler, request.params, stream = self.resolve(request.method, path)
            if not stream:
                request.body = await request.read()
            response = await handler(request)
        except Exception as e:
            status, message = status_and_message(e)
            response = Response.error(status, message)
        response.headers.extend(self._headers)
        return response
