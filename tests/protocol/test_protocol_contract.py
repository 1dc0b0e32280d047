"""Pure tests of the protocol's codes, its event builders and its freedom from I/O.

The code values are pinned to PROTOCOL.md section 2; ``events`` builds what the
hub sends; and ``clipwire.protocol`` must stay importable without an event loop
or a socket.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from clipwire import protocol
from clipwire.protocol import (
    SUBPROTOCOL,
    ClipwireError,
    CloseCode,
    ErrorCode,
    FrameError,
    FrameTooLarge,
    RequestError,
    decode,
    encode,
    events,
)

PROTOCOL_DIR = Path(protocol.__file__).resolve().parent

# PROTOCOL.md section 2, verbatim.
DOC_ERROR_CODES = [
    "bad_request", "unauthorized", "forbidden", "not_found", "too_large", "rate_limited",
    "conflict", "unavailable", "internal",
]
DOC_CLOSE_CODES = {
    "UNAUTHORIZED": 4001,  # unauthorized or token expired
    "HELLO_TIMEOUT": 4002,  # no hello in time
    "PROTOCOL_ERROR": 4003,  # protocol error
    "RATE_LIMITED": 4008,  # rate limit exceeded repeatedly
    "SLOW_CONSUMER": 4009,  # slow consumer
    "DRAINING": 4010,  # hub draining
    "TOO_BIG": 1009,  # frame too big
}


# --------------------------------------------------------------------------- error codes

def test_error_codes_match_the_contract_exactly() -> None:
    assert [code.value for code in ErrorCode] == DOC_ERROR_CODES
    assert len(ErrorCode) == 9


@pytest.mark.parametrize("value", DOC_ERROR_CODES)
def test_error_code_is_its_wire_string(value: str) -> None:
    code = ErrorCode(value)
    assert code == value
    assert str(code) == value
    assert code.name == value.upper()
    assert decode(encode({"t": "error", "code": code}))["code"] == value


@pytest.mark.parametrize(("name", "value"), sorted(DOC_CLOSE_CODES.items()))
def test_close_codes_match_the_contract(name: str, value: int) -> None:
    assert CloseCode[name] == value
    assert int(CloseCode[name]) == value
    assert CloseCode(value).name == name


def test_close_codes_are_the_contract_plus_standard_codes() -> None:
    extra = {code.value for code in CloseCode} - set(DOC_CLOSE_CODES.values())
    # Only the standard RFC 6455 codes besides the contract's own.
    assert extra <= {1000, 1001, 1011}
    assert all(1000 <= code.value <= 4999 for code in CloseCode)


def _find_protocol_md() -> Path | None:
    root = Path(__file__).resolve().parents[2]
    for candidate in (Path("/work/shared/PROTOCOL.md"), root / "PROTOCOL.md",
                      root / "docs" / "PROTOCOL.md"):
        if candidate.is_file():
            return candidate
    return None


def test_codes_match_protocol_md_when_present() -> None:
    path = _find_protocol_md()
    if path is None:
        pytest.skip("PROTOCOL.md not available in this checkout")
    text = path.read_text(encoding="utf-8")
    errors_part = text.split("Error codes:", 1)[1].split("Close codes:", 1)[0]
    close_part = text.split("Close codes:", 1)[1].split("\n\n", 1)[0]
    assert re.findall(r"`([a-z_]+)`", errors_part) == DOC_ERROR_CODES
    assert {int(n) for n in re.findall(r"\b(\d{4})\b", close_part)} == set(
        DOC_CLOSE_CODES.values()
    )


# --------------------------------------------------------------------------- exceptions

def test_exception_tree() -> None:
    assert issubclass(FrameError, ClipwireError)
    assert issubclass(FrameTooLarge, FrameError)
    assert issubclass(RequestError, ClipwireError)
    assert not issubclass(RequestError, FrameError)


def test_request_error_carries_code_and_message() -> None:
    err = RequestError(ErrorCode.NOT_FOUND, "no such conversation")
    assert err.code is ErrorCode.NOT_FOUND
    assert err.message == "no such conversation"
    assert str(err) == "not_found: no such conversation"
    bad = RequestError.bad("missing 'conv'")
    assert isinstance(bad, RequestError)
    assert bad.code is ErrorCode.BAD_REQUEST


def test_subprotocol_name() -> None:
    assert SUBPROTOCOL == "clipwire.v1"


# --------------------------------------------------------------------------- events

def test_error_frame_omits_id_when_none() -> None:
    frame = events.error(None, ErrorCode.BAD_REQUEST, "frame must carry 't'")
    assert frame == {"t": "error", "code": "bad_request", "message": "frame must carry 't'"}
    assert "id" not in frame


@pytest.mark.parametrize("request_id", [0, 1, 2**63 - 1])
def test_error_frame_keeps_any_id(request_id: int) -> None:
    frame = events.error(request_id, ErrorCode.NOT_FOUND, "gone")
    assert frame == {"t": "error", "id": request_id, "code": "not_found", "message": "gone"}


@pytest.mark.parametrize("code", list(ErrorCode))
def test_error_frame_code_is_a_plain_string(code: ErrorCode) -> None:
    frame = events.error(1, code, "m")
    assert type(frame["code"]) is str
    assert decode(encode(frame)) == frame


def test_ok_frame() -> None:
    assert events.ok(4) == {"t": "ok", "id": 4}
    frame = events.ok(5, conv="c1", seq=2, ts=1_700_000_000_000)
    assert frame == {"t": "ok", "id": 5, "conv": "c1", "seq": 2, "ts": 1_700_000_000_000}
    assert decode(encode(frame)) == frame


def test_gap_event() -> None:
    frame = events.gap("c1", 10, 250)
    assert frame == {"t": "gap", "conv": "c1", "from_seq": 10, "to_seq": 250}
    assert "id" not in frame
    assert decode(encode(frame)) == frame


VIDEO = {"id": "v1", "url": "https://videos.example/v1"}
REPLY = {"seq": 3, "at_ms": 1200}
HEAD = {"conv": "c1", "seq": 7, "from": "alice", "ts": 123, "kind": "video", "cmid": "m7"}


def _message(**kwargs: Any) -> dict[str, Any]:
    frame: dict[str, Any] = events.message("c1", 7, "alice", 123, "video", "m7", **kwargs)
    return frame


def test_message_with_every_field() -> None:
    frame = _message(text="look", video=VIDEO, reply=REPLY)
    assert frame == {**HEAD, "text": "look", "video": VIDEO, "reply": REPLY}
    assert "t" not in frame and "id" not in frame and "unsent" not in frame


def test_message_without_optional_fields() -> None:
    assert _message() == HEAD


def test_message_keeps_empty_text() -> None:
    assert _message(text="")["text"] == ""


@pytest.mark.parametrize(
    "body",
    [{}, {"text": "secret"}, {"video": VIDEO}, {"reply": REPLY},
     {"text": "secret", "video": VIDEO, "reply": REPLY}],
    ids=["bare", "text", "video", "reply", "all"],
)
def test_unsent_message_drops_body_fields(body: dict[str, Any]) -> None:
    frame = _message(unsent=True, **body)
    assert frame == {**HEAD, "unsent": True}


def test_message_travels_through_the_codec() -> None:
    frame = {"t": "msg", **_message(text="hi", video=VIDEO, reply=REPLY)}
    assert decode(encode(frame)) == frame


# --------------------------------------------------------------------------- purity

FORBIDDEN_MODULES = [
    "asyncio", "socket", "ssl", "selectors", "select", "websockets", "aiosqlite", "uvloop",
    "http.client", "urllib.request", "subprocess", "sqlite3", "clipwire.server",
    "clipwire.client",
]


def test_importing_the_protocol_loads_no_io_modules(tmp_path: Path) -> None:
    code = (
        "import json, sys\n"
        "before = set(sys.modules)\n"
        "import clipwire.protocol, clipwire.protocol.events, clipwire.protocol.frames\n"
        "new = set(sys.modules) - before\n"
        f"forbidden = {FORBIDDEN_MODULES!r}\n"
        "print(json.dumps(sorted(m for m in new if m in forbidden "
        "or any(m.startswith(f + '.') for f in forbidden))))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
        timeout=60, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []


ALLOWED_IMPORTS = {"__future__", "collections.abc", "dataclasses", "enum", "typing",
                   "urllib.parse", "msgpack"}


@pytest.mark.parametrize("name", ["__init__", "codec", "errors", "events", "frames"])
def test_protocol_sources_import_only_pure_modules(name: str) -> None:
    source = (PROTOCOL_DIR / f"{name}.py").read_text(encoding="utf-8")
    imported: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            assert node.module is not None
            imported.add(node.module)
    assert imported <= ALLOWED_IMPORTS, imported - ALLOWED_IMPORTS
    assert "importlib" not in source and "__import__" not in source


def test_only_the_codec_imports_msgpack() -> None:
    for path in PROTOCOL_DIR.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                 for alias in node.names}
        assert ("msgpack" in names) == (path.name == "codec.py"), path.name

