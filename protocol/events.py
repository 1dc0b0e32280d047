"""Builders for the frames the hub sends: replies and events.

They return plain dicts for :func:`codec.encode`; keeping the key names here
means the hub, the clients and the tests agree on one spelling.
"""

from __future__ import annotations

from typing import Any

from .errors import ErrorCode

__all__ = ["error", "gap", "message", "ok"]


def ok(request_id: int | None, **result: Any) -> dict[str, Any]:
    return {"t": "ok", "id": request_id, **result}


def error(request_id: int | None, code: ErrorCode, message: str,
          retry_after_ms: int | None = None) -> dict[str, Any]:
    frame: dict[str, Any] = {"t": "error", "code": str(code), "message": message}
    if request_id is not None:
        frame["id"] = request_id
    if retry_after_ms is not None:
        frame["retry_after_ms"] = retry_after_ms
    return frame


def message(
    conv: str,
    seq: int,
    sender: str,
    ts: int,
    kind: str,
    cmid: str,
    *,
    text: str | None = None,
    video: dict[str, Any] | None = None,
    reply: dict[str, Any] | None = None,
    unsent: bool = False,
    hidden: bool = False,
) -> dict[str, Any]:
    """A stored message as it travels: the ``msg`` event and each ``history`` entry."""
    out: dict[str, Any] = {
        "conv": conv, "seq": seq, "from": sender, "ts": ts, "kind": kind, "cmid": cmid,
    }
    if unsent:
        out["unsent"] = True
        return out
    if hidden:  # from a user the viewer blocks: the place in the order, not the body
        out["hidden"] = True
        return out
    if text is not None:
        out["text"] = text
    if video is not None:
        out["video"] = video
    if reply is not None:
        out["reply"] = reply
    return out


def gap(conv: str, from_seq: int, to_seq: int) -> dict[str, Any]:
    return {"t": "gap", "conv": conv, "from_seq": from_seq, "to_seq": to_seq}
