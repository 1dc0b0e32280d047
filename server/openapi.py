"""The OpenAPI 3.1 document of the server API (served at GET /v1/openapi.json)."""

from __future__ import annotations

from typing import Any

_ID = {"type": "string", "minLength": 1, "maxLength": 128}
_CARD = {
    "type": "object", "required": ["id", "url"],
    "properties": {"id": _ID, "url": {"type": "string", "format": "uri"},
                   "thumb": {"type": "string", "format": "uri"}, "caption": {"type": "string"},
                   "author": _ID, "duration_ms": {"type": "integer", "minimum": 0},
                   "at_ms": {"type": "integer", "minimum": 0}},
}
_AS = {"description": "act as this user (same rules as a client); omitted: the system user, "
                      "which is not held to membership, the DM policy or blocks", **_ID}
_ERROR = {"description": "refused", "content": {"application/json": {"schema": {
    "type": "object", "properties": {"error": {"type": "string"}, "message": {"type": "string"}}}}}}
_PAIRS = {"type": "array", "items": {"type": "array", "items": _ID, "minItems": 2, "maxItems": 2}}


def _op(summary: str, body: dict[str, Any] | None, result: dict[str, Any],
        params: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "responses": {
            "200": {"description": "done", "content": {"application/json": {"schema": result}}},
            **{code: _ERROR for code in ("400", "401", "403", "404", "413", "503")},
        },
    }
    if body is not None:
        op["requestBody"] = {"required": True,
                             "content": {"application/json": {"schema": body}}}
    if params:
        op["parameters"] = params
    return op


def _path_param(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": _ID}


def document() -> dict[str, Any]:
    message_body = {
        "type": "object", "required": ["cmid"],
        "properties": {"as": _AS, "to": _ID, "conv": _ID, "cmid": _ID,
                       "kind": {"enum": ["text", "video"]}, "text": {"type": "string"},
                       "video": _CARD, "reply": {"type": "object", "properties": {
                           "seq": {"type": "integer"}, "at_ms": {"type": "integer"}}}},
    }
    stored = {"type": "object", "properties": {"conv": _ID, "seq": {"type": "integer"},
                                               "ts": {"type": "integer"}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "Clipwire server API", "version": "1",
                 "description": "How the application's backend drives the hub. Every call but "
                                "this document needs `Authorization: Bearer <api key>`."},
        "components": {"securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}}},
        "security": [{"apiKey": []}],
        "paths": {
            "/v1/messages": {"post": _op(
                "Send a message as a user or as the system, to a user (DM) or a conversation",
                message_body, stored)},
            "/v1/shares": {"post": _op(
                "Share one video card to many users and conversations", {
                    "type": "object", "required": ["cmid", "video"],
                    "properties": {"as": _AS, "cmid": _ID, "video": _CARD, "text": {"type": "string"},
                                   "to": {"type": "array", "items": _ID},
                                   "convs": {"type": "array", "items": _ID}}},
                {"type": "object", "properties": {"results": {"type": "array"}}})},
            "/v1/groups": {"post": _op("Create a group", {
                "type": "object", "properties": {"as": _AS, "title": {"type": "string"},
                                                 "members": {"type": "array", "items": _ID}}},
                {"type": "object", "properties": {"conv": _ID}})},
            "/v1/groups/{conv}/members": {"post": _op("Add and remove members", {
                "type": "object", "properties": {"as": _AS,
                                                 "add": {"type": "array", "items": _ID},
                                                 "remove": {"type": "array", "items": _ID}}},
                {"type": "object"}, [_path_param("conv")])},
            "/v1/friendships": {"put": _op("Set friendships in bulk (mirror the app's graph)", {
                "type": "object", "required": ["pairs", "state"],
                "properties": {"pairs": _PAIRS, "state": {"enum": ["friends", "none"]}}},
                {"type": "object", "properties": {"pairs": {"type": "integer"}}})},
            "/v1/blocks": {"put": _op("Set blocks in bulk: [blocker, blocked] pairs", {
                "type": "object", "required": ["pairs", "blocked"],
                "properties": {"pairs": _PAIRS, "blocked": {"type": "boolean"}}},
                {"type": "object", "properties": {"pairs": {"type": "integer"}}})},
            "/v1/users/{user}/disconnect": {"post": _op(
                "Close every connection of a user (close code 4001)", None,
                {"type": "object", "properties": {"closed": {"type": "integer"}}},
                [_path_param("user")])},
            "/v1/users/{user}/revoke": {"post": _op(
                "Refuse the user's tokens issued before a time (default now); close those in use",
                {"type": "object", "properties": {"before_ms": {"type": "integer"}}},
                {"type": "object", "properties": {"closed": {"type": "integer"},
                                                  "before_ms": {"type": "integer"}}},
                [_path_param("user")])},
            "/v1/presence": {"get": _op("Presence of users", None, {
                "type": "object", "properties": {"users": {"type": "array"}}},
                [{"name": "users", "in": "query", "required": True,
                  "description": "comma-separated user ids (at most 1,000)",
                  "schema": {"type": "string"}}])},
            "/v1/conversations/{conv}/messages": {"get": _op(
                "A page of a conversation's history, oldest first", None,
                {"type": "object", "properties": {"messages": {"type": "array"}}},
                [_path_param("conv"),
                 {"name": "before", "in": "query", "schema": {"type": "integer"}},
                 {"name": "limit", "in": "query", "schema": {"type": "integer", "maximum": 100}}])},
            "/v1/videos/{video}/unavailable": {"post": _op(
                "A video was deleted or made private: every card sharing it becomes a tombstone",
                None, {"type": "object", "properties": {"tombstoned": {"type": "integer"}}},
                [_path_param("video")])},
        },
    }
