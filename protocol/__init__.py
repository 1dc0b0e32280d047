"""The Clipwire wire protocol, version 1: pure, with no I/O.

``codec`` turns bytes into frames and back within announced limits, ``frames``
turns frames into typed requests, ``events`` builds what the hub sends, and
``errors`` holds the error and close codes. ``SPEC.md`` beside this file is the
protocol in prose.
"""

from __future__ import annotations

from .codec import DEFAULT_LIMITS, Limits, decode, decode_any, encode
from .errors import ClipwireError, CloseCode, ErrorCode, FrameError, FrameTooLarge, RequestError
from .frames import PROTOCOL_VERSION, Reply, VideoCard, parse_request, parse_video_card

SUBPROTOCOL = "clipwire.v1"

__all__ = [
    "DEFAULT_LIMITS",
    "PROTOCOL_VERSION",
    "SUBPROTOCOL",
    "ClipwireError",
    "CloseCode",
    "ErrorCode",
    "FrameError",
    "FrameTooLarge",
    "Limits",
    "Reply",
    "RequestError",
    "VideoCard",
    "decode",
    "decode_any",
    "encode",
    "parse_request",
    "parse_video_card",
]
