"""The per-container shim: the process that drives runc for one task and outlives the daemon.

``python -m pycontainerd.runtime.shim`` is the shim itself (stdlib only, a
single-threaded epoll loop); :mod:`.spawn` starts one — forked from a fork
server that has imported it all, or from scratch; :mod:`.client` is the
daemon's asyncio side; :mod:`.protocol` is the wire format both speak.  Nothing is imported here,
so the shim's start-up pays for no more than it uses.
"""

__all__: list[str] = []
