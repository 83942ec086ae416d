"""Docker containers on containerd: records, specs, lifecycle, stdio, logs, attach, exec, stats.

Modules, one concept each: ``_config`` (a create request checked and merged
with the image's config), ``_spec`` (the OCI spec), ``_state`` (the
lifecycle), ``_store`` (records on disk), ``_names``, ``_slot`` (a
container's run-time stdio and waiters), ``_stdio`` (FIFOs on the event loop), ``_jsonlog`` (the json-file log), ``_frames`` (Docker's
multiplexed stream), ``_streams`` (attach and logs), ``_exec``, ``_stats``
(stats and top), ``_views`` (inspect and list), and ``_service`` tying them
to containerd.
"""

from __future__ import annotations

from ._exec import ExecRecord, ExecService
from ._frames import FrameDecoder, encode_frame
from ._service import ContainerService
from ._streams import AttachOptions, LogOptions, attach, logs, parse_tail

__all__ = [
    "AttachOptions",
    "ContainerService",
    "ExecRecord",
    "ExecService",
    "FrameDecoder",
    "LogOptions",
    "attach",
    "encode_frame",
    "logs",
    "parse_tail",
]
