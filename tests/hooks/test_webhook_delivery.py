"""Webhook delivery against a backend that is slow, down, failing or nonsensical.

Whatever the backend does, messages are stored and delivered at once, and the
sender's memory stays within its bounds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterator

import pytest
from aiohttp import web
from conftest import Hooked
from hookhelp import Backend, answer, until, unused_port
from wire import Dial, RawClient

from clipwire.server.webhooks import WebhookSender

PROMPT_S = 0.25  # far below one webhook round trip of the slow backend


async def chat(alice: RawClient, bob: RawClient, count: int) -> list[float]:
    """``count`` messages alice to bob; each one's time from send to bob's socket."""
    latencies = []
    for n in range(count):
        started = time.monotonic()
        ok = await alice.ok("send", to="bob", cmid=f"m{n}", text=f"message {n}")
        await bob.event("msg", conv=ok["conv"], seq=ok["seq"])
        latencies.append(time.monotonic() - started)
    return latencies


def sender_of(server: object) -> WebhookSender:
    webhooks = getattr(server, "webhooks", None)
    assert isinstance(webhooks, WebhookSender)
    return webhooks


async def test_slow_backend_does_not_slow_messages(hooked: Hooked, dial: Dial, backend: Backend) -> None:
    backend.webhook_script = answer(204, raw=b"", delay_s=2.0)
    server = await hooked(webhook_events="all", webhook_timeout_s=5.0, webhook_flush_s=0.3)
    alice, bob = await dial(server.url, "alice"), await dial(server.url, "bob")

    latencies = await chat(alice, bob, 30)
    assert max(latencies) < PROMPT_S, latencies
    assert sum(latencies) < 2.0  # all thirty in less than the backend takes for one POST
    webhooks = sender_of(server)
    assert webhooks.queue_depth > 0 and webhooks.stats.sent == 0  # waiting, not lost

    # Shutdown waits for the backend no longer than the flush deadline; the rest is counted.
    started = time.monotonic()
    await server.close()
    assert time.monotonic() - started < 1.5
    assert webhooks.stats.dropped > 0 and webhooks.queue_depth == 0


@pytest.fixture
def webhook_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    with caplog.at_level(logging.WARNING, logger="clipwire.webhooks"):
        yield caplog


async def test_down_backend_retries_then_drops_within_bounds(
        hooked: Hooked, dial: Dial, webhook_log: pytest.LogCaptureFixture) -> None:
    server = await hooked(webhook_url=f"http://127.0.0.1:{unused_port()}/webhooks",
                          webhook_events="all", webhook_queue_max=5, webhook_batch_max=2,
                          webhook_retries=2, webhook_backoff_s=0.02, webhook_flush_s=0.2)
    webhooks = sender_of(server)
    alice, bob = await dial(server.url, "alice"), await dial(server.url, "bob")

    depths = []
    started = time.monotonic()
    for n in range(40):
        await alice.ok("send", to="bob", cmid=f"m{n}", text=f"message {n}")
        depths.append(webhooks.queue_depth)
    await bob.event("msg", seq=40)
    assert time.monotonic() - started < 40 * PROMPT_S
    assert max(depths) <= 5 + 2  # the queue bound, plus the batch in flight

    await until(lambda: webhooks.stats.failed > 0)
    stats = webhooks.stats
    assert stats.dropped > 0 and stats.retries >= 2 and stats.sent == 0
    metrics = server.hub.metrics.render().decode()
    assert 'clipwire_webhook_dropped_total{reason="queue_full"}' in metrics
    assert "clipwire_webhook_failed_total" in metrics
    drops = [r for r in webhook_log.records if "dropped" in r.getMessage()]
    assert len(drops) == 1  # dozens of drops, one line (rate-limited)
    assert any("gave up" in r.getMessage() for r in webhook_log.records)

    # Offline pushes waiting out their grace have the same bound.
    group = (await alice.ok("group.create", members=[f"offline-{n}" for n in range(10)],
                            title="big"))["conv"]
    await alice.ok("send", conv=group, cmid="g1", text="hello all")
    await until(lambda: webhooks.pending_pushes == 5)
    registry = server.hub.metrics.registry
    assert registry.get_sample_value("clipwire_webhook_dropped_total", {"reason": "push_backlog"}) == 5


async def test_server_errors_are_retried_with_the_same_webhook_id(
        hooked: Hooked, dial: Dial, backend: Backend) -> None:
    statuses = iter([500, 503, 429])

    async def flaky(request: web.Request) -> web.StreamResponse:
        return web.Response(status=next(statuses, 204))

    backend.webhook_script = flaky
    server = await hooked()
    await dial(server.url, "bob")
    await backend.wait_events("presence")
    first, *_, last = backend.deliveries
    assert [d.status for d in backend.deliveries] == [500, 503, 429, 204]
    assert {d.webhook_id for d in backend.deliveries} == {first.webhook_id}
    assert first.body == last.body and all(d.verified for d in backend.deliveries)
    stats = sender_of(server).stats
    await until(lambda: stats.sent == 1)
    assert (stats.sent, stats.failed, stats.retries) == (1, 0, 3)


async def test_client_errors_are_not_retried(hooked: Hooked, dial: Dial, backend: Backend) -> None:
    backend.webhook_script = answer(400, {"error": "nope"})
    server = await hooked()
    await dial(server.url, "bob")
    await backend.wait_deliveries(1)
    await until(lambda: sender_of(server).stats.failed == 1)
    await asyncio.sleep(0.2)
    assert len(backend.deliveries) == 1 and sender_of(server).stats.retries == 0


@pytest.fixture
async def garbage_server() -> AsyncIterator[int]:
    """A 'backend' answering every request with bytes that are not HTTP."""

    async def babble(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)
        writer.write(b"\x00\xffthis is not HTTP\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(babble, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()


async def test_garbage_answers_count_as_failures(hooked: Hooked, dial: Dial, garbage_server: int) -> None:
    server = await hooked(webhook_url=f"http://127.0.0.1:{garbage_server}/webhooks",
                          webhook_retries=1, webhook_backoff_s=0.01)
    alice, bob = await dial(server.url, "alice"), await dial(server.url, "bob")
    assert max(await chat(alice, bob, 5)) < PROMPT_S
    await until(lambda: sender_of(server).stats.failed >= 1)
    assert sender_of(server).stats.sent == 0 and sender_of(server).stats.retries >= 1
