"""The exceptions of the Clipwire client SDK: one tree, rooted in the protocol's.

::

    ClipwireError                    (clipwire.protocol: root of everything Clipwire raises)
    └── ClientError                  root of what this SDK raises
        ├── RequestFailed            the hub answered {"t": "error", code, message}
        │   ├── BadRequest           code "bad_request"
        │   ├── Unauthorized         code "unauthorized" (also: hello refused the token)
        │   ├── Forbidden            code "forbidden"
        │   ├── NotFound             code "not_found"
        │   ├── TooLarge             code "too_large" (also: a frame over max_frame_bytes,
        │   │                        refused before it is sent)
        │   ├── RateLimited          code "rate_limited"
        │   ├── Conflict             code "conflict"
        │   ├── Unavailable          code "unavailable": retry (same cmid for a send)
        │   └── HubInternalError     code "internal"
        ├── RequestTimeout           no answer in time (also a TimeoutError)
        ├── ConnectionLost           the connection dropped under a request that is not
        │                            safe to repeat: it may or may not have been applied
        ├── ConnectFailed            the first connection could not be opened
        └── ClientClosed             the client is closed, by you or for good by the hub

Every :class:`RequestFailed` carries the wire ``code`` (an :class:`ErrorCode` when
the hub sent a known one, else the string it sent), the hub's ``message`` and the
request type ``t``, so ``except Forbidden`` and ``except RequestFailed as e: e.code``
both work.
"""

from __future__ import annotations

from clipwire.protocol import ClipwireError, ErrorCode

__all__ = [
    "BadRequest",
    "ClientClosed",
    "ClientError",
    "Conflict",
    "ConnectFailed",
    "ConnectionLost",
    "Forbidden",
    "HubInternalError",
    "NotFound",
    "RateLimited",
    "RequestFailed",
    "RequestTimeout",
    "TooLarge",
    "Unauthorized",
    "Unavailable",
]


class ClientError(ClipwireError):
    """Root of every error the client SDK raises on purpose."""


class RequestFailed(ClientError):
    """The hub answered a request with an ``error`` frame."""

    #: The code this class stands for; ``RequestFailed`` itself takes any code.
    wire_code: ErrorCode | None = None

    def __init__(self, code: ErrorCode | str, message: str, t: str | None = None) -> None:
        super().__init__(f"{t + ': ' if t else ''}{code}: {message}")
        self.code = code
        self.message = message
        self.t = t

    @staticmethod
    def from_wire(code: object, message: object, t: str | None = None) -> RequestFailed:
        """The most specific exception for an ``error`` frame's ``code``."""
        text = message if isinstance(message, str) else ""
        raw = code if isinstance(code, str) else "internal"
        try:
            known = ErrorCode(raw)
        except ValueError:  # a newer hub's code: keep it as it came
            return RequestFailed(raw, text, t)
        return _BY_CODE.get(known, RequestFailed)(known, text, t)


class BadRequest(RequestFailed):
    wire_code = ErrorCode.BAD_REQUEST


class Unauthorized(RequestFailed):
    wire_code = ErrorCode.UNAUTHORIZED


class Forbidden(RequestFailed):
    wire_code = ErrorCode.FORBIDDEN


class NotFound(RequestFailed):
    wire_code = ErrorCode.NOT_FOUND


class TooLarge(RequestFailed):
    wire_code = ErrorCode.TOO_LARGE


class RateLimited(RequestFailed):
    wire_code = ErrorCode.RATE_LIMITED


class Conflict(RequestFailed):
    wire_code = ErrorCode.CONFLICT


class Unavailable(RequestFailed):
    wire_code = ErrorCode.UNAVAILABLE


class HubInternalError(RequestFailed):
    wire_code = ErrorCode.INTERNAL


_BY_CODE: dict[ErrorCode, type[RequestFailed]] = {
    cls.wire_code: cls
    for cls in (BadRequest, Unauthorized, Forbidden, NotFound, TooLarge, RateLimited, Conflict,
                Unavailable, HubInternalError)
    if cls.wire_code is not None
}


class RequestTimeout(ClientError, TimeoutError):
    """No answer within the request's timeout (including time spent reconnecting).

    A ``send`` or ``share`` that timed out may still be stored: repeat it with the
    same ``cmid`` and the hub answers with the first result instead of storing it twice.
    """

    def __init__(self, t: str, timeout: float) -> None:
        super().__init__(f"{t}: no answer within {timeout:g} s")
        self.t = t
        self.timeout = timeout


class ConnectionLost(ClientError):
    """The connection dropped while a request that is unsafe to repeat was in flight.

    The hub may or may not have applied it (``group.create``, ``group.leave``,
    ``refresh`` and unknown request types are not repeated automatically).
    """

    def __init__(self, t: str, code: int, reason: str) -> None:
        super().__init__(f"{t}: connection lost ({code}{' ' + reason if reason else ''}) "
                         "before the answer; it may or may not have been applied")
        self.t = t
        self.code = code
        self.reason = reason


class ConnectFailed(ClientError):
    """The first connection (or hello) failed for a reason other than the hub's answer."""


class ClientClosed(ClientError):
    """The client is closed: by :meth:`Client.aclose`, or for good after close ``code``.

    ``code`` is the WebSocket close code that ended it (1000 when you closed it).
    """

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"client closed ({code}{': ' + reason if reason else ''})")
        self.code = code
        self.reason = reason
