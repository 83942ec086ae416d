"""Raw gRPC access to a test daemon: stubs per service, with the namespace (and lease) header."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import pytest

from pycontainerd.api.services.content.v1 import content_pb2_grpc
from pycontainerd.api.services.images.v1 import images_pb2_grpc
from pycontainerd.api.services.introspection.v1 import introspection_pb2_grpc
from pycontainerd.api.services.leases.v1 import leases_pb2_grpc
from pycontainerd.api.services.namespaces.v1 import namespace_pb2_grpc
from pycontainerd.api.services.version.v1 import version_pb2_grpc
from tests.fixtures.daemon import PycontainerdDaemon

NAMESPACE = "daemon-tests"


@dataclass
class Stubs:
    channel: grpc.Channel

    def __post_init__(self) -> None:
        self.content = content_pb2_grpc.ContentStub(self.channel)
        self.images = images_pb2_grpc.ImagesStub(self.channel)
        self.leases = leases_pb2_grpc.LeasesStub(self.channel)
        self.namespaces = namespace_pb2_grpc.NamespacesStub(self.channel)
        self.introspection = introspection_pb2_grpc.IntrospectionStub(self.channel)
        self.version = version_pb2_grpc.VersionStub(self.channel)


def md(namespace: str | None = NAMESPACE, lease: str | None = None) -> list[tuple[str, str]]:
    """Call metadata as containerd clients send it."""
    out = []
    if namespace is not None:
        out.append(("containerd-namespace", namespace))
    if lease is not None:
        out.append(("containerd-lease", lease))
    return out


def channel_to(address: str) -> grpc.Channel:
    return grpc.insecure_channel(
        f"unix://{address}",
        options=[("grpc.max_receive_message_length", 16 << 20), ("grpc.max_send_message_length", 16 << 20)],
    )


@pytest.fixture
def stubs(pycontainerd_daemon: PycontainerdDaemon) -> Iterator[Stubs]:
    with channel_to(pycontainerd_daemon.address) as ch:
        yield Stubs(ch)
