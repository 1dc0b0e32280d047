"""Encoding and decoding of frames: the only module that imports msgpack.

A frame is one binary WebSocket message holding exactly one msgpack map with
string keys and a string ``t``. Decoding enforces the announced limits before
anything else looks at the data, so a hostile frame costs at most one bounded
parse.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import msgpack  # type: ignore[import-untyped]

from .errors import FrameError, FrameTooLarge

__all__ = ["Limits", "decode", "decode_any", "encode"]


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on what one frame may hold; announced to clients in ``welcome``."""

    max_frame_bytes: int = 64 * 1024
    max_depth: int = 8
    max_str_len: int = 16 * 1024
    max_bin_len: int = 0
    max_array_len: int = 1024
    max_map_len: int = 1024
    max_id_chars: int = 128
    max_text_chars: int = 4000
    max_title_chars: int = 100
    max_url_chars: int = 2048
    max_emoji_chars: int = 32
    max_share_targets: int = 100
    max_history_limit: int = 100
    max_group_members: int = 1000

    def to_wire(self) -> dict[str, int]:
        return asdict(self)


DEFAULT_LIMITS = Limits()

_packer = msgpack.Packer(use_bin_type=True, autoreset=True)


def encode(frame: dict[str, Any]) -> bytes:
    """Encode one frame. Called once per event however many receive it."""
    data: bytes = _packer.pack(frame)
    return data


def decode_any(data: bytes, limits: Limits = DEFAULT_LIMITS) -> Any:
    """Decode one msgpack value within ``limits``; raise :class:`FrameError`."""
    if len(data) > limits.max_frame_bytes:
        raise FrameTooLarge(f"frame of {len(data)} bytes exceeds {limits.max_frame_bytes}")
    try:
        value = msgpack.unpackb(
            data,
            raw=False,
            strict_map_key=True,
            max_str_len=limits.max_str_len,
            max_bin_len=limits.max_bin_len,
            max_array_len=limits.max_array_len,
            max_map_len=limits.max_map_len,
            max_ext_len=0,
        )
    except msgpack.ExtraData:
        raise FrameError("trailing bytes after the msgpack value") from None
    except msgpack.StackError:
        raise FrameError(f"nesting deeper than {limits.max_depth}") from None
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        # ValueError covers truncated data, invalid UTF-8, limits and bad keys.
        raise FrameError(f"not a valid msgpack value ({_short(exc)})") from None
    _check_value(value, limits)
    return value


def decode(data: bytes, limits: Limits = DEFAULT_LIMITS) -> dict[str, Any]:
    """Decode one frame: a map with a string ``t``."""
    value = decode_any(data, limits)
    if not isinstance(value, dict):
        raise FrameError(f"frame must be a msgpack map, not {_kind(value)}")
    if not isinstance(value.get("t"), str):
        raise FrameError("frame must carry a string 't'")
    return value


def _check_value(value: Any, limits: Limits) -> None:
    """Iterative walk: a deep frame must not cost a deep recursion.

    Refuses nesting deeper than ``max_depth``, non-string map keys, ``ext``
    values, and ``bin`` values when ``max_bin_len`` is 0: msgpack's length
    limits alone let an empty ``bin`` (``b""``) or ``ext`` through.
    """
    max_depth = limits.max_depth
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            if depth > max_depth:
                raise FrameError(f"nesting deeper than {max_depth}")
            if not all(isinstance(key, str) for key in item):
                raise FrameError("map keys must be strings")
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            if depth > max_depth:
                raise FrameError(f"nesting deeper than {max_depth}")
            stack.extend((v, depth + 1) for v in item)
        elif isinstance(item, msgpack.ExtType) or (
            isinstance(item, bytes) and limits.max_bin_len == 0
        ):
            raise FrameError("bin and ext values are not allowed")


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if value is None:
        return "nil"
    return f"a {type(value).__name__}"


def _short(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text[:80]
