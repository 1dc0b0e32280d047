"""Rate limits on server-API calls made ``as`` a user: a call cannot come back as the
same session, so a refusal promises nothing and sets nothing aside from the user's limit."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import aiohttp
from wire import Dial, HubFactory

KEY = "backend-api-key-for-tests"


async def test_refused_calls_as_a_user_do_not_sink_the_users_limit(
    hub_factory: HubFactory, dial: Dial
) -> None:
    # alice's devices together: 10 sends a second, burst 20.
    hub = await hub_factory(api_key=KEY, api_port=0, rate_send_per_s=5.0, rate_user_scale=2.0)
    assert hub.api is not None
    url = f"http://127.0.0.1:{hub.api.port}/v1/messages"
    refused: list[tuple[dict[str, Any], dict[str, Any], str]] = []
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {KEY}"}) as http:

        async def send(cmid: str) -> tuple[int, dict[str, Any], str | None]:
            body = {"as": "alice", "to": "bob", "cmid": cmid, "text": "x"}
            async with http.post(url, json=body) as response:
                return response.status, await response.json(), response.headers.get("Retry-After")

        for n in range(200):  # a backend that hammers on through its 429s
            status, answer, header = await send(f"a{n}")
            if status != 200:
                assert (status, answer["error"]) == (429, "rate_limited"), answer
                assert header is not None
                refused.append(({"cmid": f"a{n}"}, answer, header))
        assert len(refused) >= 100
        for _, answer, header in refused:
            # The time of the next token (a tenth of a second), not of a queue of debt.
            assert 0 < answer["retry_after_ms"] <= 101, answer
            assert int(header) == math.ceil(answer["retry_after_ms"] / 1000)
        # A backend that waits as told is then accepted.
        request, answer, _ = refused[-1]
        await asyncio.sleep(answer["retry_after_ms"] / 1000)
        assert (await send(request["cmid"]))[0] == 200
    # alice's own phone is not locked out by the backend's refusals.
    phone = await dial(hub.url, "alice", device="phone")
    reply = await phone.call("send", to="bob", cmid="phone1", text="x")
    assert reply["t"] == "ok" or reply["retry_after_ms"] <= 101, reply
