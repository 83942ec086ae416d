"""The Version gRPC service: which pycontainerd answers, and from which source revision.

The revision is the git commit of the source tree the daemon runs from, when
it runs from a checkout; an installed package reports an empty revision.
"""

from __future__ import annotations

import functools
import pathlib

import grpc
from google.protobuf.empty_pb2 import Empty

from .. import __version__
from ..api.services.version.v1 import version_pb2 as pb
from ..api.services.version.v1 import version_pb2_grpc as pb_grpc
from .rpc import guarded

__all__ = ["VersionService", "revision"]


@functools.cache
def revision() -> str:
    """The commit of the enclosing git checkout, read from its files (no git binary needed)."""
    git = pathlib.Path(__file__).resolve().parents[2] / ".git"
    try:
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref: "):
            return head
        ref = head.removeprefix("ref: ")
        ref_file = git / ref
        if ref_file.is_file():
            return ref_file.read_text().strip()
        for line in (git / "packed-refs").read_text().splitlines():
            sha, _, name = line.partition(" ")
            if name == ref:
                return sha
    except OSError:
        pass
    return ""


class VersionService(pb_grpc.VersionServicer):
    def register(self, server: grpc.aio.Server) -> None:
        pb_grpc.add_VersionServicer_to_server(guarded(self), server)

    async def Version(self, request: Empty, context: grpc.aio.ServicerContext) -> pb.VersionResponse:
        return pb.VersionResponse(version=__version__, revision=revision())
