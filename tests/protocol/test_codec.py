"""Pure tests of ``clipwire.protocol.codec``: bytes to frames and back, within limits.

PROTOCOL.md section 1: every frame is one msgpack map with string keys and a
string ``t``; anything else closes with 4003, and a frame over the size limit
closes with 1009.
"""

from __future__ import annotations

from typing import Any

import msgpack
import pytest

from clipwire.protocol import (
    DEFAULT_LIMITS,
    CloseCode,
    FrameError,
    FrameTooLarge,
    Limits,
    decode,
    decode_any,
    encode,
)


def pack(value: Any) -> bytes:
    """Pack with msgpack directly, bypassing ``encode``, to build hostile input."""
    data: bytes = msgpack.packb(value, use_bin_type=True)
    return data


def nested_arrays(levels: int) -> bytes:
    """``levels`` arrays, each holding the next, the innermost holding nil."""
    return b"\x91" * levels + b"\xc0"


def frame_nested(levels: int) -> bytes:
    """A frame ``{"t": "x", "v": [[...]]}`` whose containers number ``levels``."""
    assert levels >= 1
    # fixmap of 2: "t" -> "x", "v" -> (levels - 1) nested arrays.
    return b"\x82\xa1t\xa1x\xa1v" + nested_arrays(levels - 1)


def expect_frame_error(data: bytes, limits: Limits = DEFAULT_LIMITS) -> FrameError:
    with pytest.raises(FrameError) as info:
        decode(data, limits)
    assert info.value.close_code == CloseCode.PROTOCOL_ERROR == 4003
    assert not isinstance(info.value, FrameTooLarge)
    assert info.value.reason
    assert str(info.value) == info.value.reason
    return info.value


# --------------------------------------------------------------------------- round trips

ROUND_TRIP_FRAMES: list[dict[str, Any]] = [
    {"t": "ping"},
    {"t": "ping", "id": 0},
    {"t": "send", "id": 1, "conv": "c1", "cmid": "m-1", "text": "hello"},
    {"t": "send", "id": 2**63 - 1, "to": "bob", "cmid": "x", "text": "héllo wörld ✓ 🎬"},
    {"t": "ok", "id": 3, "conv": "c1", "seq": 1, "ts": 1_700_000_000_000},
    {"t": "error", "id": 4, "code": "bad_request", "message": "missing 'conv'"},
    {"t": "msg", "conv": "c", "seq": 1, "from": "u", "ts": 1, "kind": "video",
     "video": {"id": "v1", "url": "https://example.com/v1", "duration_ms": 1000}},
    {"t": "x", "none": None, "yes": True, "no": False, "neg": -5, "float": 1.5,
     "big": 2**64 - 1, "small": -(2**63), "empty_str": "", "empty_list": [], "empty_map": {}},
    {"t": "history", "id": 5, "messages": [{"seq": i, "text": str(i)} for i in range(50)]},
    {"t": ""},
]


@pytest.mark.parametrize("frame", ROUND_TRIP_FRAMES)
def test_encode_decode_round_trip(frame: dict[str, Any]) -> None:
    data = encode(frame)
    assert isinstance(data, bytes)
    assert decode(data) == frame
    assert decode_any(data) == frame


def test_encode_is_plain_msgpack() -> None:
    frame = {"t": "ping", "id": 9}
    assert encode(frame) == pack(frame)
    assert msgpack.unpackb(encode(frame), raw=False) == frame


def test_encode_tuples_become_arrays() -> None:
    assert decode(encode({"t": "x", "members": ("a", "b")})) == {"t": "x", "members": ["a", "b"]}


def test_encode_is_repeatable() -> None:
    # The shared packer is reset between calls: no bytes leak from one frame to the next.
    first = encode({"t": "a", "id": 1})
    second = encode({"t": "b", "id": 2})
    assert decode(first) == {"t": "a", "id": 1}
    assert decode(second) == {"t": "b", "id": 2}
    assert encode({"t": "a", "id": 1}) == first


@pytest.mark.parametrize(
    "value", [None, 0, -1, 2**64 - 1, 1.25, True, "text", [], [1, [2, [3]]], {"k": "v"}]
)
def test_decode_any_accepts_any_plain_value(value: Any) -> None:
    assert decode_any(pack(value)) == value


def test_default_limits_match_announced_values() -> None:
    wire = DEFAULT_LIMITS.to_wire()
    assert wire["max_frame_bytes"] == 64 * 1024
    assert wire["max_bin_len"] == 0
    assert all(isinstance(v, int) and not isinstance(v, bool) for v in wire.values())
    assert decode(encode({"t": "ok", "limits": wire}))["limits"] == wire


# --------------------------------------------------------------------------- malformed bytes

@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"hello", id="ascii-word"),
        pytest.param(b'{"t": "ping", "id": 1}', id="json"),
        pytest.param(b"GET /ws HTTP/1.1\r\nHost: x\r\n\r\n", id="http"),
        pytest.param("ping".encode("utf-16"), id="utf16-bom"),
        pytest.param(b"\xc1", id="never-used-byte"),
        pytest.param(b"\xc1\xc1\xc1", id="never-used-bytes"),
        pytest.param(b"\xff\xfe\xfd", id="negative-fixints"),
        pytest.param(b"\x00" * 16, id="zeros"),
    ],
)
def test_text_and_garbage_bytes_are_frame_errors(data: bytes) -> None:
    expect_frame_error(data)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"\x81", id="map-header-only"),
        pytest.param(b"\x81\xa1", id="key-header-only"),
        pytest.param(b"\x81\xa1t", id="key-without-value"),
        pytest.param(b"\x81\xa1t\xa4pi", id="short-string"),
        pytest.param(b"\x82\xa1t\xa4ping\xa2id", id="second-value-missing"),
        pytest.param(b"\xde\x00", id="map16-short-length"),
        pytest.param(b"\xdb\x00\x00\x00\x10abc", id="str32-short"),
        pytest.param(b"\x81\xa1t\xcf\x00\x00", id="uint64-short"),
    ],
)
def test_truncated_msgpack_is_a_frame_error(data: bytes) -> None:
    expect_frame_error(data)


@pytest.mark.parametrize("cut", [1, 2, 5, 10, -1])
def test_every_truncation_of_a_real_frame_is_a_frame_error(cut: int) -> None:
    data = encode({"t": "send", "id": 1, "conv": "c1", "cmid": "m", "text": "hello"})
    expect_frame_error(data[:cut])


@pytest.mark.parametrize(
    "tail",
    [b"\x00", b"\xc0", encode({"t": "ping"}), b"garbage", b"\xc1"],
    ids=["fixint", "nil", "second-frame", "text", "never-used"],
)
def test_trailing_bytes_are_a_frame_error(tail: bytes) -> None:
    err = expect_frame_error(encode({"t": "ping", "id": 1}) + tail)
    assert "trailing" in err.reason


def test_invalid_utf8_string_is_a_frame_error() -> None:
    expect_frame_error(b"\x81\xa1t\xa2\xff\xfe")


def test_invalid_utf8_key_is_a_frame_error() -> None:
    expect_frame_error(b"\x82\xa1t\xa1x\xa2\xc3\x28\x01")


# --------------------------------------------------------------------------- shape of a frame

@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ([], "array"),
        (["t", "ping"], "array"),
        ([{"t": "ping"}], "array"),
        (0, "int"),
        (42, "int"),
        (-7, "int"),
        (None, "nil"),
        ("ping", "str"),
        ("", "str"),
        (True, "bool"),
        (1.5, "float"),
    ],
)
def test_non_map_value_is_a_frame_error(value: Any, kind: str) -> None:
    err = expect_frame_error(pack(value))
    assert "map" in err.reason
    assert kind in err.reason


@pytest.mark.parametrize(
    "frame",
    [{}, {"id": 1}, {"T": "ping"}, {"type": "ping"}, {" t": "ping"}],
    ids=["empty", "id-only", "upper-T", "type", "space-t"],
)
def test_map_without_t_is_a_frame_error(frame: dict[str, Any]) -> None:
    err = expect_frame_error(pack(frame))
    assert "'t'" in err.reason


@pytest.mark.parametrize(
    "t",
    [None, 1, 0, -1, 1.0, True, False, ["ping"], {"ping": 1}],
    ids=["nil", "one", "zero", "negative", "float", "true", "false", "array", "map"],
)
def test_non_string_t_is_a_frame_error(t: Any) -> None:
    err = expect_frame_error(pack({"t": t, "id": 1}))
    assert "'t'" in err.reason


def test_bin_t_is_a_frame_error() -> None:
    expect_frame_error(b"\x81\xa1t\xc4\x00")


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"\x82\xa1t\xa1x\x01\x02", id="int-key"),
        pytest.param(b"\x82\xa1t\xa1x\xc0\x02", id="nil-key"),
        pytest.param(b"\x82\xa1t\xa1x\xc3\x02", id="bool-key"),
        pytest.param(b"\x82\xa1t\xa1x\xcb" + b"\x00" * 8 + b"\x02", id="float-key"),
        pytest.param(b"\x82\xa1t\xa1x\x90\x02", id="array-key"),
        pytest.param(b"\x82\xa1t\xa1x\x80\x02", id="map-key"),
        pytest.param(b"\x82\xa1t\xa1x\xc4\x00\x02", id="empty-bin-key"),
        pytest.param(b"\x82\xa1t\xa1x\xc4\x01k\x02", id="bin-key"),
        pytest.param(b"\x82\xa1t\xa1x\xa1m\x81\x01\x02", id="nested-int-key"),
        pytest.param(b"\x82\xa1t\xa1x\xa1m\x91\x81\xc4\x00\x02", id="nested-bin-key-in-array"),
    ],
)
def test_non_string_keys_are_a_frame_error(data: bytes) -> None:
    expect_frame_error(data)


# --------------------------------------------------------------------------- bin and ext

@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"\x82\xa1t\xa1x\xa1b\xc4\x00", id="empty-bin8"),
        pytest.param(b"\x82\xa1t\xa1x\xa1b\xc4\x03abc", id="bin8"),
        pytest.param(b"\x82\xa1t\xa1x\xa1b\xc5\x00\x01z", id="bin16"),
        pytest.param(b"\x82\xa1t\xa1x\xa1b\xc6\x00\x00\x00\x00", id="empty-bin32"),
        pytest.param(b"\x82\xa1t\xa1x\xa1b\x91\xc4\x00", id="empty-bin-in-array"),
        pytest.param(b"\x82\xa1t\xa1x\xa1b\xd4\x05\x00", id="fixext1"),
        pytest.param(b"\x82\xa1t\xa1x\xa1b\xd8\x05" + b"\x00" * 16, id="fixext16"),
        pytest.param(b"\x82\xa1t\xa1x\xa1b\xc7\x00\x05", id="empty-ext8"),
        pytest.param(b"\x82\xa1t\xa1x\xa1b\xc7\x02\x05ab", id="ext8"),
        pytest.param(b"\x82\xa1t\xa1x\xa1b\xd6\xff\x00\x00\x00\x00", id="timestamp32"),
        pytest.param(b"\x82\xa1t\xa1x\xa1b\xc7\x00\xff", id="empty-timestamp"),
        pytest.param(b"\x82\xa1t\xa1x\xa1b\x81\xa1k\xc7\x00\x01", id="empty-ext-in-map"),
    ],
)
def test_bin_and_ext_values_are_refused(data: bytes) -> None:
    expect_frame_error(data)


@pytest.mark.parametrize("data", [b"\xc4\x00", b"\xc4\x02ab", b"\xc7\x00\x05", b"\xd4\x01\x00"])
def test_bare_bin_and_ext_are_refused_by_decode_any(data: bytes) -> None:
    with pytest.raises(FrameError):
        decode_any(data)


def test_encoded_bytes_do_not_survive_decoding() -> None:
    expect_frame_error(encode({"t": "x", "blob": b"\x00\x01"}))
    expect_frame_error(encode({"t": "x", "blob": b""}))


def test_bin_is_allowed_when_limits_allow_it() -> None:
    limits = Limits(max_bin_len=4)
    assert decode(b"\x82\xa1t\xa1x\xa1b\xc4\x02ab", limits) == {"t": "x", "b": b"ab"}
    expect_frame_error(b"\x82\xa1t\xa1x\xa1b\xc4\x05abcde", limits)
    # Keys stay strings whatever the bin limit.
    expect_frame_error(b"\x82\xa1t\xa1x\xc4\x01k\x02", limits)


# --------------------------------------------------------------------------- size limit

def frame_of_size(size: int) -> bytes:
    """An encoded ``{"t": "x", "p": "aaa..."}`` of exactly ``size`` bytes."""
    header = b"\x82\xa1t\xa1x\xa1p\xdb"  # fixmap(2), "t", "x", "p", str32 header
    body_len = size - len(header) - 4
    assert body_len >= 0
    return header + body_len.to_bytes(4, "big") + b"a" * body_len


@pytest.mark.parametrize("size", [64, 1000, 64 * 1024])
def test_frame_exactly_at_size_limit_is_accepted(size: int) -> None:
    data = frame_of_size(size)
    assert len(data) == size
    limits = Limits(max_frame_bytes=size, max_str_len=size)
    assert decode(data, limits)["t"] == "x"


@pytest.mark.parametrize("size", [64, 1000, 64 * 1024])
def test_frame_one_byte_over_size_limit_is_too_large(size: int) -> None:
    data = frame_of_size(size + 1)
    limits = Limits(max_frame_bytes=size, max_str_len=size + 1)
    with pytest.raises(FrameTooLarge) as info:
        decode(data, limits)
    assert info.value.close_code == CloseCode.TOO_BIG == 1009
    assert isinstance(info.value, FrameError)
    assert str(size) in info.value.reason


@pytest.mark.parametrize(
    "data",
    [
        b"\x00" * (64 * 1024 + 1),
        b"\xc1" * (64 * 1024 + 1),
        b"\x91" * 1_000_000,
    ],
    ids=["zeros", "garbage", "deep-nesting"],
)
def test_size_is_checked_before_parsing(data: bytes) -> None:
    with pytest.raises(FrameTooLarge) as info:
        decode(data)
    assert info.value.close_code == 1009
    with pytest.raises(FrameTooLarge):
        decode_any(data)


def test_default_size_limit() -> None:
    big = encode({"t": "x", "p": "a" * 70_000})
    with pytest.raises(FrameTooLarge):
        decode(big)
    with pytest.raises(FrameTooLarge):
        decode(big, Limits(max_str_len=100_000))


# --------------------------------------------------------------------------- depth limit

@pytest.mark.parametrize("max_depth", [1, 2, 3, 8])
def test_nesting_at_depth_limit_is_accepted(max_depth: int) -> None:
    limits = Limits(max_depth=max_depth)
    value = decode(frame_nested(max_depth), limits)
    assert value["t"] == "x"


@pytest.mark.parametrize("max_depth", [1, 2, 3, 8])
def test_nesting_just_over_depth_limit_is_a_frame_error(max_depth: int) -> None:
    err = expect_frame_error(frame_nested(max_depth + 1), Limits(max_depth=max_depth))
    assert "nesting" in err.reason


def test_default_depth_limit() -> None:
    assert DEFAULT_LIMITS.max_depth == 8
    decode(frame_nested(8))
    expect_frame_error(frame_nested(9))


def test_depth_counts_maps_as_well_as_arrays() -> None:
    def maps(levels: int) -> dict[str, Any]:
        inner: dict[str, Any] = {"k": 1}
        for _ in range(levels - 1):
            inner = {"k": inner}
        return inner

    # The frame map itself is level 1.
    assert decode(encode({"t": "x", "m": maps(7)}))["t"] == "x"
    expect_frame_error(encode({"t": "x", "m": maps(8)}))


def test_depth_of_mixed_maps_and_arrays() -> None:
    ok_frame = {"t": "x", "a": [{"b": [{"c": [{"d": [1]}]}]}]}  # 8 containers deep
    assert decode(encode(ok_frame)) == ok_frame
    deep_frame = {"t": "x", "a": [{"b": [{"c": [{"d": [[1]]}]}]}]}  # 9 containers deep
    expect_frame_error(encode(deep_frame))


def test_only_the_deepest_branch_matters() -> None:
    wide = {"t": "x", "a": [[1]] * 100, "b": {"c": {"d": [[[[[2]]]]]}}}  # 8 deep at most
    assert decode(encode(wide)) == wide


@pytest.mark.parametrize("levels", [20, 1000, 1024, 1025, 5000, 60_000])
def test_very_deep_nesting_under_size_limit_is_a_frame_error(levels: int) -> None:
    data = frame_nested(levels)
    assert len(data) <= DEFAULT_LIMITS.max_frame_bytes
    expect_frame_error(data)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(nested_arrays(100_000), id="arrays"),
        pytest.param(b"\x81\xa1k" * 100_000 + b"\xc0", id="maps"),
        pytest.param(b"\x81\xa1t" + nested_arrays(100_000), id="frame"),
    ],
)
def test_extremely_deep_nesting_is_a_frame_error_not_recursion_error(data: bytes) -> None:
    limits = Limits(max_frame_bytes=len(data))
    # pytest.raises(FrameError) would let a RecursionError fail the test, as it should.
    with pytest.raises(FrameError) as info:
        decode_any(data, limits)
    assert info.value.close_code == 4003
    expect_frame_error(data, limits)


def test_deep_nesting_within_a_generous_depth_limit_is_accepted() -> None:
    limits = Limits(max_depth=500, max_frame_bytes=10_000)
    assert decode(frame_nested(500), limits)["t"] == "x"
    expect_frame_error(frame_nested(501), limits)


# --------------------------------------------------------------------------- length limits

def test_string_at_and_over_limit() -> None:
    limits = Limits(max_str_len=10)
    assert decode(encode({"t": "x", "s": "a" * 10}), limits)["s"] == "a" * 10
    expect_frame_error(encode({"t": "x", "s": "a" * 11}), limits)


def test_string_limit_applies_to_keys_and_t() -> None:
    limits = Limits(max_str_len=10)
    expect_frame_error(encode({"t": "x", "k" * 11: 1}), limits)
    expect_frame_error(encode({"t": "t" * 11}), limits)


def test_string_limit_counts_utf8_bytes() -> None:
    limits = Limits(max_str_len=10)
    expect_frame_error(encode({"t": "x", "s": "é" * 6}), limits)  # 6 chars, 12 bytes


def test_default_string_limit() -> None:
    limit = DEFAULT_LIMITS.max_str_len
    assert decode(encode({"t": "x", "s": "a" * limit}))["s"] == "a" * limit
    expect_frame_error(encode({"t": "x", "s": "a" * (limit + 1)}))


@pytest.mark.parametrize("max_array_len", [0, 1, 5, 1024])
def test_array_at_and_over_limit(max_array_len: int) -> None:
    limits = Limits(max_array_len=max_array_len)
    at = encode({"t": "x", "a": [0] * max_array_len})
    assert decode(at, limits)["a"] == [0] * max_array_len
    expect_frame_error(encode({"t": "x", "a": [0] * (max_array_len + 1)}), limits)


def test_default_array_limit() -> None:
    limit = DEFAULT_LIMITS.max_array_len
    decode(encode({"t": "x", "a": [0] * limit}))
    expect_frame_error(encode({"t": "x", "a": [0] * (limit + 1)}))


@pytest.mark.parametrize("max_map_len", [2, 5, 1024])
def test_map_at_and_over_limit(max_map_len: int) -> None:
    limits = Limits(max_map_len=max_map_len)
    at = {"t": "x", **{f"k{i}": i for i in range(max_map_len - 1)}}
    assert decode(encode(at), limits) == at
    over = {"t": "x", **{f"k{i}": i for i in range(max_map_len)}}
    expect_frame_error(encode(over), limits)


def test_map_limit_applies_to_nested_maps() -> None:
    limits = Limits(max_map_len=3)
    expect_frame_error(encode({"t": "x", "m": {"a": 1, "b": 2, "c": 3, "d": 4}}), limits)


def test_array_header_claiming_more_than_limit_is_refused_without_data() -> None:
    # An array32 header claiming 2**32 - 1 entries must fail on the limit, not allocate.
    expect_frame_error(b"\x82\xa1t\xa1x\xa1a\xdd\xff\xff\xff\xff")
    expect_frame_error(b"\x82\xa1t\xa1x\xa1m\xdf\xff\xff\xff\xff")
    expect_frame_error(b"\x82\xa1t\xa1x\xa1s\xdb\xff\xff\xff\xff")


# --------------------------------------------------------------------------- errors

def test_frame_error_types() -> None:
    assert issubclass(FrameTooLarge, FrameError)
    assert FrameError.close_code == CloseCode.PROTOCOL_ERROR
    assert FrameTooLarge.close_code == CloseCode.TOO_BIG
    err = FrameError("why")
    assert err.reason == "why"
    assert err.close_code == 4003
