"""The classic builder (``docker build`` with DOCKER_BUILDKIT=0): a Dockerfile over a context tar, to an image.

Modules of one concept each: the Dockerfile parser (``_parser``), variable
expansion (``_shell``) and ``.dockerignore`` rules (``_ignore``) are pure;
``_context`` unpacks the hostile context tar; ``_copy`` does COPY and ADD
into a mounted rootfs; ``_run`` runs RUN in a containerd container;
``_cache`` is the layer cache; ``_executor`` runs the stages over the commit
primitive (:mod:`pydockerd._commit`); ``_service`` is what the API calls.
"""

from __future__ import annotations

from ._context import MAX_UPLOAD
from ._executor import BuildError, BuildOptions
from ._service import BuildService

__all__ = ["MAX_UPLOAD", "BuildError", "BuildOptions", "BuildService"]
