"""Migrating a Docker data root (overlay2 graph driver) into pycontainerd.

This first part reads, and never writes, the Docker root:
:func:`read_docker_root` returns a :class:`DockerStore` of images, layers
and references with a report of what cannot be migrated, and
:class:`LayerStream` / :func:`reassemble` rebuild each layer's exact tar
stream from its tar-split record and overlay2 ``diff`` directory.
"""

from __future__ import annotations

from .dockerstore import chain_ids, read_docker_root
from .layerstream import DiffDirSource, LayerStream, reassemble, verify_layers
from .records import BlobSource, DockerStore, ImageRecord, LayerRecord, Problem, Reference
from .tarsplit import Assembled, FileEntry, Segment, TarAssembler, TarSplitDecoder, parse_entry, read_entries

__all__ = [
    "Assembled",
    "BlobSource",
    "DiffDirSource",
    "DockerStore",
    "FileEntry",
    "ImageRecord",
    "LayerRecord",
    "LayerStream",
    "Problem",
    "Reference",
    "Segment",
    "TarAssembler",
    "TarSplitDecoder",
    "chain_ids",
    "parse_entry",
    "read_docker_root",
    "read_entries",
    "reassemble",
    "verify_layers",
]
