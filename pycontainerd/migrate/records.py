"""What reading a Docker data root yields: images, layers, references, and what cannot be migrated.

These records are the whole interface between reading Docker's store and
writing pycontainerd's (content store, snapshotters, image records): they
hold digests, raw config bytes and where each layer's files and tar-split
lie, never an open file.  Every image listed is complete (its config
verified, each of its layers present down to the base); anything else is a
:class:`Problem` with the reason, so one damaged entry costs only itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["BlobSource", "DockerStore", "ImageRecord", "LayerRecord", "Problem", "Reference"]


@dataclass(frozen=True, slots=True)
class Problem:
    """Something in the Docker root that will not be migrated: ``subject`` names it, ``reason`` says why.

    ``path`` is the file or directory at fault (``reason`` names it too).
    """

    subject: str
    path: Path
    reason: str

    def __str__(self) -> str:
        return f"{self.subject}: {self.reason}"


@dataclass(frozen=True, slots=True)
class BlobSource:
    """A compressed blob a layer was pulled as (Docker's distribution metadata): worth reusing on push."""

    digest: str
    repository: str
    hmac: str = ""


@dataclass(frozen=True, slots=True)
class LayerRecord:
    """One layer of the layer store, keyed by chain id; its files are in ``diff_dir``.

    ``parent`` is the chain id below it (``None`` for a base layer).
    ``size`` is Docker's recorded size of the unpacked files.  The tar
    stream whose sha256 is ``diff_id`` is rebuilt from ``tar_split`` and
    ``diff_dir`` (see :mod:`pycontainerd.migrate.layerstream`).
    """

    chain_id: str
    diff_id: str
    parent: str | None
    size: int
    cache_id: str
    diff_dir: Path
    tar_split: Path
    blobs: tuple[BlobSource, ...] = ()


@dataclass(frozen=True, slots=True)
class ImageRecord:
    """An image: ``id`` is the sha256 of ``config`` (Docker's image id); ``layers`` are chain ids, base first."""

    id: str
    config: bytes
    diff_ids: tuple[str, ...]
    layers: tuple[str, ...]
    os: str
    architecture: str
    variant: str = ""
    parent: str | None = None
    last_updated: str | None = None
    references: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Reference:
    """A name in ``repositories.json``: ``repository:tag`` or ``repository@sha256:…``, and its image id.

    ``digest`` is set for the second kind: the manifest digest the image was
    pulled by, which Docker did not keep (only the config is stored).
    """

    name: str
    repository: str
    image_id: str
    tag: str | None = None
    digest: str | None = None


@dataclass(slots=True)
class DockerStore:
    """A Docker data root as read: what can be migrated, and :attr:`problems` for everything that cannot."""

    root: Path
    driver: str
    images: dict[str, ImageRecord] = field(default_factory=dict)
    layers: dict[str, LayerRecord] = field(default_factory=dict)
    references: list[Reference] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    def layer_chain(self, image: ImageRecord) -> list[LayerRecord]:
        """The image's layers, base first."""
        return [self.layers[c] for c in image.layers]

    def drop_layer(self, chain_id: str, path: Path, reason: str) -> None:
        """Record ``chain_id`` as unusable, and with it every layer above it, image on it and name of those images."""
        self.problems.append(Problem(f"layer {chain_id}", path, reason))
        gone = {chain_id}
        grew = True
        while grew:
            above = {c for c, layer in self.layers.items() if layer.parent in gone and c not in gone}
            gone |= above
            grew = bool(above)
        for c in gone - {chain_id}:
            self.problems.append(Problem(f"layer {c}", path, f"parent layer {chain_id} is broken"))
        for c in gone:
            self.layers.pop(c, None)
        for image_id, image in list(self.images.items()):
            if gone.intersection(image.layers):
                del self.images[image_id]
                self.problems.append(Problem(f"image {image_id}", path, f"layer {chain_id} is broken"))
        for ref in [r for r in self.references if r.image_id not in self.images]:
            self.references.remove(ref)
            self.problems.append(
                Problem(
                    f"reference {ref.name}",
                    path,
                    f"image {ref.image_id} cannot be migrated: layer {chain_id} is broken",
                )
            )

    def report(self) -> list[str]:
        """One line per problem, in the order found."""
        return [str(p) for p in self.problems]
