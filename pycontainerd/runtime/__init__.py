"""Runtimes: what runs a task's processes.

``pycontainerd.runtime.shim`` is the per-container shim process and its
client.  This package imports nothing: the shim is started as
``python -m pycontainerd.runtime.shim`` and pays for every import here.
"""

__all__: list[str] = []
