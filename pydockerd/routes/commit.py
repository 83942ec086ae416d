"""``POST /commit``: a container's changes as a new image layer (``docker commit``).

The container is paused for the commit when it runs and ``pause`` is not
false (Docker's default), so the layer is not read while files change; the
new image is dangling until ``repo``/``tag`` name it.
"""

from __future__ import annotations

import contextlib
from functools import partial
from typing import Any

from pycontainerd.errors import ContainerdError, InvalidArgument, NotFound

from .._backend import Backend
from .._commit import ImageBase, ImageCommitter
from .._containercommit import commit_config, parse_changes
from .._http import Request, Response
from .._refs import familiar, parse_docker, with_tag
from .._router import Router
from ..containers import ContainerService
from ..containers._store import Record

__all__ = ["register"]


def register(r: Router, b: Backend) -> None:
    r.add("POST", "/commit", partial(commit, b))


def _service(b: Backend) -> ContainerService:
    if b.containers is None:
        raise NotFound("containers are not served by this daemon")
    return b.containers


def _commit(
    b: Backend, record: Record, config: dict[str, Any], name: str, *, comment: str, author: str
) -> tuple[str, str]:
    """The new image's ID and the name it was given ("" when none); a worker thread."""
    view, _, _ = b.images.resolve(record.image_id)
    committer = ImageCommitter(b.client, record.snapshotter)
    argv = record.config.get("Cmd") or []
    committed = committer.commit_snapshot(
        record.id,
        ImageBase.of(view),
        config=config,
        created_by=" ".join(str(a) for a in argv),
        comment=comment,
        author=author,
    )
    if not name:
        return committed.id, ""
    ref = parse_docker(name)
    b.images.tag(committed.id, ref.name, ref.tag or "latest")
    return committed.id, familiar(ref)


async def commit(b: Backend, req: Request) -> Response:
    svc = _service(b)
    ref = req.arg("container")
    record = svc.get(ref)
    repo, tag = req.arg("repo"), req.arg("tag")
    if tag and not repo:
        raise InvalidArgument("tag is specified without a repository name")
    name = ""
    if repo:
        ref_obj = parse_docker(with_tag(repo, tag))
        if ref_obj.digest:
            raise InvalidArgument("refusing to create a tag with a digest reference")
        name = str(ref_obj)
    changes = parse_changes(req.query.get("changes", []))
    config = commit_config(record.config, req.json(), changes)
    pause = req.arg("pause", "1").strip().lower() not in ("0", "false", "no")
    paused = False
    if pause and record.state.status == "running":
        await svc.pause(record.id)
        paused = True
    try:
        image_id, named = await b.call(
            partial(_commit, b, record, config, name, comment=req.arg("comment"), author=req.arg("author"))
        )
    finally:
        if paused and record.state.status == "paused":
            with contextlib.suppress(ContainerdError):
                await svc.unpause(record.id)
    svc.publish(record, "commit", comment=req.arg("comment"), imageID=image_id, imageRef=named)
    return Response.json({"Id": image_id}, status=201)
