"""Images over gRPC: containerd's Images service as a :class:`~pycontainerd.images.Store`."""

from __future__ import annotations

import builtins
from collections.abc import Sequence

from google.protobuf.field_mask_pb2 import FieldMask

from ..api.services.images.v1 import images_pb2 as pb
from ..api.services.images.v1 import images_pb2_grpc
from ..api.types import descriptor_pb2
from ..images import Descriptor, Image
from ._rpc import Connection, from_timestamp, to_timestamp

__all__ = ["ImageStore", "image_from_proto", "image_to_proto"]


def image_to_proto(image: Image) -> pb.Image:
    t = image.target
    msg = pb.Image(
        name=image.name,
        labels=dict(image.labels),
        target=descriptor_pb2.Descriptor(
            media_type=t.media_type, digest=t.digest, size=t.size, annotations=dict(t.annotations)
        ),
    )
    created, updated = to_timestamp(image.created_at), to_timestamp(image.updated_at)
    if created is not None:
        msg.created_at.CopyFrom(created)
    if updated is not None:
        msg.updated_at.CopyFrom(updated)
    return msg


def image_from_proto(m: pb.Image) -> Image:
    t = m.target
    return Image(
        name=m.name,
        target=Descriptor(media_type=t.media_type, digest=t.digest, size=t.size, annotations=dict(t.annotations)),
        labels=dict(m.labels),
        created_at=from_timestamp(m.created_at) if m.HasField("created_at") else None,
        updated_at=from_timestamp(m.updated_at) if m.HasField("updated_at") else None,
    )


class ImageStore:
    """The image records of one namespace of a remote daemon."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._stub = conn.stub(images_pb2_grpc.ImagesStub)

    def get(self, name: str) -> Image:
        """Raises NotFound."""
        return image_from_proto(self._conn.unary(self._stub.Get, pb.GetImageRequest(name=name)).image)

    def list(self, filters: Sequence[str] = ()) -> builtins.list[Image]:
        resp = self._conn.unary(self._stub.List, pb.ListImagesRequest(filters=list(filters)))
        return [image_from_proto(m) for m in resp.images]

    def create(self, image: Image) -> Image:
        """Raises AlreadyExists, InvalidArgument."""
        resp = self._conn.unary(self._stub.Create, pb.CreateImageRequest(image=image_to_proto(image)))
        return image_from_proto(resp.image)

    def update(self, image: Image, fieldpaths: Sequence[str] = ()) -> Image:
        """Only the ``fieldpaths`` given change (all fields when none); raises NotFound."""
        req = pb.UpdateImageRequest(image=image_to_proto(image))
        if fieldpaths:
            req.update_mask.CopyFrom(FieldMask(paths=list(fieldpaths)))
        return image_from_proto(self._conn.unary(self._stub.Update, req).image)

    def delete(self, name: str, *, sync: bool = False) -> None:
        """Raises NotFound; ``sync`` waits for the garbage collection the delete triggers."""
        self._conn.unary(self._stub.Delete, pb.DeleteImageRequest(name=name, sync=sync))
