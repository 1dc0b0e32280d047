"""How one hub node reaches the clients of the others, through a :class:`Broker`.

Channels: ``c:<conv>`` carries a conversation's events and is subscribed by
every node with a connected member; ``u:<user>`` carries what is for one user
(friend and presence events, being added to a conversation) and is subscribed
by the nodes where that user is connected. A message therefore costs one
publish however many nodes there are, and Redis sends it only to the nodes that
have someone to give it to. Each envelope names the users it is for, so a
receiving node needs no membership of its own to deliver it, and names its
origin, so a node never delivers its own event twice.

Envelope: 4-byte length, orjson header ``{n: node, u: users, c: conv, s: seq,
k: kind}``, then the already-encoded frame. Kinds: ``d`` deliver, ``m`` a
conversation's membership changed (drop it from the cache, resubscribe), ``s``
a user's friends or blocks changed (drop the cached record), ``p`` a presence
change for the connections watching a user (channel ``p:<user>``), ``r`` a
user's tokens issued before ``b`` (ms) were revoked and ``x`` a user was
disconnected by the application (channel ``u:<user>``: close their sessions
here, see ``revocation.py``).
"""

from __future__ import annotations

import logging
import secrets
import struct
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import orjson

from .broker.base import Broker

if TYPE_CHECKING:
    from .hub import Hub

log = logging.getLogger("clipwire.cluster")
_LEN = struct.Struct("!I")
FRESH_S = 5.0


def _pack(header: dict[str, Any], data: bytes = b"") -> bytes:
    """``header`` starts with ``n``, the origin node (see ``Cluster._own``)."""
    head = orjson.dumps(header)
    return _LEN.pack(len(head)) + head + data


def _unpack(raw: bytes) -> tuple[dict[str, Any], bytes]:
    (size,) = _LEN.unpack_from(raw)
    return orjson.loads(raw[4 : 4 + size]), raw[4 + size :]


class Cluster:
    def __init__(self, hub: Hub, broker: Broker) -> None:
        self.hub = hub
        self.broker = broker
        self.node = secrets.token_hex(6)
        # Every envelope's header starts with the origin (``_pack`` keeps "n" first), so
        # a node's own events, which Redis sends back to it on every channel it shares
        # with other nodes, are dropped before their header is parsed.
        self._own = b'{"n":"' + self.node.encode() + b'"'
        self._channel_users: dict[str, set[str]] = {}  # channel -> local users needing it
        self._fresh: dict[str, float] = {}  # conv -> until when it is routed by user
        # Followed conv -> highest seq this node has delivered (or knew of when it began
        # to follow): where a catch-up's gap starts. Not the conversation cache, which may
        # not hold the conversation, or may have reloaded it from the store.
        self._seen: dict[str, int] = {}
        self.received = 0

    async def start(self) -> None:
        await self.broker.start(self._arrived, self._reset)

    async def close(self) -> None:
        await self.broker.close()

    # -- subscriptions --------------------------------------------------------

    async def user_here(self, user: str, convs: Mapping[str, int]) -> None:
        """A user's first device connected to this node: follow them and their conversations
        (``convs``: each conversation's ``last_seq`` as the welcome read it)."""
        for conv, last_seq in convs.items():
            if f"c:{conv}" not in self._channel_users:
                self._seen[conv] = last_seq
        await self._follow(user, [f"u:{user}", *(f"c:{c}" for c in convs)])

    async def user_gone(self, user: str) -> None:
        """A user's last device left this node."""
        channels = [ch for ch, users in self._channel_users.items() if user in users]
        await self._unfollow(user, channels)

    async def _follow(self, user: str, channels: Iterable[str]) -> None:
        new = []
        for channel in channels:
            users = self._channel_users.setdefault(channel, set())
            if not users:
                new.append(channel)
            users.add(user)
        if new:
            await self.broker.subscribe(new)

    async def _unfollow(self, user: str, channels: Iterable[str]) -> None:
        gone = []
        for channel in channels:
            users = self._channel_users.get(channel)
            if users is None:
                continue
            users.discard(user)
            if not users:
                del self._channel_users[channel]
                gone.append(channel)
                if channel.startswith("c:"):
                    self.hub.convs.forget(channel[2:])
                    self._seen.pop(channel[2:], None)
        if gone:
            await self.broker.unsubscribe(gone)

    # -- outgoing -------------------------------------------------------------

    def forward(self, users: Iterable[str], data: bytes, conv: str | None, seq: int | None,
                ephemeral: bool = False) -> None:
        """Publish an event the local delivery has already handled, for the other nodes."""
        targets = list(users)
        if not targets:
            return
        header: dict[str, Any] = {"n": self.node, "k": "d", "u": targets}
        if ephemeral:
            header["e"] = 1
        if conv is not None:
            header["c"] = conv
            if seq is not None:
                header["s"] = seq  # keeps the receivers' last_seq current
                self.saw(conv, seq)
            if not self._is_fresh(conv):
                self.broker.publish(f"c:{conv}", _pack(header, data))
                return
        for user in targets:
            self.broker.publish(f"u:{user}", _pack({**header, "u": [user]}, data))

    def _is_fresh(self, conv: str) -> bool:
        expiry = self._fresh.get(conv)
        if expiry is None:
            return False
        if expiry > time.monotonic():
            return True
        del self._fresh[conv]
        return False

    def _mark_fresh(self, conv: str) -> None:
        """For a while after a membership change, nodes may still be subscribing to
        the conversation's channel: route its events by user channel meanwhile."""
        now = time.monotonic()
        if len(self._fresh) > 10_000:
            self._fresh = {c: t for c, t in self._fresh.items() if t > now}
        self._fresh[conv] = now + FRESH_S

    async def watch_presence(self, watcher: str, users: Iterable[str]) -> None:
        """``watcher`` (connected here) follows the presence of ``users`` on any node."""
        await self._follow(watcher, [f"p:{user}" for user in users])

    def forward_presence(self, user: str, data: bytes, skip: Iterable[str]) -> None:
        header = {"n": self.node, "k": "p", "u": [user], "x": sorted(skip)}
        self.broker.publish(f"p:{user}", _pack(header, data))

    def membership_changed(self, conv: str, users: Iterable[str]) -> None:
        """Tell nodes holding ``conv`` (and those of ``users``, maybe new to it) to reload it."""
        self._mark_fresh(conv)
        envelope = _pack({"n": self.node, "k": "m", "c": conv})
        self.broker.publish(f"c:{conv}", envelope)
        for user in users:
            self.broker.publish(f"u:{user}", envelope)

    def social_changed(self, users: Iterable[str]) -> None:
        for user in users:
            self.broker.publish(f"u:{user}", _pack({"n": self.node, "k": "s", "u": [user]}))

    def revoked(self, user: str, before_ms: int) -> None:
        """Tell the nodes where ``user`` is connected to close sessions on older tokens."""
        self.broker.publish(f"u:{user}", _pack({"n": self.node, "k": "r", "u": [user], "b": before_ms}))

    def disconnected(self, user: str) -> None:
        """Tell the nodes where ``user`` is connected to close every session of theirs."""
        self.broker.publish(f"u:{user}", _pack({"n": self.node, "k": "x", "u": [user]}))

    # -- incoming -------------------------------------------------------------

    def _arrived(self, channel: str, raw: bytes) -> None:
        if raw.startswith(self._own, 4):
            return
        header, data = _unpack(raw)
        if header["n"] == self.node:
            return
        self.received += 1
        kind = header["k"]
        if kind == "d":
            conv_id, seq = header.get("c"), header.get("s")
            if conv_id is not None and seq is not None:
                self.hub.convs.advanced(conv_id, seq)
                self.saw(conv_id, seq)
            self.hub.deliver_local(header["u"], data, None, bool(header.get("e")))
        elif kind == "m":
            self._mark_fresh(header["c"])
            self.hub.convs.forget(header["c"])
            self.hub.spawn(self.follow_conv(header["c"]))
        elif kind == "p":
            self.hub.social.to_watchers(header["u"][0], data, set(header["x"]))
        elif kind == "s":
            for user in header["u"]:
                self.hub.social.graph.forget(user)
        elif kind == "r":
            for user in header["u"]:
                self.hub.revocations.close_revoked(user, int(header["b"]))
        elif kind == "x":
            for user in header["u"]:
                self.hub.revocations.close_all(user)

    def followed_convs(self) -> list[str]:
        return [ch[2:] for ch in self._channel_users if ch.startswith("c:")]

    def seen(self, conv: str) -> int | None:
        """The highest seq of ``conv`` delivered here, if it is followed."""
        return self._seen.get(conv)

    def saw(self, conv: str, seq: int) -> None:
        """Message ``seq`` of ``conv`` was delivered here (kept for followed conversations)."""
        known = self._seen.get(conv)
        if known is None and f"c:{conv}" not in self._channel_users:
            return
        if known is None or seq > known:
            self._seen[conv] = seq

    async def follow_conv(self, conv_id: str) -> None:
        """Follow ``conv_id`` exactly while one of its members is connected here."""
        conv = await self.hub.convs.get(conv_id)
        members = set(conv.members) if conv is not None else set()
        channel = f"c:{conv_id}"
        here = {u for u in members if u in self.hub.sessions}
        before = set(self._channel_users.get(channel, ()))
        if here and not before and conv is not None:
            self._seen[conv_id] = conv.last_seq
        for user in here - before:
            await self._follow(user, [channel])
        for user in before - here:
            await self._unfollow(user, [channel])

    def _reset(self) -> None:
        """The broker lost events: every local client gets a gap for each of its conversations."""
        log.warning("broker reset: asking local clients to catch up")
        self.hub.spawn(self.hub.catch_up_all())
