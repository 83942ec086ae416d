"""Migrating a Docker data root (overlay2 graph driver) into pycontainerd.

Reading never writes the Docker root: :func:`read_docker_root` returns a
:class:`DockerStore` of images, layers and references with a report of what
cannot be migrated, and :class:`LayerStream` / :func:`reassemble` rebuild
each layer's exact tar stream from its tar-split record and overlay2
``diff`` directory.  :func:`migrate_docker` writes what was read into a
daemon through its client (see :mod:`.importer` for what images become):
committed snapshots and each layer's tar-split record (:mod:`.labels`),
but no layer blobs.  Those are made when something needs them, a push or
an export, by :mod:`.ondemand`: rebuilt from a read-only view of each
layer's snapshot and its record, gzipped, checked against the diff id,
and listed in a new manifest that the image's records then name (imported
on its own, by the push and export paths, not with this package).
"""

from __future__ import annotations

from .dockerstore import chain_ids, read_docker_root
from .importer import Event, MigrateOptions, MigrationReport, Outcome, migrate_docker
from .layerstream import DiffDirSource, LayerStream, reassemble, stream_length, verify_layers
from .records import BlobSource, DockerStore, ImageRecord, LayerRecord, Problem, Reference
from .tarsplit import Assembled, FileEntry, Segment, TarAssembler, TarSplitDecoder, parse_entry, read_entries

__all__ = [
    "Assembled",
    "BlobSource",
    "DiffDirSource",
    "DockerStore",
    "Event",
    "FileEntry",
    "ImageRecord",
    "LayerRecord",
    "LayerStream",
    "MigrateOptions",
    "MigrationReport",
    "Outcome",
    "Problem",
    "Reference",
    "Segment",
    "TarAssembler",
    "TarSplitDecoder",
    "chain_ids",
    "migrate_docker",
    "parse_entry",
    "read_docker_root",
    "read_entries",
    "reassemble",
    "stream_length",
    "verify_layers",
]
