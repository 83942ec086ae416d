"""The content store: immutable, content-addressed blobs and their ingests.

Vocabulary, as containerd's:

* a *blob* is addressed by its digest (``sha256:<hex>``) and never changes;
* an *ingest* is a blob being written under a client-chosen *ref*; it can be
  resumed from its offset, and becomes a blob on *commit*, which checks size
  and digest;
* *labels* are mutable string metadata on a blob (the gc references among
  them).

The store is four small roles, so helpers can ask for the narrowest one.
Every implementation (the local directory store, the metadata wrapper that
adds namespaces and leases, the gRPC proxy) passes the same conformance suite
in ``tests/conformance/content.py``.
"""

from __future__ import annotations

from ._digest import Digester, validate_digest
from ._types import (
    Following,
    Info,
    Ingester,
    IngestManager,
    Manager,
    Provider,
    ReaderAt,
    Status,
    Store,
    Writer,
)
from .helpers import BlobFile, copy_into, open_blob, read_blob, write_blob

__all__ = [
    "BlobFile",
    "Digester",
    "Following",
    "Info",
    "IngestManager",
    "Ingester",
    "Manager",
    "Provider",
    "ReaderAt",
    "Status",
    "Store",
    "Writer",
    "copy_into",
    "open_blob",
    "read_blob",
    "validate_digest",
    "write_blob",
]
