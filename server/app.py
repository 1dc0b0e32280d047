"""Wiring: a store, a hub and a transport, started and stopped together.

This is also how an existing asyncio application embeds Clipwire::

    async with ClipwireServer(HubConfig(secret=SECRET, port=0)) as hub_server:
        print(hub_server.url)   # ws://127.0.0.1:PORT/ws
        ...                     # the rest of the application runs alongside
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from types import TracebackType

from . import startup
from .api import ServerApi
from .auth import TokenVerifier, secret_beside
from .broker.base import Broker, BrokerUnavailable
from .config import ConfigError, HubConfig
from .demo import DemoSite
from .hooks import HttpCardResolver, HttpDmPolicy
from .hub import Hub
from .policy import CardResolver, DmPolicy, HubListener, PolicyFunction
from .store.base import Store, StoreUnavailable
from .store.sqlite import SQLiteStore
from .transport import WS_PATH, TransportServer, start_transport
from .webhooks import WebhookSender

log = logging.getLogger("clipwire.hub")


def make_store(config: HubConfig, *, migrate: bool | None = None) -> Store:
    """The store the settings ask for: PostgreSQL with a database URL, else SQLite."""
    if config.database_url:
        try:
            from .store.postgres import PostgresStore
        except ImportError:
            raise ConfigError(
                "CLIPWIRE_DATABASE_URL needs asyncpg: pip install 'clipwire[postgres]'"
            ) from None
        return PostgresStore(config.database_url,
                             migrate_on_open=config.migrate_on_start if migrate is None else migrate)
    return SQLiteStore(config.db, synchronous=config.sqlite_synchronous)


class ClipwireServer:
    def __init__(self, config: HubConfig, *, store: Store | None = None,
                 policy: DmPolicy | PolicyFunction | None = None, broker: Broker | None = None,
                 resolver: CardResolver | None = None, listeners: Iterable[HubListener] = (),
                 reuse_port: bool = False) -> None:
        if config.secret is None and config.jwt_algorithm == "HS256":
            config = config.with_values(secret=secret_beside(config.db))
        self.config = config.check()
        self.store: Store = store or make_store(self.config)
        verifier = TokenVerifier.from_settings(config.jwt_algorithm, config.secret,
                                               config.jwt_public_key_file, config.jwt_leeway_s,
                                               config.jwt_audience, config.jwt_issuer,
                                               reserved=config.reserved_users())
        presence = usage = None
        if broker is None and self.config.redis_url:
            from .broker.redis import RedisBroker, RedisPresence, RedisUsage

            broker = RedisBroker(self.config.redis_url)
            presence = RedisPresence(broker, ttl_s=self.config.presence_ttl_s)
            usage = RedisUsage(broker)  # users' rate limits counted across the nodes
        # The backend's HTTP hooks stand in for settings, never for objects passed here.
        dm_hook = HttpDmPolicy.from_config(self.config) if policy is None else None
        card_hook = HttpCardResolver.from_config(self.config) if resolver is None else None
        self.hub = Hub(self.config, self.store, verifier, policy or dm_hook, broker=broker,
                       presence=presence, usage=usage, resolver=resolver or card_hook)
        self.hub.listeners.extend(listeners)
        self._hooks: list[HttpDmPolicy | HttpCardResolver] = [h for h in (dm_hook, card_hook) if h]
        for hook in self._hooks:
            hook.register(self.hub.metrics.registry)
        self.webhooks = WebhookSender.from_config(self.hub) if self.config.webhook_url else None
        if self.webhooks is not None:
            self.hub.listeners.append(self.webhooks)
        if presence is not None:
            broker.observe_publish = self.hub.metrics.publish.observe  # type: ignore[union-attr]
        self._reuse_port = reuse_port
        self.demo: DemoSite | None = None
        if self.config.demo:
            self.demo = DemoSite(self.config)
        self.api: ServerApi | None = None
        self._server: TransportServer | None = None
        self.port = config.port

    @property
    def url(self) -> str:
        return f"ws://{self.config.host}:{self.port}{WS_PATH}"

    async def start(self) -> None:
        """Open the store, join the broker, listen; on failure undo it all and raise one of
        :data:`startup.FAILURES`, whose message names the cause and what to change."""
        try:
            await self._start()
        except BaseException:
            await self.close()  # the store's threads would otherwise keep the process alive
            raise

    async def _start(self) -> None:
        config = self.config
        try:
            await self.store.open()
        except StoreUnavailable as exc:
            raise startup.store_failed(config, exc) from exc
        try:
            await self.hub.start()
        except BrokerUnavailable as exc:
            raise startup.broker_failed(config, exc) from exc
        if self.webhooks is not None:
            await self.webhooks.start()
        try:
            self._server = await start_transport(
                self.hub, config.host, config.port, reuse_port=self._reuse_port,
                routes=self.demo.route if self.demo is not None else None,
            )
        except OSError as exc:
            raise startup.cannot_listen(exc, config.host, config.port) from exc
        self.port = self._server.port
        if config.api_key:
            self.api = ServerApi(self.hub, config.api_key)
            try:
                await self.api.start(config.api_host, config.api_port)
            except OSError as exc:
                raise startup.cannot_listen(exc, config.api_host, config.api_port, api=True) from exc
        log.info("serving %s (store %s, transport %s)", self.url, self.config.db, self.config.transport)

    async def close(self, *, drain: bool = False) -> None:
        """Stop listening, disconnect clients, write what is queued, close the store.

        ``drain`` is the SIGTERM path: clients are closed with 4010 (reconnect now).
        """
        if self._server is not None:
            self._server.stop_accepting()
        if self.api is not None:
            await self.api.close()
            self.api = None
        await self.hub.close(drain=drain)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        if self.webhooks is not None:  # every departure has been told: flush, within a deadline
            await self.webhooks.close()
        for hook in self._hooks:
            await hook.close()
        await self.hub.disconnect()
        await self.store.close()

    async def serve_forever(self) -> None:
        try:
            await asyncio.Future()
        finally:
            await self.close()

    async def __aenter__(self) -> ClipwireServer:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()
