"""Property-based tests of the codec and of request validation (issue 8, point 7).

- Every valid request of every type survives encode -> decode -> parse_request and
  comes out as exactly the typed request it describes.
- Whatever else arrives (arbitrary bytes, arbitrary msgpack values, frames of a known
  type with random fields, valid frames mutated field by field or byte by byte, under
  the default limits or random ones), decoding and validation end in a FrameError
  (close 4003, or 1009 exactly when the frame is over the byte limit) or a
  RequestError with an ErrorCode, never in any other exception from deep inside.
- What ``decode`` lets through respects the limits it was given.
"""

from __future__ import annotations

from typing import Any

import msgpack  # type: ignore[import-untyped]
import pytest
from fuzzframes import (
    REQUEST_TYPES,
    check_typed,
    msgpack_values,
    pack,
    random_field_frames,
    valid_requests,
)
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from clipwire.protocol import (
    DEFAULT_LIMITS,
    ErrorCode,
    FrameError,
    FrameTooLarge,
    Limits,
    decode,
    decode_any,
    encode,
    events,
    parse_request,
)
from clipwire.protocol.frames import MAX_UINT

FAST = settings(max_examples=300, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

limits_strategy = st.builds(
    Limits,
    max_frame_bytes=st.integers(1, 1 << 17), max_depth=st.integers(1, 12),
    max_str_len=st.integers(0, 1 << 15), max_array_len=st.integers(0, 2000),
    max_map_len=st.integers(0, 2000), max_id_chars=st.integers(1, 200),
    max_text_chars=st.integers(1, 5000), max_title_chars=st.integers(1, 200),
    max_url_chars=st.integers(1, 3000), max_emoji_chars=st.integers(1, 40),
    max_share_targets=st.integers(1, 200), max_history_limit=st.integers(1, 200),
)


def within(value: Any, limits: Limits, depth: int = 1) -> None:
    """Assert that a decoded value respects ``limits`` (depth, keys, no bin or ext)."""
    if isinstance(value, dict):
        assert depth <= limits.max_depth and len(value) <= limits.max_map_len
        for key, item in value.items():
            assert isinstance(key, str)
            within(item, limits, depth + 1)
    elif isinstance(value, list):
        assert depth <= limits.max_depth and len(value) <= limits.max_array_len
        for item in value:
            within(item, limits, depth + 1)
    else:
        assert not isinstance(value, bytes | msgpack.ExtType)
        if isinstance(value, str):
            assert len(value.encode()) <= limits.max_str_len


# -- round trips ------------------------------------------------------------------------


@FAST
@given(valid_requests())
def test_every_valid_request_round_trips_into_its_typed_request(example_: tuple[dict[str, Any], Any]) -> None:
    frame, expected = example_
    data = encode(frame)
    assert len(data) <= DEFAULT_LIMITS.max_frame_bytes, "the strategy must stay within the frame limit"
    decoded = decode(data)
    assert decoded == frame
    assert parse_request(decoded) == expected


@pytest.mark.parametrize("t", REQUEST_TYPES)
@settings(max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_request_type_round_trips(t: str, data: st.DataObject) -> None:
    """Each type the protocol knows, on its own (a new type needs a strategy in fuzzframes)."""
    frame, request = data.draw(valid_requests((t,)))
    assert frame["t"] == t
    assert parse_request(decode(encode(frame))) == request


hub_frames = st.one_of(
    st.builds(events.gap, st.text(min_size=1, max_size=20), st.integers(1, MAX_UINT),
              st.integers(1, MAX_UINT)),
    st.builds(lambda conv, seq, sender, ts, cmid, text: {"t": "msg", **events.message(
        conv, seq, sender, ts, "text", cmid, text=text)},
        st.text(min_size=1, max_size=20), st.integers(1, MAX_UINT), st.text(min_size=1, max_size=20),
        st.integers(0, MAX_UINT), st.text(min_size=1, max_size=20), st.text(max_size=200)),
    st.builds(lambda rid, message: events.error(rid, ErrorCode.BAD_REQUEST, message),
              st.one_of(st.none(), st.integers(0, MAX_UINT)), st.text(max_size=100)),
)


@FAST
@given(hub_frames)
def test_the_hubs_frames_round_trip(frame: dict[str, Any]) -> None:
    assert decode(encode(frame)) == frame


@FAST
@given(msgpack_values)
def test_values_within_the_limits_round_trip_and_the_rest_is_refused(value: Any) -> None:
    try:
        data = pack(value)
    except (OverflowError, ValueError, TypeError):
        return  # not representable in msgpack at all
    try:
        decoded = decode_any(data)
    except FrameError:
        return
    within(decoded, DEFAULT_LIMITS)
    # msgpack turns nothing into something else here (no tuples, no bin): the same bytes
    # again. (Not ``decoded == value``: a NaN inside a list is equal to itself, being the
    # same object, but not to the NaN of the other list.)
    assert pack(decoded) == data


# -- only typed errors --------------------------------------------------------------------


@FAST
@example(b"")
@example(b"\xc1")  # the one reserved msgpack byte
@example(b"\x91" * 100_000 + b"\xc0")  # deeper than msgpack's own stack
@example(b"\xdf\xff\xff\xff\xff")  # a map announcing 2^32-1 entries
@example(b"\x81\xa1t\xa4ping\xc0")  # trailing bytes
@example(b"\x81\xa1t\xc4\x00")  # t is a bin
@given(st.binary(max_size=300))
def test_arbitrary_bytes_end_in_a_typed_error(data: bytes) -> None:
    event(check_typed(data))


@FAST
@given(msgpack_values)
def test_arbitrary_msgpack_values_end_in_a_typed_error(value: Any) -> None:
    try:
        data = pack(value)
    except (OverflowError, ValueError, TypeError):
        return
    event(check_typed(data))


@FAST
@given(random_field_frames)
def test_known_types_with_random_fields_end_in_a_typed_error(frame: dict[str, Any]) -> None:
    try:
        data = pack(frame)
    except (OverflowError, ValueError, TypeError):
        return
    event(check_typed(data))


@FAST
@given(valid_requests(), st.data())
def test_valid_frames_with_one_field_broken_end_in_a_typed_error(
    example_: tuple[dict[str, Any], Any], data: st.DataObject
) -> None:
    frame, _ = example_
    broken = dict(frame)
    name = data.draw(st.sampled_from(sorted(broken)))
    how = data.draw(st.sampled_from(["delete", "nil", "replace", "nest"]))
    if how == "delete":
        del broken[name]
    elif how == "nil":
        broken[name] = None
    elif how == "replace":
        broken[name] = data.draw(msgpack_values)
    else:  # the value, one level down inside a list or a map
        broken[name] = data.draw(st.sampled_from([[broken[name]], {"x": broken[name]}]))
    if not _packable(broken):
        return
    if not isinstance(broken.get("t"), str):
        with pytest.raises(FrameError):
            decode(pack(broken))
        return
    event(check_typed(pack(broken)))


@FAST
@given(valid_requests(), st.lists(st.tuples(st.sampled_from(["flip", "cut", "insert", "delete", "dup"]),
                                            st.integers(0, 1 << 16), st.binary(min_size=1, max_size=6)),
                                  min_size=1, max_size=4))
def test_valid_frames_mutated_byte_by_byte_end_in_a_typed_error(
    example_: tuple[dict[str, Any], Any], mutations: list[tuple[str, int, bytes]]
) -> None:
    buf = bytearray(encode(example_[0]))
    for op, at, junk in mutations:
        i = at % (len(buf) + 1)
        if op == "flip" and buf:
            buf[min(i, len(buf) - 1)] ^= junk[0] or 1
        elif op == "cut":
            del buf[i:]
        elif op == "insert":
            buf[i:i] = junk
        elif op == "delete":
            del buf[i:i + len(junk)]
        else:
            buf[i:i] = buf[i:i + 1 + junk[0] % 16]
    event(check_typed(bytes(buf)))


@FAST
@given(limits_strategy, st.one_of(valid_requests().map(lambda e: encode(e[0])), st.binary(max_size=400),
                                  msgpack_values.map(lambda v: _pack_or_empty(v))))
def test_any_limits_still_give_typed_errors_and_bounded_frames(limits: Limits, data: bytes) -> None:
    outcome = check_typed(data, limits)
    event(outcome)
    if outcome != "frame":
        within(decode(data, limits), limits)


@FAST
@given(st.integers(0, 50), st.integers(1, 12))
def test_nesting_is_refused_beyond_max_depth_without_recursion(depth: int, max_depth: int) -> None:
    limits = Limits(max_depth=max_depth)
    # {"t": "ping", "x": [[...[nil]...]]}: the map is level 1, each array one more.
    data = b"\x82\xa1t\xa4ping\xa1x" + b"\x91" * depth + b"\xc0"
    if 1 + depth <= max_depth:
        assert decode(data, limits)["t"] == "ping"
    else:
        with pytest.raises(FrameError) as caught:
            decode(data, limits)
        assert caught.value.close_code == 4003


@FAST
@given(st.binary(min_size=1, max_size=600), st.integers(0, 599))
def test_the_byte_limit_is_checked_first_and_closes_with_1009(data: bytes, limit: int) -> None:
    limits = Limits(max_frame_bytes=limit)
    if len(data) > limit:
        with pytest.raises(FrameTooLarge) as caught:
            decode(data, limits)
        assert caught.value.close_code == 1009
    else:
        check_typed(data, limits)


def _packable(value: Any) -> bool:
    try:
        pack(value)
    except (OverflowError, ValueError, TypeError):
        return False
    return True


def _pack_or_empty(value: Any) -> bytes:
    try:
        return pack(value)
    except (OverflowError, ValueError, TypeError):
        return b""
