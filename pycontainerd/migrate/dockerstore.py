"""Reading a Docker data root that uses the overlay2 graph driver, read-only, into :mod:`.records`.

The layout read (``<root>`` is dockerd's ``--data-root``)::

    image/overlay2/repositories.json            {"Repositories": {repo: {"repo:tag" | "repo@sha256:…": image id}}}
    image/overlay2/imagedb/content/sha256/<id>  image config; sha256(bytes) == id
    image/overlay2/imagedb/metadata/sha256/<id>/parent, lastUpdated
    image/overlay2/layerdb/sha256/<chain id>/   diff, size, cache-id, parent (not on a base layer),
                                                tar-split.json.gz
    image/overlay2/distribution/v2metadata-by-diffid/sha256/<diff id hex>
                                                [{"Digest", "SourceRepository", "HMAC"}]: blobs pulled
    image/overlay2/distribution/diffid-by-digest/sha256/<blob hex>   "sha256:<diff id>"
    overlay2/<cache-id>/diff/                   the layer's files (whiteouts as 0:0 character devices)

Other directories under ``image/`` are other graph drivers (vfs,
devicemapper, aufs, btrfs, zfs, overlay), and ``graph/`` or
``repositories-*`` at the top are the pre-1.10 store of schema1 days; they
are reported, not read.  Every file is treated as hostile: each failure
becomes one :class:`~.records.Problem` naming the file, and whatever
depends on it (a layer above, an image, a tag) is reported as well rather
than the whole read being aborted.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Final, TypeVar

from ..errors import ContainerdError, FailedPrecondition, InvalidArgument, NotFound, quote
from ._safefs import SafeDir
from .records import BlobSource, DockerStore, ImageRecord, LayerRecord, Problem, Reference

__all__ = ["DRIVER", "chain_ids", "read_docker_root"]

DRIVER: Final = "overlay2"
_HEX: Final = re.compile(r"[0-9a-f]{64}")
_DIGEST: Final = re.compile(r"sha256:[0-9a-f]{64}")
_CACHE_ID: Final = re.compile(r"[0-9a-f]{64}")
SMALL: Final = 4096  # diff, size, cache-id, parent, lastUpdated
CONFIG_LIMIT: Final = 32 << 20
REPOSITORIES_LIMIT: Final = 64 << 20
V2METADATA_LIMIT: Final = 1 << 20

T = TypeVar("T")


def chain_ids(diff_ids: list[str] | tuple[str, ...]) -> list[str]:
    """The chain ids of a stack of layers (OCI image spec): the first is its diff id, each next one
    sha256 of ``"<chain below> <diff id>"``."""
    out: list[str] = []
    for diff in diff_ids:
        out.append(diff if not out else "sha256:" + hashlib.sha256(f"{out[-1]} {diff}".encode()).hexdigest())
    return out


def _text(data: bytes, where: Path) -> str:
    try:
        return data.decode().strip()
    except UnicodeDecodeError as exc:
        raise InvalidArgument(f"{quote(str(where))}: not UTF-8 text") from exc


def _digest(value: str, where: Path, what: str) -> str:
    if not _DIGEST.fullmatch(value):
        raise InvalidArgument(f"{quote(str(where))}: {what} {quote(value[:100])} is not a sha256 digest")
    return value


def _json(data: bytes, where: Path) -> object:
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidArgument(f"{quote(str(where))}: not valid JSON ({exc})") from exc


class _Reader:
    """One pass over a root; ``store`` fills up as it goes."""

    def __init__(self, root: SafeDir, store: DockerStore) -> None:
        self.root = root
        self.store = store
        self.image_dir = ("image", DRIVER)
        # Layers whose record could not be read, or whose parent could not: chain id -> why.
        self.broken: dict[str, str] = {}

    def path(self, *parts: str) -> Path:
        return self.root.where(parts)

    def problem(self, subject: str, path: Path, reason: str) -> None:
        self.store.problems.append(Problem(subject, path, reason))

    def attempt(self, subject: str, path: Path, fn: Callable[[], T]) -> T | None:
        """``fn()``, or ``None`` with a problem recorded when it raises one of our errors."""
        try:
            return fn()
        except ContainerdError as exc:
            self.problem(subject, path, str(exc))
            return None

    # -- the whole root ---------------------------------------------------------

    def run(self) -> None:
        self.other_stores()
        if not self.root.is_dir(*self.image_dir):
            self.problem(
                "image store",
                self.path(*self.image_dir),
                f"{quote(str(self.path(*self.image_dir)))}: no overlay2 image store in this root",
            )
            return
        self.layers()
        self.distribution()
        self.images()
        self.repositories()

    def other_stores(self) -> None:
        """Report graph drivers other than overlay2 and the pre-1.10 (schema1-era) store."""
        if self.root.is_dir("image"):
            for name in self.root.listdir("image"):
                if name == DRIVER:
                    continue
                where = self.path("image", name)
                count = ""
                try:
                    count = f" ({len(self.root.listdir('image', name, 'imagedb', 'content', 'sha256'))} images)"
                except ContainerdError:
                    pass
                self.problem(
                    f"graph driver {name}",
                    where,
                    f"{quote(str(where))}: images of the {name} graph driver{count} are not migrated: only overlay2 is",
                )
        for name in self.root.listdir():
            if name == "graph" or name.startswith("repositories-"):
                where = self.path(name)
                self.problem(
                    "schema1 leftovers",
                    where,
                    f"{quote(str(where))}: the pre-1.10 image store (schema1 era) is not migrated",
                )

    # -- layers -----------------------------------------------------------------

    def layers(self) -> None:
        base = (*self.image_dir, "layerdb")
        if not self.root.is_dir(*base):
            return
        for algo in self.root.listdir(*base):
            if algo in ("mounts", "tmp"):
                continue  # containers' read-write layers, and Docker's scratch space
            if algo != "sha256":
                where = self.path(*base, algo)
                self.problem("layer store", where, f"{quote(str(where))}: digest algorithm {quote(algo)} is not sha256")
                continue
        parents: dict[str, str | None] = {}
        if self.root.is_dir(*base, "sha256"):
            for name in self.root.listdir(*base, "sha256"):
                where = self.path(*base, "sha256", name)
                chain = f"sha256:{name}"
                layer = self.attempt(f"layer {chain}", where, partial(self.layer, name))
                if layer is None:
                    self.broken[chain] = "its layer store entry cannot be read"
                else:
                    self.store.layers[chain] = layer
                    parents[chain] = layer.parent
        for chain in list(self.store.layers):
            why = self.chain_broken(chain, parents)
            if why is not None:
                del self.store.layers[chain]
                self.broken[chain] = why
                where = self.path(*base, "sha256", chain.split(":", 1)[1])
                self.problem(f"layer {chain}", where, f"{quote(str(where))}: {why}")

    def chain_broken(self, chain: str, parents: dict[str, str | None]) -> str | None:
        """Why ``chain`` cannot be used because of a layer below it, or ``None``."""
        seen = {chain}
        below = parents[chain]
        while below is not None:
            if below in self.broken or below not in parents:
                return f"parent layer {below} is missing or broken"
            if below in seen:
                return "its parents form a loop"
            seen.add(below)
            below = parents[below]
        return None

    def layer(self, name: str) -> LayerRecord:
        d = (*self.image_dir, "layerdb", "sha256", name)
        if not _HEX.fullmatch(name):
            raise InvalidArgument(f"{quote(str(self.path(*d)))}: the name is not a sha256 digest")
        if not self.root.is_dir(*d):
            raise InvalidArgument(f"{quote(str(self.path(*d)))}: not a directory")

        def small(file: str) -> str:
            return _text(self.root.read_small(*d, file, limit=SMALL), self.path(*d, file))

        diff_id = _digest(small("diff"), self.path(*d, "diff"), "diff id")
        parent: str | None = None
        if self.root.exists(*d, "parent"):
            parent = _digest(small("parent"), self.path(*d, "parent"), "parent")
        chain = f"sha256:{name}"
        expected = chain_ids([parent, diff_id])[1] if parent else diff_id
        if expected != chain:
            raise InvalidArgument(
                f"{quote(str(self.path(*d)))}: chain id does not follow from parent {parent} and diff {diff_id}"
            )
        size_text = small("size")
        if not size_text.isdigit():
            raise InvalidArgument(f"{quote(str(self.path(*d, 'size')))}: {quote(size_text[:40])} is not a size")
        cache_id = small("cache-id")
        if not _CACHE_ID.fullmatch(cache_id):
            raise InvalidArgument(
                f"{quote(str(self.path(*d, 'cache-id')))}: {quote(cache_id[:100])} is not an overlay2 layer directory name"
            )
        os.close(self.root.open_file(*d, "tar-split.json.gz"))  # a regular file (read on reassembly)
        if not self.root.is_dir(DRIVER, cache_id, "diff"):
            where = self.path(DRIVER, cache_id, "diff")
            self.root.lstat(DRIVER, cache_id, "diff")  # NotFound names it when missing
            raise InvalidArgument(f"{quote(str(where))}: not a directory")
        return LayerRecord(
            chain_id=chain,
            diff_id=diff_id,
            parent=parent,
            size=int(size_text),
            cache_id=cache_id,
            diff_dir=self.path(DRIVER, cache_id, "diff"),
            tar_split=self.path(*d, "tar-split.json.gz"),
        )

    # -- distribution metadata --------------------------------------------------

    def distribution(self) -> None:
        """Attach to each layer the compressed blobs Docker pulled it as (a hint: problems cost only the hint)."""
        base = (*self.image_dir, "distribution", "v2metadata-by-diffid", "sha256")
        if not self.root.is_dir(*base):
            return
        by_diff: dict[str, tuple[BlobSource, ...]] = {}
        for name in self.root.listdir(*base):
            where = self.path(*base, name)
            blobs = self.attempt("distribution metadata", where, partial(self.v2metadata, base, name))
            if blobs is not None:
                by_diff[f"sha256:{name}"] = blobs
        for chain, layer in self.store.layers.items():
            blobs = by_diff.get(layer.diff_id)
            if blobs:
                self.store.layers[chain] = replace(layer, blobs=blobs)

    def v2metadata(self, base: tuple[str, ...], name: str) -> tuple[BlobSource, ...]:
        where = self.path(*base, name)
        if not _HEX.fullmatch(name):
            raise InvalidArgument(f"{quote(str(where))}: the name is not a sha256 digest")
        doc = _json(self.root.read_small(*base, name, limit=V2METADATA_LIMIT), where)
        if not isinstance(doc, list):
            raise InvalidArgument(f"{quote(str(where))}: not a JSON list")
        out = []
        for item in doc:
            if not isinstance(item, dict):
                raise InvalidArgument(f"{quote(str(where))}: an entry is not an object")
            digest, repo, hmac = item.get("Digest"), item.get("SourceRepository"), item.get("HMAC", "")
            if not isinstance(digest, str) or not isinstance(repo, str) or not isinstance(hmac, str):
                raise InvalidArgument(f"{quote(str(where))}: an entry lacks Digest or SourceRepository")
            out.append(BlobSource(_digest(digest, where, "blob digest"), repo, hmac))
        return tuple(out)

    # -- images -----------------------------------------------------------------

    def images(self) -> None:
        base = (*self.image_dir, "imagedb", "content")
        if not self.root.is_dir(*base):
            return
        for algo in self.root.listdir(*base):
            if algo != "sha256":
                where = self.path(*base, algo)
                self.problem("image store", where, f"{quote(str(where))}: digest algorithm {quote(algo)} is not sha256")
        if not self.root.is_dir(*base, "sha256"):
            return
        for name in self.root.listdir(*base, "sha256"):
            where = self.path(*base, "sha256", name)
            image = self.attempt(f"image sha256:{name}", where, partial(self.image, name))
            if image is not None:
                self.store.images[image.id] = image

    def image(self, name: str) -> ImageRecord:
        d = (*self.image_dir, "imagedb", "content", "sha256")
        where = self.path(*d, name)
        if not _HEX.fullmatch(name):
            raise InvalidArgument(f"{quote(str(where))}: the name is not a sha256 digest")
        config = self.root.read_small(*d, name, limit=CONFIG_LIMIT)
        actual = hashlib.sha256(config).hexdigest()
        if actual != name:
            raise InvalidArgument(f"{quote(str(where))}: contents have digest sha256:{actual}, not the file's name")
        doc = _json(config, where)
        if not isinstance(doc, dict):
            raise InvalidArgument(f"{quote(str(where))}: not a JSON object")
        rootfs = doc.get("rootfs")
        if not isinstance(rootfs, dict):
            raise FailedPrecondition(f"{quote(str(where))}: no rootfs: a v1 (schema1-era) image config is not migrated")
        diff_ids = rootfs.get("diff_ids") or []
        if rootfs.get("type") != "layers" or not isinstance(diff_ids, list):
            raise InvalidArgument(f"{quote(str(where))}: rootfs is not of type layers with a list of diff_ids")
        diffs = tuple(_digest(str(x), where, "diff id") if isinstance(x, str) else "" for x in diff_ids)
        if "" in diffs:
            raise InvalidArgument(f"{quote(str(where))}: a diff id is not a string")
        chains = tuple(chain_ids(diffs))
        for chain in chains:
            if chain not in self.store.layers:
                why = self.broken.get(chain, "not in the layer store")
                raise NotFound(f"{quote(str(where))}: layer {chain}: {why}")
        meta = (*self.image_dir, "imagedb", "metadata", "sha256", name)
        parent = last = None
        if self.root.exists(*meta, "parent"):
            p = self.path(*meta, "parent")
            parent = _digest(_text(self.root.read_small(*meta, "parent", limit=SMALL), p), p, "parent")
        if self.root.exists(*meta, "lastUpdated"):
            last = _text(self.root.read_small(*meta, "lastUpdated", limit=SMALL), self.path(*meta, "lastUpdated"))

        def field(key: str) -> str:
            value = doc.get(key, "")
            return value if isinstance(value, str) else ""

        return ImageRecord(
            id=f"sha256:{name}",
            config=config,
            diff_ids=diffs,
            layers=chains,
            os=field("os"),
            architecture=field("architecture"),
            variant=field("variant"),
            parent=parent,
            last_updated=last,
        )

    # -- references -------------------------------------------------------------

    def repositories(self) -> None:
        where = self.path(*self.image_dir, "repositories.json")
        if not self.root.exists(*self.image_dir, "repositories.json"):
            return
        doc = self.attempt(
            "tags",
            where,
            lambda: _json(self.root.read_small(*self.image_dir, "repositories.json", limit=REPOSITORIES_LIMIT), where),
        )
        if doc is None:
            return
        repos = doc.get("Repositories") if isinstance(doc, dict) else None
        if not isinstance(repos, dict):
            self.problem("tags", where, f"{quote(str(where))}: no Repositories object")
            return
        by_image: dict[str, list[str]] = {}
        for repo, refs in repos.items():
            if not isinstance(refs, dict):
                self.problem(f"repository {repo}", where, f"{quote(str(where))}: {quote(repo)} is not an object")
                continue
            for name, image_id in refs.items():
                ref = self.attempt(f"reference {name}", where, partial(_reference, repo, name, image_id, where))
                if ref is None:
                    continue
                if ref.image_id not in self.store.images:
                    self.problem(
                        f"reference {name}",
                        where,
                        f"{quote(str(where))}: {quote(name)} names image {ref.image_id}, which cannot be migrated",
                    )
                    continue
                self.store.references.append(ref)
                by_image.setdefault(ref.image_id, []).append(name)
        for image_id, names in by_image.items():
            image = self.store.images[image_id]
            self.store.images[image_id] = replace(image, references=tuple(names))


def _reference(repo: object, name: object, image_id: object, where: Path) -> Reference:
    if not isinstance(repo, str) or not isinstance(name, str) or not isinstance(image_id, str):
        raise InvalidArgument(f"{quote(str(where))}: a reference that is not a string")
    _digest(image_id, where, f"image id of {quote(name)}")
    if name.startswith(repo + "@"):
        digest = _digest(name[len(repo) + 1 :], where, f"digest of {quote(name)}")
        return Reference(name, repo, image_id, digest=digest)
    if name.startswith(repo + ":") and re.fullmatch(r"[\w][\w.-]{0,127}", name[len(repo) + 1 :]):
        return Reference(name, repo, image_id, tag=name[len(repo) + 1 :])
    raise InvalidArgument(f"{quote(str(where))}: {quote(name)} is neither {repo}:TAG nor {repo}@DIGEST")


def read_docker_root(root: Path) -> DockerStore:
    """Read the Docker data root ``root`` (dockerd must not be running on it); nothing in it is written.

    Only a root that cannot be opened at all raises (:class:`NotFound` and
    the like); everything else that is wrong ends up in ``problems``.
    """
    store = DockerStore(root=root, driver=DRIVER)
    with SafeDir.open(root) as d:
        _Reader(d, store).run()
    return store
