"""The Images gRPC service: containerd.services.images.v1.Images over the metadata store.

A synchronous delete (``sync``) runs a full garbage collection before the
call returns, so that ``ctr images rm --sync`` leaves no unreferenced
content behind when it exits.
"""

from __future__ import annotations

import grpc
from google.protobuf.empty_pb2 import Empty

from ..api.convert import image_from_pb, image_to_pb
from ..api.services.images.v1 import images_pb2 as pb
from ..api.services.images.v1 import images_pb2_grpc as pb_grpc
from ..errors import InvalidArgument
from ..metadata import DB, ImageStore
from .rpc import field_paths, guarded, namespace_of, offload

__all__ = ["ImagesService"]


class ImagesService(pb_grpc.ImagesServicer):
    """Adapter from the Images API to ``DB.images(namespace)``."""

    def __init__(self, db: DB) -> None:
        self._db = db
        # The unfiltered list of each namespace, as last sent, with the generation it was made at:
        # `ctr images ls` and Docker list every image often, and records change rarely.
        self._lists: dict[str, tuple[int, pb.ListImagesResponse]] = {}

    def register(self, server: grpc.aio.Server) -> None:
        pb_grpc.add_ImagesServicer_to_server(guarded(self), server)

    def _store(self, context: grpc.aio.ServicerContext) -> ImageStore:
        return self._db.images(namespace_of(context))

    async def Get(self, request: pb.GetImageRequest, context: grpc.aio.ServicerContext) -> pb.GetImageResponse:
        store = self._store(context)
        return pb.GetImageResponse(image=image_to_pb(store.get(request.name)))  # a point lookup: no thread hop

    async def List(self, request: pb.ListImagesRequest, context: grpc.aio.ServicerContext) -> pb.ListImagesResponse:
        store = self._store(context)
        filters = list(request.filters)
        generation = self._db.generation("images", store.namespace)
        cached = self._lists.get(store.namespace)
        if not filters and cached is not None and cached[0] == generation:
            return cached[1]

        def convert() -> pb.ListImagesResponse:
            return pb.ListImagesResponse(images=[image_to_pb(i) for i in store.list(filters)])

        resp = await offload(convert)
        if not filters:
            self._lists[store.namespace] = (generation, resp)
        return resp

    async def Create(self, request: pb.CreateImageRequest, context: grpc.aio.ServicerContext) -> pb.CreateImageResponse:
        if not request.image.name:
            raise InvalidArgument("Image.Name required")
        store = self._store(context)
        created = await offload(store.create, image_from_pb(request.image))
        return pb.CreateImageResponse(image=image_to_pb(created))

    async def Update(self, request: pb.UpdateImageRequest, context: grpc.aio.ServicerContext) -> pb.UpdateImageResponse:
        if not request.image.name:
            raise InvalidArgument("Image.Name required")
        store = self._store(context)
        updated = await offload(store.update, image_from_pb(request.image), field_paths(request.update_mask))
        return pb.UpdateImageResponse(image=image_to_pb(updated))

    async def Delete(self, request: pb.DeleteImageRequest, context: grpc.aio.ServicerContext) -> Empty:
        store = self._store(context)
        await offload(store.delete, request.name)
        if request.sync:
            await offload(self._db.collect_garbage)
        return Empty()
