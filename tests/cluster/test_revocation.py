"""Revoke and disconnect through the server API of one node reach the user's sessions on
every node (SECURITY.md: a stolen token), and a revocation whose broker event was lost
still ends them within ``revocation_check_s``."""

from __future__ import annotations

import socket
import time
from typing import Any

import aiohttp
from clusterhelp import NodeProcess, Rig, node_args
from wire import SECRET, Dial, RawClient

from clipwire.server import sign_token
from clipwire.server.store.postgres import PostgresStore

KEY = "backend-api-key-for-tests"
#: Within this the other node has closed the session (the broker's delivery, generously).
REACHED_S = 5.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _two_nodes(rig: Rig, *, check_s: float = 30.0) -> tuple[NodeProcess, NodeProcess, str]:
    """Node 1 serves the API (its base URL is returned); node 2 re-checks every ``check_s``."""
    api_port = _free_port()
    extra = [["--api-key", KEY, "--api-port", str(api_port)], []]
    nodes = [NodeProcess(f"node{i}", rig.workdir,
                         [*node_args(rig.redis_url, rig.dsn), "--revocation-check-s", str(check_s),
                          *extra[i]])
             for i in range(2)]
    rig.nodes += nodes
    for node in nodes:
        node.spawn()
    for node in nodes:
        await node.ready()
    return nodes[0], nodes[1], f"http://127.0.0.1:{api_port}"


async def _api(base: str, path: str, body: Any = None) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http, http.post(
            base + path, json=body, headers={"Authorization": f"Bearer {KEY}"}) as response:
        data: dict[str, Any] = await response.json()
        assert response.status == 200, data
        return data


async def _cannot_send(client: RawClient) -> None:
    try:
        await client.call("send", to="zed", cmid="after", text="still here?", timeout=1.0)
    except Exception:  # the connection is gone: nothing can be sent
        return
    raise AssertionError("a closed session still answered a send")


async def test_revoke_on_one_node_closes_the_session_on_the_other(rig: Rig, dial: Dial) -> None:
    one, two, api = await _two_nodes(rig)
    here, there = await dial(one.url, "mallory"), await dial(two.url, "mallory")
    assert (await there.call("send", to="zed", cmid="before", text="hi"))["t"] == "ok"

    answer = await _api(api, "/v1/users/mallory/revoke", {"before_ms": int(time.time() * 1000) + 1000})
    assert (answer["closed_here"], answer["other_nodes_told"]) == (1, True)
    assert (await here.closed())[0] == 4001
    assert await there.closed(REACHED_S) == (4001, "token revoked")
    await _cannot_send(there)

    again = await RawClient.open(two.url)  # and the old token is refused on node 2 too
    reply = await again.call("hello", v=1, token=sign_token(SECRET, "mallory"))
    assert (reply["code"], reply["message"]) == ("unauthorized", "token revoked")
    await again.close()


async def test_disconnect_on_one_node_closes_the_session_on_the_other(rig: Rig, dial: Dial) -> None:
    _, two, api = await _two_nodes(rig)
    bystander = await dial(two.url, "zed")
    there = await dial(two.url, "mallory")

    answer = await _api(api, "/v1/users/mallory/disconnect")
    assert answer == {"closed_here": 0, "other_nodes_told": True}
    assert await there.closed(REACHED_S) == (4001, "disconnected by the application")
    await _cannot_send(there)
    assert "server_time" in await bystander.ok("ping")  # only mallory's sessions were closed


async def test_a_revocation_whose_event_was_lost_still_ends_the_session(rig: Rig, dial: Dial) -> None:
    _, two, _ = await _two_nodes(rig, check_s=0.5)
    there = await dial(two.url, "mallory")
    # Recorded in the shared store with no broker event, as when Redis lost it.
    store = PostgresStore(rig.dsn)
    await store.open()
    try:
        await store.revoke("mallory", int(time.time() * 1000) + 1000)
    finally:
        await store.close()
    assert await there.closed(REACHED_S) == (4001, "token revoked")
