"""The remote for OCI distribution registries (Docker Hub, docker-registry, and the rest).

:class:`DockerResolver` implements :mod:`pycontainerd.remotes`' roles over
HTTP with urllib3: tag resolution, blob and manifest fetches with resumable
ranges, pushes (existence check, cross-repository mount, monolithic or
chunked upload), basic and bearer-token authentication, retries and
timeouts.  Credentials come from a function of the host, so they can be
asked of a client at the moment a registry wants them.

Names are imported from their modules when first used: a client that only
reads the Docker CLI's credentials for a daemon's pull does not load urllib3.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..._lazy import lazy_exports

if TYPE_CHECKING:
    from ._challenge import Challenge, parse_challenges
    from ._credentials import RedactingFilter, credentials_from_docker_config, redact, remember
    from ._resolver import DockerResolver
    from ._session import Credentials, HostOptions, HostsFn, registry_host

__all__ = [
    "Challenge",
    "Credentials",
    "DockerResolver",
    "HostOptions",
    "HostsFn",
    "RedactingFilter",
    "credentials_from_docker_config",
    "parse_challenges",
    "redact",
    "registry_host",
    "remember",
]

_HOME_OF = {
    "Challenge": "_challenge",
    "parse_challenges": "_challenge",
    "credentials_from_docker_config": "_credentials",
    "RedactingFilter": "_credentials",
    "redact": "_credentials",
    "remember": "_credentials",
    "DockerResolver": "_resolver",
    "Credentials": "_session",
    "HostOptions": "_session",
    "HostsFn": "_session",
    "registry_host": "_session",
}


__getattr__, __dir__ = lazy_exports(__name__, _HOME_OF, __all__, globals())
