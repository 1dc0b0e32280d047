"""Transport: /ws, /healthz, 404s, the clipwire.v1 subprotocol, no compression, shutdown."""

from __future__ import annotations

import asyncio

import pytest
from websockets.exceptions import InvalidStatus
from wire import Dial, HubFactory, RawClient, http_get, token

from clipwire.server import ClipwireServer


async def test_healthz_answers_ok_over_plain_http(hub: ClipwireServer) -> None:
    status, content_type, body = await asyncio.to_thread(http_get, hub.port, "/healthz")
    assert (status, body) == (200, "ok\n")
    assert content_type.startswith("text/plain")
    # With a query string too, as load balancers sometimes add one.
    assert (await asyncio.to_thread(http_get, hub.port, "/healthz?probe=1"))[0] == 200


async def test_healthz_over_raw_asyncio_streams(hub: ClipwireServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", hub.port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    await writer.drain()
    response = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    await writer.wait_closed()
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert body == b"ok\n"


@pytest.mark.parametrize("path", ["/", "/index.html", "/wss", "/ws/extra", "/healthz/x", "/api/ws"])
async def test_other_paths_are_404(hub: ClipwireServer, path: str) -> None:
    status, _, body = await asyncio.to_thread(http_get, hub.port, path)
    assert status == 404
    assert "/ws" in body


async def test_websocket_on_another_path_is_refused_with_404(hub: ClipwireServer) -> None:
    with pytest.raises(InvalidStatus) as refused:
        await RawClient.open(hub.url.replace("/ws", "/chat"))
    assert refused.value.response.status_code == 404


async def test_subprotocol_is_selected_when_offered(hub: ClipwireServer, dial: Dial) -> None:
    client = await dial(hub.url, ws_options={"subprotocols": ["clipwire.v1"]})
    assert client.ws.subprotocol == "clipwire.v1"
    assert (await client.hello(token("alice")))["user"] == "alice"

    among_others = await dial(hub.url, ws_options={"subprotocols": ["chat.v9", "clipwire.v1"]})
    assert among_others.ws.subprotocol == "clipwire.v1"


async def test_clients_offering_no_subprotocol_are_served(hub: ClipwireServer, dial: Dial) -> None:
    plain = await dial(hub.url)
    assert plain.ws.subprotocol is None
    assert "Sec-WebSocket-Protocol" not in plain.ws.response.headers
    assert (await plain.hello(token("alice")))["user"] == "alice"
    assert (await plain.ok("send", to="bob", cmid="c", text="hi"))["seq"] == 1


async def test_permessage_deflate_is_off(hub: ClipwireServer, dial: Dial) -> None:
    client = await dial(hub.url, ws_options={"compression": "deflate"})  # offered, declined
    assert "Sec-WebSocket-Extensions" not in client.ws.response.headers
    assert (await client.hello(token("alice")))["t"] == "ok"


async def test_token_in_the_query_string_is_ignored(hub_factory: HubFactory, dial: Dial) -> None:
    server = await hub_factory(hello_timeout_s=0.3)
    client = await dial(f"{server.url}?token={token('alice')}")
    assert (await client.closed())[0] == 4002


async def test_hub_shutdown_closes_every_client_with_1001(hub_factory: HubFactory, dial: Dial) -> None:
    server = await hub_factory()
    alice, bob = await dial(server.url, "alice"), await dial(server.url, "bob")
    await alice.ok("send", to="bob", cmid="c", text="hi")
    not_yet = await dial(server.url)  # connected, no hello yet
    async with asyncio.timeout(5):  # not held up by the 10 s hello timeout
        await server.close()
    for client in (alice, bob, not_yet):
        assert (await client.closed())[0] == 1001


async def test_a_restarted_hub_on_the_same_database_sees_everything(
    hub_factory: HubFactory, dial: Dial
) -> None:
    first = await hub_factory()
    alice = await dial(first.url, "alice")
    conv = (await alice.ok("send", to="bob", cmid="c", text="kept"))["conv"]
    await first.close()
    second = await hub_factory()
    bob = await dial(second.url, "bob")
    assert [c["conv"] for c in bob.welcome["convs"]] == [conv]
    assert [m["text"] for m in (await bob.ok("history", conv=conv))["messages"]] == ["kept"]
