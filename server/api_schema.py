"""The inputs of a server API call, checked against its operation in the OpenAPI document.

The document (``openapi.py``) is the one declaration of what each endpoint
takes: the routes are built from it, and every body, query and path parameter
is checked against it here before a handler sees it, so the two cannot drift.
Anything not declared is refused with a ``bad_request`` that names it: a field
the API does not understand is a mistake of the caller, and ignoring it can
change who acts (``{"from": "alice"}`` would otherwise send as the system user).

Only the part of JSON Schema the document uses is understood; a keyword it does
not know is a bug in the document, and raises ``ValueError`` rather than
passing input unchecked. Pure: no I/O.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from clipwire.protocol import RequestError

from .auth import valid_user_id

#: What a call to an operation without a ``requestBody`` may carry: nothing.
NO_FIELDS: dict[str, Any] = {"type": "object", "additionalProperties": False, "properties": {}}
_INTEGER = re.compile(r"-?[0-9]{1,19}")
_KNOWN = frozenset({"type", "properties", "required", "additionalProperties", "items", "enum",
                    "minLength", "maxLength", "minimum", "maximum", "minItems", "maxItems",
                    "format", "description"})


def _type_ok(kind: str, value: Any) -> bool:
    # JSON has no integer type of its own and Python's bool is an int: be exact.
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "string":
        return isinstance(value, str)
    if kind == "array":
        return isinstance(value, list)
    if kind == "object":
        return isinstance(value, dict)
    raise ValueError(f"the API document uses an unknown type {kind!r}")


_TYPE_NAMES = {"integer": "an integer", "boolean": "true or false", "string": "a string",
               "array": "a list", "object": "an object"}


def check(schema: dict[str, Any], value: Any, name: str) -> None:
    """Raise ``bad_request`` naming the first part of ``value`` that ``schema`` refuses.

    ``name`` is the path of ``value`` in the request (``video.url``, ``pairs[2]``).
    """
    unknown = schema.keys() - _KNOWN
    if unknown:
        raise ValueError(f"the API document uses unsupported keywords {sorted(unknown)}")
    kind = schema.get("type")
    if kind is not None and not _type_ok(kind, value):
        raise RequestError.bad(f"'{name}' must be {_TYPE_NAMES[kind]}")
    if "enum" in schema and value not in schema["enum"]:
        choices = ", ".join(json.dumps(choice) for choice in schema["enum"])
        raise RequestError.bad(f"'{name}' must be one of {choices}")
    if isinstance(value, str):
        _bounded(len(value), schema.get("minLength"), schema.get("maxLength"),
                 f"'{name}' must be", "characters long")
        if schema.get("format") == "user-id" and not valid_user_id(value):
            raise RequestError.bad(f"'{name}' must be a user id: printable characters, "
                                   "no space at either end")
    elif isinstance(value, int) and not isinstance(value, bool):
        _bounded(value, schema.get("minimum"), schema.get("maximum"), f"'{name}' must be", "")
    elif isinstance(value, list):
        _bounded(len(value), schema.get("minItems"), schema.get("maxItems"),
                 f"'{name}' must hold", "items")
        for index, item in enumerate(value):
            check(schema.get("items", {}), item, f"{name}[{index}]")
    elif isinstance(value, dict):
        _check_object(schema, value, name)


def _bounded(size: int, low: int | None, high: int | None, what: str, unit: str) -> None:
    if (low is None or size >= low) and (high is None or size <= high):
        return
    if high is None:
        bound = f"at least {low}"
    elif low is None:
        bound = f"at most {high}"
    else:
        bound = f"{low} to {high}" if unit else f"between {low} and {high}"
    raise RequestError.bad(f"{what} {bound} {unit}".rstrip())


def _check_object(schema: dict[str, Any], value: dict[str, Any], name: str) -> None:
    properties: dict[str, Any] = schema.get("properties", {})
    prefix = f"{name}." if name else ""
    if schema.get("additionalProperties", True) is not True:
        # Unknown fields first: a misspelt field is the likeliest cause of any other refusal.
        for key in value:
            if key not in properties:
                raise RequestError.bad(f"unknown field '{prefix}{key}'")
    for key in schema.get("required", ()):
        if key not in value:
            raise RequestError.bad(f"missing '{prefix}{key}'")
    for key, item in value.items():
        if key in properties:
            check(properties[key], item, prefix + key)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # One reader taking the first value and another the last is how checks are bypassed.
    out: dict[str, Any] = {}
    for key, item in pairs:
        if key in out:
            raise RequestError.bad(f"field '{key}' is given more than once")
        out[key] = item
    return out


def _no_constant(word: str) -> Any:
    raise RequestError.bad(f"{word} is not JSON")


def body(raw: bytes, operation: dict[str, Any]) -> dict[str, Any]:
    """The checked JSON object of a call's body (``{}`` if none was sent and none is required)."""
    declared = operation.get("requestBody")
    if not raw.strip():
        if declared is not None and declared.get("required", False):
            raise RequestError.bad("the body must be a JSON object")
        return {}
    try:
        value = json.loads(raw, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except ValueError:  # UnicodeDecodeError and JSONDecodeError alike
        raise RequestError.bad("the body must be a JSON object") from None
    if not isinstance(value, dict):
        raise RequestError.bad("the body must be a JSON object")
    schema = NO_FIELDS if declared is None else declared["content"]["application/json"]["schema"]
    check(schema, value, "")
    return value


def _declared(operation: dict[str, Any], where: str) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in operation.get("parameters", ()) if p["in"] == where}


def parameters(operation: dict[str, Any], where: str,
               given: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """The checked parameters ``in: where`` (``query`` or ``path``) of a call, typed."""
    declared = _declared(operation, where)
    out: dict[str, Any] = {}
    for key, text in given:
        param = declared.get(key)
        if param is None:
            raise RequestError.bad(f"unknown {where} parameter '{key}'")
        if key in out:
            raise RequestError.bad(f"{where} parameter '{key}' is given more than once")
        value: Any = text
        if param["schema"].get("type") == "integer":
            if not _INTEGER.fullmatch(text):
                raise RequestError.bad(f"'{key}' must be an integer")
            value = int(text)
        check(param["schema"], value, key)
        out[key] = value
    for key, param in declared.items():
        if param.get("required", False) and key not in out:
            raise RequestError.bad(f"missing {where} parameter '{key}'")
    return out


def inputs(operation: dict[str, Any], path: Iterable[tuple[str, str]],
           query: list[tuple[str, str]], raw: bytes
           ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """A call's checked (path, query, body), or ``bad_request`` for the first fault.

    Whatever is undeclared, in the query or the body, is named before anything
    missing: a misspelt name is the likeliest cause of both.
    """
    declared = _declared(operation, "query")
    for key, _ in query:
        if key not in declared:
            raise RequestError.bad(f"unknown query parameter '{key}'")
    checked_body = body(raw, operation)
    return parameters(operation, "path", path), parameters(operation, "query", query), checked_body
