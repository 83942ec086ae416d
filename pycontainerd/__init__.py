"""pycontainerd: containerd in Python.

The daemon serves containerd's v1 gRPC API; ``pycontainerd.client`` talks to
it or to a real containerd; ``pyctr`` is the command line.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
