"""Plugins: how the daemon's components declare themselves and find each other.

Like containerd's registry, a registration names a versioned type, an id, the
types it requires and a function that builds the component.  The registry
orders registrations so that every requirement is initialised first and
refuses cycles; the daemon records each plugin's outcome for Introspection.
"""

from __future__ import annotations

from ._registry import InitContext, Plugin, PluginSet, Registration, Registry, ordered
from ._types import PluginType

__all__ = ["InitContext", "Plugin", "PluginSet", "PluginType", "Registration", "Registry", "ordered"]
