"""The server API, driven over HTTP as the application's backend would."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from wire import SECRET, Dial, HubFactory, RawClient, token, video_card

from clipwire.server import ClipwireServer, sign_token
from clipwire.server.openapi import document

KEY = "backend-api-key-for-tests"
#: Every endpoint the API document describes: a new one is covered by the tests below.
ENDPOINTS = [(method.upper(), path) for path, operations in document()["paths"].items()
             for method in operations]


class Backend:
    """An HTTP client of the server API with the right key."""

    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session, self.base = session, base

    async def call(self, method: str, path: str, body: Any = None, *, key: str = KEY,
                   raw: bytes | None = None) -> tuple[int, dict[str, Any]]:
        headers = {"Authorization": f"Bearer {key}"}
        async with self.session.request(method, self.base + path, json=body if raw is None else None,
                                        data=raw, headers=headers) as response:
            return response.status, await response.json()

    async def ok(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        status, data = await self.call(method, path, body)
        assert status == 200, (status, data)
        return data


@pytest.fixture
async def api(hub_factory: HubFactory) -> AsyncIterator[tuple[ClipwireServer, Backend]]:
    hub = await hub_factory(api_key=KEY, api_port=0, dm_policy="friends")
    assert hub.api is not None
    async with aiohttp.ClientSession() as session:
        yield hub, Backend(session, f"http://127.0.0.1:{hub.api.port}")


async def test_the_key_is_taken_only_with_the_bearer_scheme(api: tuple[ClipwireServer, Backend]) -> None:
    _, backend = api
    for header, status in ((KEY, 401), (f"Basic {KEY}", 401), (f"Token {KEY}", 401),
                           (f"bearer {KEY}", 200), (f"Bearer {KEY}", 200)):
        async with backend.session.get(backend.base + "/v1/presence?users=a",
                                       headers={"Authorization": header}) as response:
            assert response.status == status, header


async def test_wrong_or_missing_key_is_refused(api: tuple[ClipwireServer, Backend]) -> None:
    _, backend = api
    assert (await backend.call("GET", "/v1/presence?users=a", key="nope"))[0] == 401
    assert (await backend.call("GET", "/v1/presence?users=a", key=""))[0] == 401
    status, doc = await backend.call("GET", "/v1/openapi.json", key="")
    assert status == 200 and "/v1/messages" in doc["paths"]
    status, err = await backend.call("POST", "/v1/messages", raw=b"{not json")
    assert (status, err["error"]) == (400, "bad_request")


async def test_system_and_user_messages_follow_the_hub_rules(
    api: tuple[ClipwireServer, Backend], dial: Dial
) -> None:
    hub, backend = api
    alice, bob = await dial(hub.url, "alice"), await dial(hub.url, "bob")
    # As a user, the same rules as a client: alice and bob are not friends yet.
    status, err = await backend.call("POST", "/v1/messages",
                                     {"as": "alice", "to": "bob", "cmid": "1", "text": "hi"})
    assert (status, err["error"]) == (403, "forbidden")
    await backend.ok("PUT", "/v1/friendships", {"pairs": [["alice", "bob"]], "state": "friends"})
    assert (await alice.event("friend"))["state"] == "accepted"
    sent = await backend.ok("POST", "/v1/messages",
                            {"as": "alice", "to": "bob", "cmid": "1", "text": "hi"})
    msg = await bob.event("msg")
    assert (msg["from"], msg["seq"], msg["conv"]) == ("alice", 1, sent["conv"])
    assert (await alice.event("msg"))["text"] == "hi"  # alice's device sees her message too
    # Retried with the same cmid: the first result, delivered once.
    assert await backend.ok("POST", "/v1/messages",
                            {"as": "alice", "to": "bob", "cmid": "1", "text": "hi"}) == sent
    # The system writes into a group it is not a member of.
    group = (await backend.ok("POST", "/v1/groups",
                              {"as": "alice", "members": ["bob"], "title": "club"}))["conv"]
    note = await backend.ok("POST", "/v1/messages",
                            {"conv": group, "cmid": "s1", "text": "welcome, both of you"})
    assert (await bob.event("msg", conv=group))["from"] == "system"
    assert note["seq"] == 1
    # Acting as a user is held to membership: only the system writes where it is no member.
    status, err = await backend.call("POST", "/v1/messages",
                                     {"as": "mallory", "conv": group, "cmid": "m", "text": "hi"})
    assert (status, err["error"]) == (403, "forbidden")
    status, err = await backend.call("POST", "/v1/messages", {"conv": group, "text": "no cmid"})
    assert (status, err["error"]) == (400, "bad_request") and "cmid" in err["message"]


async def test_share_groups_history_presence(api: tuple[ClipwireServer, Backend], dial: Dial) -> None:
    hub, backend = api
    carol = await dial(hub.url, "carol")
    await backend.ok("PUT", "/v1/friendships",
                     {"pairs": [["dave", "carol"], ["dave", "erin"]], "state": "friends"})
    result = await backend.ok("POST", "/v1/shares", {
        "as": "dave", "cmid": "sh", "video": video_card("v42", duration_ms=9000),
        "to": ["carol", "erin", "frank"]})
    assert [r.get("error") for r in result["results"]] == [None, None, "forbidden"]
    assert (await carol.event("msg"))["video"]["id"] == "v42"
    group = (await backend.ok("POST", "/v1/groups", {"members": ["carol"], "title": "t"}))["conv"]
    await backend.ok("POST", f"/v1/groups/{group}/members", {"add": ["erin"], "remove": ["carol"]})
    assert (await carol.event("conv", conv=group, removed=True))["removed"] is True
    page = await backend.ok("GET", f"/v1/conversations/{result['results'][0]['conv']}/messages")
    assert [m["cmid"] for m in page["messages"]] == ["sh"]
    presence = await backend.ok("GET", "/v1/presence?users=carol,erin")
    assert [(p["user"], p["online"]) for p in presence["users"]] == [("carol", True), ("erin", False)]


async def test_blocks_disconnect_and_revoke(api: tuple[ClipwireServer, Backend], dial: Dial) -> None:
    hub, backend = api
    await backend.ok("PUT", "/v1/friendships", {"pairs": [["gail", "hank"]], "state": "friends"})
    await backend.ok("PUT", "/v1/blocks", {"pairs": [["gail", "hank"]], "blocked": True})
    status, _ = await backend.call("POST", "/v1/messages",
                                   {"as": "hank", "to": "gail", "cmid": "x", "text": "hello?"})
    assert status == 403
    hank = await dial(hub.url, "hank")
    disconnected = await backend.ok("POST", "/v1/users/hank/disconnect")
    assert disconnected == {"closed_here": 1, "other_nodes_told": False}  # one node: all of them
    assert (await hank.closed())[0] == 4001

    old = sign_token(SECRET, "hank")
    cut = int(time.time() * 1000) + 1000  # tokens issued before this are refused
    user = await dial(hub.url, "hank")
    revoked = await backend.ok("POST", "/v1/users/hank/revoke", {"before_ms": cut})
    assert (revoked["closed_here"], revoked["other_nodes_told"]) == (1, False)
    assert (await user.closed())[0] == 4001
    client = await RawClient.open(hub.url)
    reply = await client.call("hello", v=1, token=old)
    assert (reply["code"], reply["message"]) == ("unauthorized", "token revoked")
    fresh = sign_token(SECRET, "hank", iat=int(time.time()) + 5)
    again = await RawClient.open(hub.url)
    assert (await again.hello(fresh))["user"] == "hank"
    await again.close()
    assert token("hank")


async def test_a_token_from_the_revokes_own_second_is_accepted(
    api: tuple[ClipwireServer, Backend]
) -> None:
    hub, backend = api
    second = int(time.time())
    # ``iat`` has whole seconds: a token of the revoke's second may be its replacement.
    kept = await RawClient.open(hub.url)
    assert (await kept.hello(sign_token(SECRET, "ivan", iat=second)))["user"] == "ivan"
    gone = await RawClient.open(hub.url)
    await gone.hello(sign_token(SECRET, "ivan", iat=second - 1))
    revoked = await backend.ok("POST", "/v1/users/ivan/revoke", {"before_ms": second * 1000 + 900})
    assert revoked["closed_here"] == 1
    assert (await gone.closed())[0] == 4001
    fresh = await RawClient.open(hub.url)
    assert (await fresh.hello(sign_token(SECRET, "ivan", iat=second)))["user"] == "ivan"
    old = await RawClient.open(hub.url)
    reply = await old.call("hello", v=1, token=sign_token(SECRET, "ivan", iat=second - 1))
    assert (reply["code"], reply["message"]) == ("unauthorized", "token revoked")
    assert (await kept.call("ping"))["t"] == "ok"  # still open
    for client in (kept, fresh, old):
        await client.close()


async def test_the_system_user_id_is_reserved(api: tuple[ClipwireServer, Backend], dial: Dial) -> None:
    hub, backend = api
    alice = await dial(hub.url, "alice")
    reset = await backend.ok("POST", "/v1/messages", {"to": "alice", "cmid": "r1", "text": "code 4711"})
    assert (await alice.event("msg"))["from"] == "system"
    # A token for the system would read that DM and post as the system: refused at hello.
    client = await RawClient.open(hub.url)
    reply = await client.call("hello", v=1, token=token("system"))
    assert (reply["code"], reply["message"]) == ("unauthorized", "token 'sub' is an id the hub reserves")
    assert (await client.closed())[0] == 4001
    # Named in ``as``, it is no ordinary user sharing the system's conversations.
    status, err = await backend.call("POST", "/v1/messages",
                                     {"as": "system", "conv": reset["conv"], "cmid": "r2", "text": "x"})
    assert (status, err["error"]) == (400, "bad_request") and "'as'" in err["message"]
    page = await backend.ok("GET", f"/v1/conversations/{reset['conv']}/messages")
    assert [m["cmid"] for m in page["messages"]] == ["r1"]


async def test_a_renamed_system_user_is_the_one_reserved(hub_factory: HubFactory, dial: Dial) -> None:
    hub = await hub_factory(system_user="clipwire-bot")
    client = await RawClient.open(hub.url)
    reply = await client.call("hello", v=1, token=token("clipwire-bot"))
    assert (reply["code"], reply["message"]) == ("unauthorized", "token 'sub' is an id the hub reserves")
    assert (await dial(hub.url, "system")).welcome["user"] == "system"  # an ordinary id again


async def test_a_video_made_unavailable_becomes_a_tombstone_everywhere(
    api: tuple[ClipwireServer, Backend], dial: Dial
) -> None:
    hub, backend = api
    await backend.ok("PUT", "/v1/friendships", {"pairs": [["ivy", "jon"]], "state": "friends"})
    ivy, jon = await dial(hub.url, "ivy"), await dial(hub.url, "jon")
    shared = await ivy.ok("send", to="jon", cmid="v", kind="video", video=video_card("gone"))
    await ivy.ok("send", conv=shared["conv"], cmid="t", text="kept")
    await jon.event("msg", seq=2)
    assert (await backend.ok("POST", "/v1/videos/gone/unavailable"))["tombstoned"] == 1
    event = await jon.event("unsent")
    assert event == {"t": "unsent", "conv": shared["conv"], "seq": 1, "reason": "video_unavailable"}
    first, second = (await jon.ok("history", conv=shared["conv"]))["messages"]
    assert first.get("unsent") is True and "video" not in first
    assert second["text"] == "kept"
    assert (await backend.ok("POST", "/v1/videos/gone/unavailable"))["tombstoned"] == 0


def _concrete(path: str) -> str:
    """``path`` with each {parameter} filled in."""
    return re.sub(r"\{\w+\}", "x", path)


@pytest.mark.parametrize(("method", "path"), ENDPOINTS, ids=[f"{m} {p}" for m, p in ENDPOINTS])
async def test_every_endpoint_refuses_what_it_does_not_declare(
    api: tuple[ClipwireServer, Backend], method: str, path: str
) -> None:
    _, backend = api
    status, err = await backend.call(method, _concrete(path), {"surplus_field": 1})
    assert (status, err["error"]) == (400, "bad_request"), (status, err)
    assert "'surplus_field'" in err["message"]
    status, err = await backend.call(method, _concrete(path) + "?surplus_param=1")
    assert (status, err["error"]) == (400, "bad_request"), (status, err)
    assert "'surplus_param'" in err["message"]


def _object_schemas(schema: Any) -> Iterator[dict[str, Any]]:
    """Every schema of an object within ``schema``, nested ones included."""
    if isinstance(schema, dict):
        if schema.get("type") == "object":
            yield schema
        for value in schema.values():
            yield from _object_schemas(value)
    elif isinstance(schema, list):
        for value in schema:
            yield from _object_schemas(value)


async def test_every_request_schema_is_closed(api: tuple[ClipwireServer, Backend]) -> None:
    _, backend = api
    served = await backend.ok("GET", "/v1/openapi.json")
    bodies = [op["requestBody"]["content"]["application/json"]["schema"]
              for operations in served["paths"].values() for op in operations.values()
              if "requestBody" in op]
    objects = [schema for body in bodies for schema in _object_schemas(body)]
    assert len(bodies) >= 7 and len(objects) > len(bodies)  # the video card and reply too
    assert all(schema.get("additionalProperties") is False for schema in objects), objects


async def test_a_from_field_is_refused_not_sent_as_the_system(
    api: tuple[ClipwireServer, Backend], dial: Dial
) -> None:
    hub, backend = api
    bob = await dial(hub.url, "bob")  # alice and bob are not friends: alice may not DM bob
    share = {"cmid": "s1", "video": video_card("v1"), "to": ["bob"]}
    status, err = await backend.call("POST", "/v1/shares", {"from": "alice", **share})
    assert (status, err["error"], err["message"]) == (400, "bad_request", "unknown field 'from'")
    # Nothing was stored or delivered: the system's first share to bob is seq 1, bob's first msg.
    sent = await backend.ok("POST", "/v1/shares", {**share, "cmid": "s2"})
    assert sent["results"][0]["seq"] == 1
    msg = await bob.event("msg")
    assert (msg["from"], msg["cmid"], msg["seq"]) == ("system", "s2", 1)


WRONG_TYPES = [
    # null is no user: it must not fall back to acting as the system.
    ("POST", "/v1/messages", {"as": None, "to": "bob", "cmid": "1", "text": "hi"}, "'as'"),
    ("POST", "/v1/groups/x/members", {"add": "bob"}, "'add'"),
    ("PUT", "/v1/friendships", {"pairs": [["a", "b", "c"]], "state": "friends"}, "'pairs[0]'"),
    # Two readers of one body must not see two values: the first and the last.
    ("POST", "/v1/messages", b'{"as": "alice", "as": null, "to": "bob", "cmid": "1", "text": "hi"}',
     "'as'"),
]


@pytest.mark.parametrize(("method", "path", "body", "named"), WRONG_TYPES)
async def test_a_wrong_type_is_refused_by_name(
    api: tuple[ClipwireServer, Backend], method: str, path: str, body: Any, named: str
) -> None:
    _, backend = api
    raw = body if isinstance(body, bytes) else None
    status, err = await backend.call(method, path, None if raw else body, raw=raw)
    assert (status, err["error"]) == (400, "bad_request"), (status, err)
    assert named in err["message"]


BAD_USER_IDS = [
    ("POST", "/v1/messages", {"as": "a\x00", "to": "bob", "cmid": "1", "text": "hi"}, "'as'"),
    ("POST", "/v1/messages", {"as": " alice", "to": "bob", "cmid": "1", "text": "hi"}, "'as'"),
    ("POST", "/v1/messages", {"as": "a\u202e", "to": "bob", "cmid": "1", "text": "hi"}, "'as'"),
    ("POST", "/v1/groups", {"members": ["bob", "\u3164"]}, "'members[1]'"),
    ("PUT", "/v1/friendships", {"pairs": [["alice", "b\x00"]], "state": "friends"}, "'pairs[0][1]'"),
    ("PUT", "/v1/blocks", {"pairs": [["\talice", "bob"]], "blocked": True}, "'pairs[0][0]'"),
]


@pytest.mark.parametrize(("method", "path", "body", "named"), BAD_USER_IDS)
async def test_user_ids_are_held_to_the_rules_of_a_token_sub(
    api: tuple[ClipwireServer, Backend], method: str, path: str, body: Any, named: str
) -> None:
    """No client could have these ids: the backend may not act as them nor store them."""
    hub, backend = api
    status, err = await backend.call(method, path, body)
    assert (status, err["error"]) == (400, "bad_request"), (status, err)
    assert named in err["message"], err
    assert not (await hub.store.social("alice")).friends  # nothing was stored


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


async def test_metrics_leave_the_client_port_for_the_api_port(
    api: tuple[ClipwireServer, Backend]
) -> None:
    """The client port faces the internet; with the API on, /metrics is on its private port."""
    hub, backend = api
    async with backend.session.get(f"http://127.0.0.1:{hub.port}/metrics") as response:
        assert response.status == 404
        assert "clipwire_" not in await response.text()
    for path in ("/healthz", "/readyz"):  # what load balancers probe stays open
        async with backend.session.get(f"http://127.0.0.1:{hub.port}{path}") as response:
            assert response.status == 200, path
    async with backend.session.get(f"{backend.base}/metrics") as response:  # no key: a scraper
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        assert "clipwire_connections" in await response.text()
    async with backend.session.get(f"{backend.base}/metrics?x=1") as response:
        assert response.status == 400


async def test_api_calls_have_their_own_metrics(api: tuple[ClipwireServer, Backend]) -> None:
    _, backend = api
    await backend.ok("POST", "/v1/users/alice/disconnect")
    await backend.ok("POST", "/v1/users/bob/disconnect")
    assert (await backend.call("POST", "/v1/shares", {"from": "alice"}))[0] == 400
    assert (await backend.call("POST", "/v1/messages",  # not friends: a refusal of the hub core
                               {"as": "alice", "to": "bob", "cmid": "1", "text": "hi"}))[0] == 403
    assert (await backend.call("GET", "/v1/presence?users=a", key="wrong"))[0] == 401
    async with backend.session.get(f"{backend.base}/metrics") as response:
        samples = _samples(await response.text())
    requests = {labels: value for (name, labels), value in samples.items()
                if name == "clipwire_api_requests_total"}
    assert requests == {
        (("endpoint", "/v1/users/{user}/disconnect"), ("status", "200")): 2,
        (("endpoint", "/v1/shares"), ("status", "400")): 1,
        (("endpoint", "/v1/messages"), ("status", "403")): 1,
        (("endpoint", "/v1/presence"), ("status", "401")): 1,
    }
    latency = (("endpoint", "/v1/users/{user}/disconnect"),)
    assert samples["clipwire_api_request_seconds_count", latency] == 2
    # Not counted as WebSocket frames, nor as their error replies.
    assert not {key: value for key, value in samples.items()
                if key[0] in ("clipwire_frames_in_total", "clipwire_errors_total") and value}


async def test_groups_as_a_user_obey_the_dm_policy_and_the_system_does_not(
    api: tuple[ClipwireServer, Backend]
) -> None:
    _, backend = api
    made = await backend.ok("POST", "/v1/groups", {"as": "ivy", "members": ["jon"], "title": "t"})
    assert made["refused"] == ["jon"]  # not friends, as for a client
    added = await backend.ok("POST", f"/v1/groups/{made['conv']}/members", {"as": "ivy", "add": ["jon"]})
    assert added == {"refused": ["jon"]}
    trusted = await backend.ok("POST", "/v1/groups", {"members": ["ivy", "jon"], "title": "s"})
    assert trusted["refused"] == []
    assert await backend.ok("POST", f"/v1/groups/{trusted['conv']}/members", {"add": ["kim"]}) == {
        "refused": []}
