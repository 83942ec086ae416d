"""The Engine API's routes, one module per area; each module's ``register`` adds its handlers.

Handlers are thin: parse the request, call a service through the
:class:`~pydockerd._backend.Backend`, shape the answer.  Errors are raised,
never answered here: the router turns them into Docker's status and body.
"""

from __future__ import annotations

from .._backend import Backend
from .._router import Router
from .._version import MAX_VERSION, VERSION
from . import archive, build, commit, containers, df, exec, images, system

__all__ = ["build_router"]


def build_router(backend: Backend) -> Router:
    r = Router(
        headers=[
            ("Api-Version", MAX_VERSION),
            ("Docker-Experimental", "false"),
            ("Ostype", "linux"),
            ("Server", f"Docker/{VERSION} (linux)"),
        ]
    )
    for module in (system, images, build, containers, exec, archive, commit, df):
        module.register(r, backend)
    return r
