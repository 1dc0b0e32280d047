"""The OpenAPI 3.1 document of the server API (served at GET /v1/openapi.json).

It is the one declaration of the API: ``api.py`` builds its routes from the
paths and ``operationId`` here and checks every call's body and parameters
against these schemas (``api_schema.py``), so the document cannot promise what
the server does not do. Request objects are closed (``additionalProperties:
false``): a field the API does not know is refused, not ignored.
"""

from __future__ import annotations

from typing import Any

from clipwire.protocol.frames import MAX_UINT

#: Pairs one call of /v1/friendships or /v1/blocks may set.
MAX_PAIRS = 10_000


def _object(properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    """A request object: these properties, no others."""
    schema: dict[str, Any] = {"type": "object", "additionalProperties": False,
                              "properties": properties}
    if required:
        schema["required"] = list(required)
    return schema


_ID = {"type": "string", "minLength": 1, "maxLength": 128}
#: A user id, held to the rules of a token's ``sub`` (auth.valid_user_id), so the backend
#: cannot act as, or store, an id no client could ever have ("a\x00", " alice").
_USER = {**_ID, "format": "user-id"}
_CARD = _object({"id": _ID, "url": {"type": "string", "format": "uri"},
                 "thumb": {"type": "string", "format": "uri"}, "caption": {"type": "string"},
                 "author": _ID, "duration_ms": {"type": "integer", "minimum": 0},
                 "at_ms": {"type": "integer", "minimum": 0}}, ("id", "url"))
_AS = {"description": "act as this user (same rules as a client); omitted: the system user, "
                      "which is not held to membership, the DM policy or blocks", **_USER}
_REFUSED = {"description": "members not added: the acting user may not reach them (the DM policy, "
                           "or a block either way)", "type": "array", "items": _ID}
_ERROR = {"description": "refused", "content": {"application/json": {"schema": {
    "type": "object", "properties": {"error": {"type": "string"}, "message": {"type": "string"}}}}}}
_RATE_LIMITED = {
    "description": "over the acting user's rate limit; nothing was stored. Nothing is held "
                   "for the call either: send it again after retry_after_ms",
    "headers": {"Retry-After": {"description": "retry_after_ms in whole seconds, rounded up",
                                "schema": {"type": "integer", "minimum": 1}}},
    "content": {"application/json": {"schema": {"type": "object", "properties": {
        "error": {"const": "rate_limited"}, "message": {"type": "string"},
        "retry_after_ms": {"type": "integer", "minimum": 1}}}}}}
_CLOSED = {
    "closed_here": {"description": "connections this node closed", "type": "integer"},
    "other_nodes_told": {"description": "true with Redis: the other nodes were sent the event and "
                         "close theirs when it arrives (their count is not gathered)",
                         "type": "boolean"}}
_PAIRS = {"type": "array", "maxItems": MAX_PAIRS,
          "items": {"type": "array", "items": _USER, "minItems": 2, "maxItems": 2}}


def _op(name: str, summary: str, body: dict[str, Any] | None, result: dict[str, Any],
        params: list[dict[str, Any]] | None = None, *, body_required: bool = True,
        limited: bool = False) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": name,
        "summary": summary,
        "responses": {
            "200": {"description": "done", "content": {"application/json": {"schema": result}}},
            **{code: _ERROR for code in ("400", "401", "403", "404", "413", "503")},
        },
    }
    if limited:  # served as the acting user, within the user's rate limit
        op["responses"]["429"] = _RATE_LIMITED
    if body is not None:
        op["requestBody"] = {"required": body_required,
                             "content": {"application/json": {"schema": body}}}
    if params:
        op["parameters"] = params
    return op


def _path_param(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True,
            "schema": _USER if name == "user" else _ID}


def document() -> dict[str, Any]:
    uint = {"type": "integer", "minimum": 0, "maximum": MAX_UINT}
    message_body = _object({"as": _AS, "to": _USER, "conv": _ID, "cmid": _ID,
                            "kind": {"enum": ["text", "video"]}, "text": {"type": "string"},
                            "video": _CARD,
                            "reply": _object({"seq": uint, "at_ms": uint}, ("seq",))}, ("cmid",))
    stored = {"type": "object", "properties": {"conv": _ID, "seq": {"type": "integer"},
                                               "ts": {"type": "integer"}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "Clipwire server API", "version": "1",
                 "description": "How the application's backend drives the hub. Every call but "
                                "this document needs `Authorization: Bearer <api key>`. A field "
                                "or parameter not described here is refused (400) with its name."},
        "components": {"securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}}},
        "security": [{"apiKey": []}],
        "paths": {
            "/v1/messages": {"post": _op(
                "send", "Send a message as a user or as the system, to a user (DM) or a conversation",
                message_body, stored, limited=True)},
            "/v1/shares": {"post": _op(
                "share", "Share one video card to many users and conversations",
                _object({"as": _AS, "cmid": _ID, "video": _CARD, "text": {"type": "string"},
                         "to": {"type": "array", "items": _USER},
                         "convs": {"type": "array", "items": _ID}}, ("cmid", "video")),
                {"type": "object", "properties": {"results": {"type": "array"}}}, limited=True)},
            "/v1/groups": {"post": _op("group_create", "Create a group", _object({
                "as": _AS, "title": {"type": "string"}, "members": {"type": "array", "items": _USER}}),
                {"type": "object", "properties": {"conv": _ID, "refused": _REFUSED}})},
            "/v1/groups/{conv}/members": {"post": _op("group_members", "Add and remove members",
                _object({"as": _AS, "add": {"type": "array", "items": _USER},
                         "remove": {"type": "array", "items": _USER}}),
                {"type": "object", "properties": {"refused": _REFUSED}}, [_path_param("conv")])},
            "/v1/friendships": {"put": _op(
                "friendships", "Set friendships in bulk (mirror the app's graph)",
                _object({"pairs": _PAIRS, "state": {"enum": ["friends", "none"]}},
                        ("pairs", "state")),
                {"type": "object", "properties": {"pairs": {"type": "integer"}}})},
            "/v1/blocks": {"put": _op(
                "blocks", "Set blocks in bulk: [blocker, blocked] pairs",
                _object({"pairs": _PAIRS, "blocked": {"type": "boolean"}}, ("pairs", "blocked")),
                {"type": "object", "properties": {"pairs": {"type": "integer"}}})},
            "/v1/users/{user}/disconnect": {"post": _op(
                "disconnect", "Close every connection of a user, on every node (close code 4001)",
                None, {"type": "object", "properties": _CLOSED}, [_path_param("user")])},
            "/v1/users/{user}/revoke": {"post": _op(
                "revoke",
                "Refuse the user's tokens issued before a time (default now); close those in use "
                "on every node (close code 4001)",
                _object({"before_ms": uint}),
                {"type": "object", "properties": {**_CLOSED, "before_ms": {"type": "integer"}}},
                [_path_param("user")], body_required=False)},
            "/v1/presence": {"get": _op("presence", "Presence of users", None, {
                "type": "object", "properties": {"users": {"type": "array"}}},
                [{"name": "users", "in": "query", "required": True,
                  "description": "comma-separated user ids (at most 1,000)",
                  "schema": {"type": "string", "minLength": 1}}])},
            "/v1/conversations/{conv}/messages": {"get": _op(
                "history", "A page of a conversation's history, oldest first", None,
                {"type": "object", "properties": {"messages": {"type": "array"}}},
                [_path_param("conv"),
                 {"name": "before", "in": "query", "schema": uint},
                 {"name": "limit", "in": "query",
                  "schema": {"type": "integer", "minimum": 1, "maximum": 100}}])},
            "/v1/videos/{video}/unavailable": {"post": _op(
                "video_unavailable",
                "A video was deleted or made private: every card sharing it becomes a tombstone",
                None, {"type": "object", "properties": {"tombstoned": {"type": "integer"}}},
                [_path_param("video")])},
            "/v1/openapi.json": {"get": {**_op(
                "openapi", "This document (no API key needed)", None, {"type": "object"}),
                "security": []}},
        },
    }
