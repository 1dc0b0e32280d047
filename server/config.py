"""Every hub setting in one frozen dataclass, with units in the names.

Each field is also a command-line flag (``--max-frame-bytes``) and an
environment variable (``CLIPWIRE_MAX_FRAME_BYTES``); ``help`` in the field's
metadata is what ``clipwire serve --help`` prints. ``HubConfig.check`` names the
offending setting when a value cannot work.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any
from urllib.parse import urlsplit

from clipwire.protocol import DEFAULT_LIMITS, Limits

ENV_PREFIX = "CLIPWIRE_"
# What --webhook-events may name (besides "all"); see webhooks.py for the events of each.
WEBHOOK_EVENT_GROUPS = ("push", "presence", "share", "messages", "reactions")
#: Settings that take one of a few words: checked at start-up and shown by --help.
#: Upper-case words are matched in any case (``--log-level debug``).
CHOICES: dict[str, tuple[str, ...]] = {
    "jwt_algorithm": ("HS256", "RS256", "ES256"),
    "transport": ("websockets", "picows"),
    "dm_policy": ("friends", "everyone"),
    "card_resolver_failure": ("refuse", "unverified"),
    "sqlite_synchronous": ("FULL", "NORMAL", "EXTRA"),
    "log_level": ("DEBUG", "INFO", "WARNING", "ERROR"),
    "log_format": ("text", "json"),
}
# Boolean environment variables: anything else is an error, never "off".
# The shortest HS256 secret accepted outside --demo: as long as the hash (RFC 7518, 3.2).
MIN_SECRET_BYTES = 32
_TRUE_WORDS = ("1", "true", "yes", "on")
_FALSE_WORDS = ("0", "false", "no", "off")


def _setting(default: Any, help: str, *, secret: bool = False) -> Any:
    return field(default=default, metadata={"help": help, "secret": secret})


class ConfigError(ValueError):
    """A setting has a value the hub cannot start with; the message names it."""


@dataclass(frozen=True, slots=True)
class HubConfig:
    host: str = _setting("127.0.0.1", "address to listen on")
    port: int = _setting(8765, "port for WebSocket (/ws) and health (/healthz); 0 picks one")
    api_host: str = _setting("127.0.0.1", "address of the server API (HTTP, for the app's backend)")
    api_port: int = _setting(8766, "port of the server API; 0 picks one")
    api_key: str | None = _setting(
        None, "key the backend sends as Authorization: Bearer ...; the API is off without one",
        secret=True,
    )
    system_user: str = _setting(
        "system", "user id of messages the backend sends as the system (reserved: no token or "
        "`as` may name it)"
    )
    workers: int = _setting(1, "hub processes sharing the port (more than 1 needs --redis-url)")
    reuse_port: bool = _setting(False, "listen with SO_REUSEPORT, so several processes share the port")
    db: str = _setting("./clipwire.db", "SQLite database file (when no --database-url is given)")
    database_url: str | None = _setting(
        None, "PostgreSQL URL of a store shared by several nodes, e.g. postgresql://host/db",
        secret=True,
    )
    redis_url: str | None = _setting(
        None, "Redis URL joining this hub to others (pub/sub, presence, users' rate limits), "
        "e.g. redis://host:6379/0",
        secret=True,
    )
    presence_ttl_s: float = _setting(
        15.0, "with Redis: heartbeat lifetime; a dead node's users go offline within 4/3 of it"
    )
    revocation_check_s: float = _setting(
        15.0, "seconds between re-reads of the store's revocations for the users connected here: "
        "a session on a revoked token ends within this even if the other nodes' message is lost"
    )
    migrate_on_start: bool = _setting(
        False, "bring the PostgreSQL schema up to date at start (else run `clipwire migrate`)"
    )
    secret: str | None = _setting(
        None, "HS256 secret the app backend signs tokens with (default: created beside --db)",
        secret=True,
    )
    jwt_algorithm: str = _setting("HS256", "token algorithm: HS256, RS256 or ES256")
    jwt_public_key_file: str | None = _setting(None, "PEM public key for RS256/ES256 tokens")
    jwt_leeway_s: float = _setting(5.0, "clock skew allowed when checking token expiry")
    jwt_audience: str | None = _setting(None, "when set, tokens must carry this 'aud'")
    jwt_issuer: str | None = _setting(None, "when set, tokens must carry this 'iss'")
    allowed_origins: str | None = _setting(
        None, "comma-separated Origins browsers may connect from (e.g. https://app.example); "
        "clients sending no Origin (native apps) are always served"
    )
    demo: bool = _setting(
        False, "serve the web demo at / and a token endpoint signing in ANY user at /demo/token: "
        "for trying Clipwire on your machine, never in production"
    )
    max_connections: int = _setting(100_000, "connections this hub accepts; more get HTTP 503")
    max_devices_per_user: int = _setting(
        10, "connections one user may hold on this hub; one more is refused with 4008"
    )
    handshake_timeout_s: float = _setting(10.0, "seconds a client has to finish the HTTP upgrade")
    ping_interval_s: float = _setting(20.0, "seconds between keepalive pings")
    ping_timeout_s: float = _setting(
        20.0, "seconds without a pong before a frozen client is dropped (bound: interval + this)"
    )
    permessage_deflate: bool = _setting(
        False, "offer compression; decompressed frames stay bound by --max-frame-bytes"
    )
    transport: str = _setting(
        "websockets", "WebSocket implementation: websockets, or picows (less CPU per frame; "
        "pip install 'clipwire[picows]'; no --permessage-deflate)"
    )
    dm_policy: str = _setting(
        "friends", "who may start a DM, or add whom to a group: friends (both are friends) or everyone "
        "(open apps, load tests)"
    )
    dm_policy_url: str | None = _setting(
        None, "backend URL deciding DMs instead of --dm-policy: GET with {sender} and {recipient} "
        'filled in, answering {"allow": true} or false; a timeout, error or other answer refuses',
        secret=True,
    )
    card_resolver_url: str | None = _setting(
        None, "backend URL giving a shared video's card: GET with {id} filled in, answering "
        "{url, thumb?, caption?, author?, duration_ms?}; a 404 refuses the share (not_found)",
        secret=True,
    )
    card_resolver_failure: str = _setting(
        "refuse", "when --card-resolver-url gives no card (timeout, error, bad answer): refuse "
        "(unavailable) or unverified (deliver the sender's card marked verified: false)"
    )
    hook_timeout_s: float = _setting(0.5, "seconds --dm-policy-url and --card-resolver-url may take")
    hook_cache_ttl_s: float = _setting(
        10.0, "seconds a DM-policy or card answer is reused (0: ask every time)"
    )
    hook_cache_size: int = _setting(10_000, "most answers each backend hook keeps cached")
    hook_allow_http: bool = _setting(
        False, "allow http:// (not https://) webhook, DM-policy and card-resolver URLs on hosts "
        "other than loopback (a private network you trust); loopback http is always allowed"
    )
    webhook_url: str | None = _setting(
        None, "backend URL the hub POSTs signed JSON webhook events to (off when unset)", secret=True
    )
    webhook_secret: str | None = _setting(
        None, "HMAC-SHA256 key of the Clipwire-Signature header; required with --webhook-url",
        secret=True,
    )
    webhook_events: str = _setting(
        "push,presence,share", "webhook event groups, comma-separated: push (message.created for "
        "recipients with no device connected), presence, share (sent, opened, replied), messages "
        "(every message.stored), reactions; all = every group"
    )
    webhook_grace_s: float = _setting(
        3.0, "seconds before an offline recipient's push; connecting or reading within it cancels it"
    )
    webhook_queue_max: int = _setting(
        10_000, "most webhook events queued (and offline pushes waiting); beyond it they are dropped"
    )
    webhook_batch_max: int = _setting(100, "most events in one webhook POST")
    webhook_timeout_s: float = _setting(5.0, "seconds one webhook POST may take")
    webhook_retries: int = _setting(5, "retries of a failed webhook POST before its events are given up")
    webhook_backoff_s: float = _setting(0.5, "first retry delay of a webhook POST; doubles each retry")
    webhook_backoff_max_s: float = _setting(30.0, "longest delay between webhook retries")
    webhook_flush_s: float = _setting(5.0, "seconds shutdown waits for queued webhooks to be sent")
    hello_timeout_s: float = _setting(10.0, "seconds a new connection has to send hello")
    max_frame_bytes: int = _setting(64 * 1024, "largest accepted frame; larger closes with 1009")
    max_depth: int = _setting(8, "deepest nesting of maps and arrays in a frame")
    max_text_chars: int = _setting(4000, "longest message text")
    max_group_members: int = _setting(1000, "most members a group may have")
    max_share_targets: int = _setting(100, "most users and groups one share may reach")
    resume_cap: int = _setting(200, "messages pushed per conversation on resume before a gap")
    resume_total_max: int = _setting(
        2000, "messages pushed on one resume in all; later conversations get only a gap"
    )
    send_buffer_bytes: int = _setting(
        1024 * 1024, "bytes queued to one slow client before it is closed with 4009"
    )
    commit_batch_max: int = _setting(1000, "most messages written in one transaction")
    commit_pending_max: int = _setting(20_000, "most messages waiting for the store")
    rate_send_per_s: float = _setting(
        20.0, "messages a connection may send per second (burst twice that; a share counts "
        "each target; a user's devices together get --rate-user-scale times a connection's)"
    )
    rate_history_per_s: float = _setting(5.0, "history requests per second per connection")
    rate_friend_per_s: float = _setting(
        0.5, "friend requests per second per connection (block and unblock: as many again)"
    )
    rate_presence_per_s: float = _setting(
        100.0, "users a connection may ask the presence of per second (burst twice that, at "
        "least 500: the most one connection may watch)"
    )
    rate_social_per_s: float = _setting(
        10.0, "reactions, read markers and watch updates per second per connection, each "
        "(burst twice that; read markers at least 64)"
    )
    rate_group_per_s: float = _setting(
        10.0, "members a connection may name per second in group.create, group.add and "
        "group.remove (burst twice that, at least --max-group-members)"
    )
    max_groups_per_user: int = _setting(
        1000, "most groups a user may belong to; adding someone at it refuses them"
    )
    rate_user_scale: float = _setting(
        2.0, "a user's devices together get this many times a connection's rate and burst, "
        "for each kind (typing too); with --redis-url across all nodes, not per node"
    )
    rate_strikes_max: int = _setting(
        20, "strikes (a retry before its retry_after_ms, or a request refused while twice its kind's "
        "burst, at least 64, wait theirs) in a burst (refilled 1 per second) before the connection "
        "is closed with 4008"
    )
    typing_per_s: float = _setting(1.0, "typing signals per second a connection may send (burst 3)")
    watch_ttl_s: float = _setting(600.0, "seconds a watch-together state lives without an update")
    sqlite_synchronous: str = _setting("FULL", "SQLite synchronous mode: FULL or NORMAL")
    log_level: str = _setting("INFO", "logging level: DEBUG, INFO, WARNING or ERROR")
    log_format: str = _setting("text", "log lines as text, or json (one object per line)")

    @property
    def limits(self) -> Limits:
        return Limits(
            max_frame_bytes=self.max_frame_bytes,
            max_depth=self.max_depth,
            max_text_chars=self.max_text_chars,
            max_group_members=self.max_group_members,
            max_share_targets=self.max_share_targets,
            max_str_len=max(self.max_text_chars * 4, DEFAULT_LIMITS.max_str_len),
        )

    def check(self) -> HubConfig:
        """Raise :class:`ConfigError` naming the first setting that cannot work."""
        positive = ("workers", "max_connections", "max_devices_per_user", "handshake_timeout_s",
                    "ping_interval_s", "ping_timeout_s", "max_frame_bytes", "max_depth",
                    "max_text_chars", "max_group_members",
                    "max_share_targets", "resume_cap", "resume_total_max", "send_buffer_bytes",
                    "commit_batch_max", "commit_pending_max", "rate_send_per_s",
                    "rate_history_per_s", "rate_friend_per_s", "rate_presence_per_s",
                    "rate_social_per_s", "rate_group_per_s", "max_groups_per_user",
                    "rate_user_scale", "revocation_check_s")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ConfigError(f"{_env(name)} (--{_flag(name)}) must be positive")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"{_env('port')} (--port) must be between 0 and 65535")
        if self.hello_timeout_s <= 0:
            raise ConfigError(f"{_env('hello_timeout_s')} must be positive")
        for name, words in CHOICES.items():
            value = getattr(self, name)
            if (value.upper() if words[0].isupper() else value) not in words:
                raise ConfigError(f"{_env(name)} must be {', '.join(words[:-1])} or {words[-1]}")
        _check_transport(self)
        if self.typing_per_s <= 0 or self.watch_ttl_s <= 0:
            raise ConfigError(f"{_env('typing_per_s')} and {_env('watch_ttl_s')} must be positive")
        if self.jwt_algorithm == "HS256" and not self.secret:
            raise ConfigError(f"{_env('secret')} is required for HS256 tokens")
        if self.demo and self.jwt_algorithm != "HS256":
            raise ConfigError(f"{_env('demo')} (--demo) signs HS256 tokens: "
                              f"it needs {_env('jwt_algorithm')}=HS256")
        if self.jwt_algorithm != "HS256" and not self.jwt_public_key_file:
            raise ConfigError(f"{_env('jwt_public_key_file')} is required for {self.jwt_algorithm}")
        _check_backend_hooks(self)
        if (self.jwt_algorithm == "HS256" and not self.demo and self.secret is not None
                and len(self.secret.encode()) < MIN_SECRET_BYTES):
            # Anyone who guesses a short secret signs tokens for every user: HS256 keys
            # need at least the hash's size (RFC 7518, 3.2). The demo signs for anyone anyway.
            raise ConfigError(f"{_env('secret')} (--secret) is {len(self.secret.encode())} bytes: "
                              f"an HS256 secret needs at least {MIN_SECRET_BYTES} (try `openssl "
                              "rand -base64 32`), or leave it unset to use the one beside --db")
        return self

    def with_values(self, **values: Any) -> HubConfig:
        return replace(self, **values)

    def reserved_users(self) -> frozenset[str]:
        """User ids the hub acts as itself: no token may name one, no API call act as one."""
        return frozenset({self.system_user})

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, *, config_file: str | None = None,
                 **overrides: Any) -> HubConfig:
        """Defaults, then the TOML file, then ``CLIPWIRE_*`` variables, then ``overrides`` (flags).

        The file is ``config_file``, else ``CLIPWIRE_CONFIG`` if set.
        """
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        path = config_file or environ.get(ENV_PREFIX + "CONFIG")
        if path:
            values.update(read_toml(path))
        for f in fields(cls):
            raw = environ.get(_env(f.name))
            if raw is not None:
                values[f.name] = _parse(f.name, f.default, raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


def read_toml(path: str) -> dict[str, Any]:
    """Settings from a TOML file: top-level keys named as in the table (``max_frame_bytes``)."""
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"cannot read the config file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"the config file {path} is not valid TOML: {exc}") from None
    known = {f.name: f for f in fields(HubConfig)}
    values: dict[str, Any] = {}
    for key, value in data.items():
        name = key.replace("-", "_")
        if name not in known:
            raise ConfigError(f"{path}: unknown setting {key!r} (see `clipwire serve --help`)")
        default = known[name].default
        expected = type(default) if default is not None else str
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            raise ConfigError(f"{path}: {key} must be a {expected.__name__}, not {value!r}")
        values[name] = value
    return values


def describe_settings() -> list[tuple[str, str, str, str]]:
    """(flag, environment variable, default, help) for every setting, for docs and --help."""
    rows = []
    for f in fields(HubConfig):
        default = "" if f.default is None else str(f.default)
        rows.append((f"--{_flag(f.name)}", _env(f.name), default, f.metadata["help"]))
    return rows


def _check_transport(c: HubConfig) -> None:
    if c.transport == "picows":
        if importlib.util.find_spec("picows") is None:
            raise ConfigError(f"{_env('transport')}=picows needs picows: pip install 'clipwire[picows]'")
        if c.permessage_deflate:
            raise ConfigError(f"{_env('permessage_deflate')} needs {_env('transport')}=websockets: "
                              "the picows transport does not compress")


def _check_backend_hooks(c: HubConfig) -> None:
    """The webhook and HTTP hook settings: URLs, placeholders, bounds."""
    for name in ("webhook_url", "dm_policy_url", "card_resolver_url"):
        url = getattr(c, name)
        if url and not url.startswith(("http://", "https://")):
            raise ConfigError(f"{_env(name)} must be an http:// or https:// URL")
        if url and url.startswith("http://") and not c.hook_allow_http and not _loopback(url):
            raise ConfigError(f"{_env(name)} must be https:// (http:// is refused but on loopback: "
                              f"anyone on the path could forge or replay its answers); "
                              f"set {_env('hook_allow_http')} to allow it")
    if c.dm_policy_url and not ("{sender}" in c.dm_policy_url and "{recipient}" in c.dm_policy_url):
        raise ConfigError(f"{_env('dm_policy_url')} must contain {{sender}} and {{recipient}}")
    if c.card_resolver_url and "{id}" not in c.card_resolver_url:
        raise ConfigError(f"{_env('card_resolver_url')} must contain {{id}}")
    if c.webhook_url and not c.webhook_secret:
        raise ConfigError(f"{_env('webhook_secret')} is required with {_env('webhook_url')}")
    names = {n.strip() for n in c.webhook_events.split(",") if n.strip()}
    unknown = names - set(WEBHOOK_EVENT_GROUPS) - {"all"}
    if unknown:
        raise ConfigError(f"{_env('webhook_events')}: unknown {', '.join(sorted(unknown))}; "
                          f"use {', '.join(WEBHOOK_EVENT_GROUPS)} or all")
    for name in ("hook_timeout_s", "webhook_queue_max", "webhook_batch_max", "webhook_timeout_s",
                 "webhook_backoff_s", "webhook_backoff_max_s"):
        if getattr(c, name) <= 0:
            raise ConfigError(f"{_env(name)} (--{_flag(name)}) must be positive")
    for name in ("hook_cache_ttl_s", "hook_cache_size", "webhook_grace_s", "webhook_retries",
                 "webhook_flush_s"):
        if getattr(c, name) < 0:
            raise ConfigError(f"{_env(name)} (--{_flag(name)}) must not be negative")


def _loopback(url: str) -> bool:
    """True if ``url`` names this machine: plain http there never crosses a network."""
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _env(name: str) -> str:
    return ENV_PREFIX + name.upper()


def _flag(name: str) -> str:
    return name.replace("_", "-")


def _parse(name: str, default: Any, raw: str) -> Any:
    if isinstance(default, bool):
        word = raw.strip().lower()
        if word not in _TRUE_WORDS + _FALSE_WORDS:
            raise ConfigError(f"{_env(name)}={raw!r} is not a boolean: use "
                              f"{'/'.join(_TRUE_WORDS)} for on, {'/'.join(_FALSE_WORDS)} for off")
        return word in _TRUE_WORDS
    try:
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
    except ValueError:
        raise ConfigError(f"{_env(name)}={raw!r} is not a {type(default).__name__}") from None
    return raw
