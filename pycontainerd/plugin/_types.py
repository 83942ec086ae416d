"""The plugin type strings, as containerd spells them."""

from __future__ import annotations

from enum import StrEnum


class PluginType(StrEnum):
    CONTENT = "io.containerd.content.v1"
    METADATA = "io.containerd.metadata.v1"
    GC = "io.containerd.gc.v1"
    LEASE = "io.containerd.lease.v1"
    EVENT = "io.containerd.event.v1"
    SERVICE = "io.containerd.service.v1"
    GRPC = "io.containerd.grpc.v1"
    SNAPSHOT = "io.containerd.snapshotter.v1"
    DIFF = "io.containerd.differ.v1"
    RUNTIME = "io.containerd.runtime.v2"
    INTERNAL = "io.containerd.internal.v1"
    STREAMING = "io.containerd.streaming.v1"
    TRANSFER = "io.containerd.transfer.v1"
