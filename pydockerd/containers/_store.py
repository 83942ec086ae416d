"""Docker's container records and where pydockerd keeps them: one directory per container.

Layout under the data root::

    containers/<id>/config.v2.json   the record (written to a temporary file, then renamed)
    containers/<id>/<id>-json.log    its output (see _jsonlog)
    containers/<id>/etc/             its /etc/hostname, /etc/hosts, /etc/resolv.conf
    containers/<id>/io/<n>/          FIFOs of its current task and execs

The containerd container record (spec, snapshot, runtime) lives in
containerd; this is what Docker adds: the config as given, the name, the
state and the times.  Records are read back when pydockerd starts; a
directory without a readable record is skipped (and logged), never fatal.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pycontainerd.errors import InvalidArgument, NotFound

from .._errors import Conflict
from ._names import generate_name
from ._state import State

__all__ = ["Record", "Store", "new_id"]

log = logging.getLogger("pydockerd")

SCHEMA = 1


def new_id() -> str:
    return secrets.token_hex(32)


@dataclass
class Record:
    """One Docker container."""

    id: str
    name: str  # "/name"
    created_ns: int
    image: str  # as the client named it
    image_id: str  # sha256:<config digest>
    image_record: str  # containerd image record name
    config: dict[str, Any]  # merged with the image's
    host_config: dict[str, Any]
    snapshotter: str
    state: State = field(default_factory=State)
    restart_count: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def short_id(self) -> str:
        return self.id[:12]

    @property
    def argv(self) -> list[str]:
        return [*(self.config.get("Entrypoint") or []), *(self.config.get("Cmd") or [])]

    def event_attributes(self, **extra: str) -> dict[str, str]:
        """What Docker puts in a container event's Actor.Attributes: labels, image, name."""
        attrs = {str(k): str(v) for k, v in (self.config.get("Labels") or {}).items()}
        attrs.update(image=self.image, name=self.name.lstrip("/"))
        attrs.update(extra)
        return attrs

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "id": self.id,
            "name": self.name,
            "created_ns": self.created_ns,
            "image": self.image,
            "image_id": self.image_id,
            "image_record": self.image_record,
            "config": self.config,
            "host_config": self.host_config,
            "snapshotter": self.snapshotter,
            "state": self.state.to_json(),
            "restart_count": self.restart_count,
            "warnings": self.warnings,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Record:
        if doc.get("schema") != SCHEMA:
            raise ValueError(f"unknown schema {doc.get('schema')!r}")
        return cls(
            id=str(doc["id"]),
            name=str(doc["name"]),
            created_ns=int(doc["created_ns"]),
            image=str(doc["image"]),
            image_id=str(doc["image_id"]),
            image_record=str(doc["image_record"]),
            config=dict(doc["config"]),
            host_config=dict(doc["host_config"]),
            snapshotter=str(doc["snapshotter"]),
            state=State.from_json(dict(doc["state"])),
            restart_count=int(doc.get("restart_count", 0)),
            warnings=[str(w) for w in doc.get("warnings", [])],
        )


class Store:
    """The records in memory, indexed by id and name, each saved atomically on change.

    Only the event loop's thread changes it; other threads (image removal's
    check) only read snapshots of it.
    """

    def __init__(self, root: Path) -> None:
        self.root = root / "containers"
        self.root.mkdir(parents=True, exist_ok=True, mode=0o710)
        self._by_id: dict[str, Record] = {}
        self._names: dict[str, str] = {}

    def dir(self, id: str) -> Path:
        return self.root / id

    def load(self) -> list[Record]:
        """Read every record on disk; unreadable ones are logged and left alone."""
        for d in sorted(self.root.iterdir()):
            path = d / "config.v2.json"
            try:
                record = Record.from_json(json.loads(path.read_bytes()))
                if record.id != d.name:
                    raise ValueError("its id is not its directory's name")
            except FileNotFoundError:
                shutil.rmtree(d, ignore_errors=True)  # a create that died before its record was written
                continue
            except (OSError, ValueError, KeyError, TypeError) as e:
                log.warning("container %s: unreadable record skipped: %s", d.name, e)
                continue
            self._by_id[record.id] = record
            self._names[record.name] = record.id
        return list(self._by_id.values())

    def save(self, record: Record) -> None:
        d = self.dir(record.id)
        d.mkdir(exist_ok=True, mode=0o710)
        tmp = d / f".config.v2.json.{secrets.token_hex(4)}"
        try:
            with open(tmp, "wb") as f:
                f.write(json.dumps(record.to_json(), separators=(",", ":")).encode())
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, d / "config.v2.json")
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise

    def reserve_name(self, name: str, id: str) -> None:
        """Claim ``name`` for ``id``: 409 with Docker's message when another container has it."""
        owner = self._names.get(name)
        if owner is not None and owner != id:
            raise Conflict(
                f'Conflict. The container name "{name}" is already in use by container "{owner}". '
                "You have to remove (or rename) that container to be able to reuse that name."
            )
        self._names[name] = id

    def release_name(self, name: str, id: str) -> None:
        if self._names.get(name) == id:
            del self._names[name]

    def generate_name(self) -> str:
        return generate_name(lambda n: n in self._names)

    def add(self, record: Record) -> None:
        self.reserve_name(record.name, record.id)
        self._by_id[record.id] = record
        self.save(record)

    def remove(self, record: Record) -> None:
        self._by_id.pop(record.id, None)
        self.release_name(record.name, record.id)
        self.remove_dir(record.id)

    def remove_dir(self, id: str) -> None:
        shutil.rmtree(self.dir(id), ignore_errors=True)

    def get(self, ref: str) -> Record:
        """By full id, name (with or without ``/``) or unique id prefix; 404 "No such container"."""
        if not ref:
            raise NotFound("No such container: ")
        record = self._by_id.get(ref)
        if record is not None:
            return record
        owner = self._names.get(ref if ref.startswith("/") else "/" + ref)
        if owner is not None:
            return self._by_id[owner]
        matches = [r for i, r in self._by_id.items() if i.startswith(ref)]
        if len(matches) > 1:
            raise InvalidArgument(f"multiple IDs found with provided prefix: {ref}")
        if not matches:
            raise NotFound(f"No such container: {ref}")
        return matches[0]

    def find(self, id: str) -> Record | None:
        return self._by_id.get(id)

    def __iter__(self) -> Iterator[Record]:
        return iter(list(self._by_id.values()))

    def __len__(self) -> int:
        return len(self._by_id)
