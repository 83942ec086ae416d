"""Images over gRPC: containerd's Images service as a :class:`~pycontainerd.images.Store`."""

from __future__ import annotations

import builtins
from collections.abc import Sequence

from google.protobuf.field_mask_pb2 import FieldMask

from ..api.convert import image_from_pb, image_to_pb
from ..api.services.images.v1 import images_pb2 as pb
from ..api.services.images.v1 import images_pb2_grpc
from ..images import Image
from ._rpc import Connection

__all__ = ["ImageStore"]


class ImageStore:
    """The image records of one namespace of a remote daemon."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._stub = conn.stub(images_pb2_grpc.ImagesStub)

    def get(self, name: str) -> Image:
        """Raises NotFound."""
        return image_from_pb(self._conn.unary(self._stub.Get, pb.GetImageRequest(name=name)).image)

    def list(self, filters: Sequence[str] = ()) -> builtins.list[Image]:
        resp = self._conn.unary(self._stub.List, pb.ListImagesRequest(filters=list(filters)))
        return [image_from_pb(m) for m in resp.images]

    def create(self, image: Image) -> Image:
        """Raises AlreadyExists, InvalidArgument."""
        resp = self._conn.unary(self._stub.Create, pb.CreateImageRequest(image=image_to_pb(image)))
        return image_from_pb(resp.image)

    def update(self, image: Image, fieldpaths: Sequence[str] = ()) -> Image:
        """Only the ``fieldpaths`` given change (all fields when none); raises NotFound."""
        req = pb.UpdateImageRequest(image=image_to_pb(image))
        if fieldpaths:
            req.update_mask.CopyFrom(FieldMask(paths=list(fieldpaths)))
        return image_from_pb(self._conn.unary(self._stub.Update, req).image)

    def delete(self, name: str, *, sync: bool = False) -> None:
        """Raises NotFound; ``sync`` waits for the garbage collection the delete triggers."""
        self._conn.unary(self._stub.Delete, pb.DeleteImageRequest(name=name, sync=sync))
