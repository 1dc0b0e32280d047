"""Error codes, close codes and the exception tree of the Clipwire protocol.

Every problem the protocol layer detects is raised as one of these, carrying
the wire code it maps to, so the hub never has to guess how to answer::

    ClipwireError
    ├── FrameError          the frame itself is unreadable: close the connection
    │   └── FrameTooLarge   over the byte limit: close with 1009
    └── RequestError        a readable request that cannot be served: answer
                            ``{"t": "error", "code": ..., "message": ...}``
"""

from __future__ import annotations

from enum import IntEnum, StrEnum

__all__ = [
    "ClipwireError",
    "CloseCode",
    "ErrorCode",
    "FrameError",
    "FrameTooLarge",
    "RequestError",
]


class ErrorCode(StrEnum):
    """The ``code`` of an ``error`` reply."""

    BAD_REQUEST = "bad_request"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    TOO_LARGE = "too_large"
    RATE_LIMITED = "rate_limited"
    CONFLICT = "conflict"
    UNAVAILABLE = "unavailable"
    INTERNAL = "internal"


class CloseCode(IntEnum):
    """WebSocket close codes the hub uses, and what a client should do next."""

    NORMAL = 1000  # the peer is done; reconnect only if you want to
    GOING_AWAY = 1001  # hub shutting down; reconnect with backoff
    INTERNAL = 1011  # hub bug; reconnect with backoff
    TOO_BIG = 1009  # frame over max_frame_bytes; fix the client, do not resend it
    UNAUTHORIZED = 4001  # token missing, invalid or expired; get a new token first
    HELLO_TIMEOUT = 4002  # no hello in time; reconnect
    PROTOCOL_ERROR = 4003  # malformed frame; a client bug, reconnect with backoff
    RATE_LIMITED = 4008  # kept going past rate limits; reconnect after a pause
    SLOW_CONSUMER = 4009  # did not read fast enough; reconnect and resume
    DRAINING = 4010  # hub draining; reconnect now, maybe to another node


class ClipwireError(Exception):
    """Root of every error the Clipwire protocol and hub raise on purpose."""


class FrameError(ClipwireError):
    """The frame cannot be read as a Clipwire frame; the connection is closed."""

    close_code: CloseCode = CloseCode.PROTOCOL_ERROR

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class FrameTooLarge(FrameError):
    """The frame is bigger than the announced ``max_frame_bytes``."""

    close_code = CloseCode.TOO_BIG


class RequestError(ClipwireError):
    """A well-formed frame whose request is refused; answered, not closed."""

    def __init__(self, code: ErrorCode, message: str, *, retry_after_ms: int | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.retry_after_ms = retry_after_ms  # with rate_limited: when to try again

    @classmethod
    def bad(cls, message: str) -> RequestError:
        return cls(ErrorCode.BAD_REQUEST, message)
