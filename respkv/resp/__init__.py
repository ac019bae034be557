"""RESP wire format, no IO: request parser, reply encoders, reply values, error replies."""

from respkv.resp.encoder import encode, encode_into, encode_many, format_double
from respkv.resp.errors import ProtocolError
from respkv.resp.parser import RequestParser

__all__ = [
    "ProtocolError",
    "RequestParser",
    "encode",
    "encode_into",
    "encode_many",
    "format_double",
]
