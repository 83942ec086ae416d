"""``google.protobuf.Any`` as containerd writes it: the type URL is the bare message name.

containerd marks protobuf messages with their full name alone
(``containerd.types.transfer.OCIRegistry``), where protobuf's own ``Pack``
would prefix ``type.googleapis.com/``.  We send containerd's form and accept
both, so either kind of peer understands us.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from google.protobuf import any_pb2
from google.protobuf.message import DecodeError, Message

from ..errors import InvalidArgument

__all__ = ["is_type", "name_of", "pack", "unpack", "unpack_one_of"]

M = TypeVar("M", bound=Message)


def pack(msg: Message) -> any_pb2.Any:
    return any_pb2.Any(type_url=msg.DESCRIPTOR.full_name, value=msg.SerializeToString())


def name_of(a: any_pb2.Any) -> str:
    """The message name an Any carries, with any URL prefix removed."""
    return a.type_url.rsplit("/", 1)[-1]


def is_type(a: any_pb2.Any, cls: type[Message]) -> bool:
    return name_of(a) == cls.DESCRIPTOR.full_name


def unpack(a: any_pb2.Any, cls: type[M]) -> M:
    """The message in ``a``; InvalidArgument when it holds another type or bad bytes."""
    if not is_type(a, cls):
        raise InvalidArgument(f"expected {cls.DESCRIPTOR.full_name}, got {name_of(a) or 'an empty Any'}")
    msg = cls()
    try:
        msg.ParseFromString(a.value)
    except DecodeError as e:
        raise InvalidArgument(f"malformed {cls.DESCRIPTOR.full_name}: {e}") from None
    return msg


def unpack_one_of(a: any_pb2.Any, classes: Iterable[type[Message]]) -> Message:
    """The message in ``a`` if it is one of ``classes``."""
    for cls in classes:
        if is_type(a, cls):
            return unpack(a, cls)
    raise InvalidArgument(f"unsupported type {name_of(a) or '(empty)'}")
