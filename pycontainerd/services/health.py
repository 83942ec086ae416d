"""The standard grpc.health.v1 service, which clients and our own fixtures poll.

The daemon only registers its services once every plugin is initialised, so
the overall status is SERVING from the first call it can answer; it turns
NOT_SERVING when shutdown begins.
"""

from __future__ import annotations

import grpc
from grpc_health.v1 import health, health_pb2_grpc

__all__ = ["HealthService"]


class HealthService:
    def __init__(self) -> None:
        self._servicer = health.aio.HealthServicer()

    def register(self, server: grpc.aio.Server) -> None:
        health_pb2_grpc.add_HealthServicer_to_server(self._servicer, server)

    async def shutdown(self) -> None:
        """Report NOT_SERVING to every watcher, before the server stops."""
        await self._servicer.enter_graceful_shutdown()
