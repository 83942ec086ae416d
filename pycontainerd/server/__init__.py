"""The daemon: configuration, the list of built-in plugins, and the gRPC server that runs them."""

from __future__ import annotations

from .config import Config, ConfigError, load
from .server import AddressInUse, RootLocked, Server

__all__ = ["AddressInUse", "Config", "ConfigError", "RootLocked", "Server", "load"]
