"""The shared protocol vectors (``protocol/vectors.json``) hold for the Python codec.

Every vector's bytes decode to its value (or fail with its close code), its
request parses to what it says (or is refused with its code, naming its field),
and a canonical vector's value encodes back to its bytes. The JavaScript client
checks the same file (``clients/js/test/vectors.test.ts``).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import make_vectors  # beside this file: tests/protocol/make_vectors.py
import pytest

from clipwire.protocol import (
    DEFAULT_LIMITS,
    ErrorCode,
    FrameError,
    FrameTooLarge,
    Limits,
    RequestError,
    decode,
    encode,
    parse_request,
)

DATA = json.loads(make_vectors.OUT.read_text(encoding="utf-8"))
VECTORS: list[dict[str, Any]] = DATA["vectors"]
REQUEST_TYPES = ["hello", "send", "share", "history", "read", "react", "unsend", "group.create", "group.add",
                 "group.remove", "group.leave", "friend.request", "friend.accept", "friend.remove", "block",
                 "unblock", "presence", "watch", "refresh", "ping", "typing"]
EVENT_TYPES = ["msg", "gap", "conv", "friend", "presence", "typing", "read", "reaction", "unsent", "watch"]


def limits_of(vector: dict[str, Any]) -> Limits:
    return dataclasses.replace(DEFAULT_LIMITS, **vector.get("limits", {}))


def test_the_committed_file_is_what_the_generator_writes() -> None:
    assert make_vectors.OUT.read_text(encoding="utf-8") == make_vectors.render(make_vectors.build())


def test_the_file_states_the_codec_defaults() -> None:
    assert DATA["limits"] == DEFAULT_LIMITS.to_wire()


def test_names_are_unique() -> None:
    names = [v["name"] for v in VECTORS]
    assert len(names) == len(set(names))


def test_every_request_type_and_event_type_is_covered() -> None:
    valid = {v["value"]["t"] for v in VECTORS if v["direction"] == "c2h" and "parsed" in v.get("request", {})}
    refused = {v["value"]["t"] for v in VECTORS if v["direction"] == "c2h" and "error" in v.get("request", {})
               and isinstance(v["value"].get("t"), str)}
    assert set(REQUEST_TYPES) <= valid, set(REQUEST_TYPES) - valid
    assert set(REQUEST_TYPES) <= refused, set(REQUEST_TYPES) - refused
    sent = {v["value"]["t"] for v in VECTORS if v["direction"] == "h2c"}
    assert {"ok", "error", *EVENT_TYPES} <= sent


def test_every_kind_of_refusal_is_covered() -> None:
    closes = {v["frame_error"]["close"] for v in VECTORS if "frame_error" in v}
    assert closes == {4003, 1009}
    codes = {v["request"]["error"] for v in VECTORS if "error" in v.get("request", {})}
    assert codes == {"bad_request", "unauthorized"}


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_vector(vector: dict[str, Any]) -> None:
    data = bytes.fromhex(vector["hex"])
    limits = limits_of(vector)
    if "frame_error" in vector:
        with pytest.raises(FrameError) as info:
            decode(data, limits)
        assert info.value.close_code == vector["frame_error"]["close"]
        assert isinstance(info.value, FrameTooLarge) == (vector["frame_error"]["close"] == 1009)
        return
    value = make_vectors.from_tagged(vector["value"])
    assert decode(data, limits) == value
    assert (encode(value) == data) == vector["canonical"]
    request = vector.get("request")
    if vector["direction"] == "h2c":
        assert request is None
        return
    assert request is not None
    if "error" in request:
        with pytest.raises(RequestError) as refusal:
            parse_request(value, limits)
        assert refusal.value.code == ErrorCode(request["error"])
        if request["field"] is not None:
            assert f"'{request['field']}'" in refusal.value.message
    else:
        parsed = make_vectors.parsed_form(parse_request(value, limits))
        expected = make_vectors.from_tagged(request["parsed"])
        assert json.loads(json.dumps(parsed)) == json.loads(json.dumps(expected))
