"""The ``clipwire`` command: ``serve``, ``token`` and ``chat``."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import traceback
from dataclasses import Field, fields
from typing import Any

from . import logs
from .auth import secret_beside, secret_path, sign_token
from .config import CHOICES, ENV_PREFIX, ConfigError, HubConfig
from .startup import EXIT_STARTUP, FAILURES, secret_failed, store_failed
from .store.base import StoreUnavailable

DESCRIPTION = "Clipwire: a real-time messaging hub for in-app chat and video sharing."

# --help shows the settings in these groups, in this order. A name ending in "_" is a
# prefix; the first match wins. A setting in no group lands in "other settings", which
# tests/test_startup.py refuses: a new setting needs a place here.
HELP_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("network", ("host", "port", "transport", "allowed_origins", "handshake_timeout_s",
                 "ping_interval_s", "ping_timeout_s", "permessage_deflate", "demo")),
    ("server API", ("api_", "system_user")),
    ("tokens", ("secret", "jwt_")),
    ("store", ("db", "database_url", "migrate_on_start", "sqlite_", "commit_")),
    ("cluster", ("workers", "reuse_port", "redis_url", "presence_ttl_s", "revocation_check_s")),
    ("limits", ("max_", "hello_timeout_s", "resume_", "send_buffer_bytes", "watch_ttl_s")),
    ("rates", ("rate_", "typing_per_s")),
    ("hooks", ("dm_policy", "dm_policy_url", "card_resolver_url", "card_resolver_failure", "hook_")),
    ("webhooks", ("webhook_",)),
    ("logs", ("log_",)),
)
OTHER_GROUP = "other settings"
# What a value is, where the name does not say it by its ending (see _metavar).
_METAVARS = {"db": "FILE", "secret": "SECRET", "api_key": "KEY", "webhook_secret": "KEY",
             "system_user": "USER", "allowed_origins": "ORIGINS", "webhook_events": "GROUPS",
             "jwt_audience": "AUDIENCE", "jwt_issuer": "ISSUER", "rate_user_scale": "FACTOR"}
_METAVAR_ENDINGS = (("_url", "URL"), ("_file", "FILE"), ("host", "ADDRESS"), ("port", "PORT"),
                    ("_bytes", "BYTES"), ("_per_s", "PER_SECOND"), ("_s", "SECONDS"))


def _group_of(name: str) -> str:
    for title, names in HELP_GROUPS:
        if any(name.startswith(n) if n.endswith("_") else name == n for n in names):
            return title
    return OTHER_GROUP


def _metavar(f: Field[Any]) -> str:
    """What to type: the choices, else a word for the kind of value (never a piece of the name)."""
    if f.name in CHOICES:
        return "{" + ",".join(CHOICES[f.name]) + "}"
    if f.name in _METAVARS:
        return _METAVARS[f.name]
    for ending, metavar in _METAVAR_ENDINGS:
        if f.name.endswith(ending):
            return metavar
    return "N" if isinstance(f.default, int) else "VALUE"


def _add_settings(parser: argparse.ArgumentParser, only: tuple[str, ...] | None = None) -> None:
    """One flag per :class:`HubConfig` field, in groups; the help names its environment variable."""
    parser.add_argument("--config", metavar="FILE",
                        help="TOML file of settings (keys as below, e.g. max_frame_bytes = 65536); "
                        "environment variables and flags override it [env CLIPWIRE_CONFIG]")
    groups: dict[str, argparse._ArgumentGroup] = {}
    for title in [t for t, _ in HELP_GROUPS] + [OTHER_GROUP]:
        groups[title] = parser.add_argument_group(title)
    for f in fields(HubConfig):
        if only is not None and f.name not in only:
            continue
        group = groups[_group_of(f.name)]
        env = ENV_PREFIX + f.name.upper()
        shown: object = "none" if f.default is None else f.default
        if f.name == "secret":
            shown = "created beside --db"
        flag = f"--{f.name.replace('_', '-')}"
        if isinstance(f.default, bool):
            help_text = f"{f.metadata['help']} [env {env}=1/0; default {'on' if shown else 'off'}]"
            group.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction,
                               default=None, help=help_text)
            continue
        kind = type(f.default) if f.default is not None else str
        group.add_argument(flag, dest=f.name, type=kind, default=None, metavar=_metavar(f),
                           help=f"{f.metadata['help']} [env {env}; default {shown}]")


def _config(args: argparse.Namespace) -> HubConfig:
    overrides = {f.name: getattr(args, f.name, None) for f in fields(HubConfig)}
    return HubConfig.from_env(config_file=getattr(args, "config", None), **overrides)


def _secret(config: HubConfig) -> str:
    """The running hub's secret, for ``token`` and ``chat``: never a new one, which it
    would not know (only ``serve`` creates the secret beside its database)."""
    if config.secret:
        return config.secret
    path = secret_path(config.db)
    if not path.exists():
        raise ConfigError(
            f"no token secret: --secret (CLIPWIRE_SECRET) is not set and {path.absolute()} "
            "does not exist; start the hub first (`clipwire serve` creates it beside its --db), "
            "or pass the hub's --db or --secret"
        )
    return secret_beside(config.db)


def _serve(args: argparse.Namespace) -> int:
    config = _config(args)
    try:
        return _start_serving(config, args)
    except FAILURES as exc:
        if config.log_level.upper() == "DEBUG":
            traceback.print_exception(exc)
        raise


def _start_serving(config: HubConfig, args: argparse.Namespace) -> int:
    if config.secret is None and config.jwt_algorithm == "HS256":
        try:
            secret = secret_beside(config.db)  # shared by all workers
        except OSError as exc:
            raise secret_failed(str(secret_path(config.db)), exc) from exc
        config = config.with_values(secret=secret)
    config.check()
    if config.workers > 1:
        from .workers import supervise

        return supervise(config, sys.argv[2:] if args.argv is None else args.argv)
    logs.configure(config.log_level, config.log_format)
    from .app import ClipwireServer

    async def run() -> None:
        server = ClipwireServer(config, reuse_port=config.reuse_port)
        await server.start()
        try:
            # Signals first: whoever reads the address below may stop the hub at once.
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            _say(f"Clipwire hub on {server.url} (health: http://{config.host}:{server.port}/healthz)")
            if config.demo:
                shown = "127.0.0.1" if config.host in ("0.0.0.0", "::", "") else config.host
                _say(f"Demo: open http://{shown}:{server.port}/ in two browser windows "
                     "(anyone reaching this port can sign in as anyone)")
            await stop.wait()
            _say("draining: clients are asked to reconnect elsewhere")
        finally:
            # Always: the store's threads would otherwise keep the process alive.
            await server.close(drain=True)

    _run(run())
    return 0


def _migrate(args: argparse.Namespace) -> int:
    config = _config(args)
    from .app import make_store

    async def run() -> int:
        store = make_store(config, migrate=True)
        try:
            await store.open()
        except StoreUnavailable as exc:
            raise store_failed(config, exc) from exc
        try:
            version = await store.migrate()
        finally:
            await store.close()
        where = "PostgreSQL" if config.database_url else config.db
        print(f"{where}: schema version {version}")
        return 0

    _run(run())
    return 0


def _token(args: argparse.Namespace) -> int:
    config = _config(args)
    print(sign_token(_secret(config), args.user, ttl_s=args.ttl, name=args.name))
    return 0


def _chat(args: argparse.Namespace) -> int:
    from clipwire.client.chat import run_chat

    config = _config(args)
    token = args.token or sign_token(_secret(config), args.user, ttl_s=86_400)
    url = args.url or f"ws://{config.host}:{config.port}/ws"
    _run(run_chat(url, token))
    return 0


def _say(text: str) -> None:
    """A status line on stdout; a closed stdout (a parent gone) must not stop the hub."""
    try:
        print(text, flush=True)
    except OSError:
        pass


def _run(main: Any) -> None:
    try:
        import uvloop
    except ImportError:  # uvloop is optional on platforms without it
        asyncio.run(main)
    else:
        uvloop.run(main)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="clipwire", description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the hub", usage="%(prog)s [OPTIONS]",
                           description="Run the hub: WebSocket at /ws, health at /healthz.")
    _add_settings(serve)
    serve.set_defaults(func=_serve)

    migrate = sub.add_parser("migrate", help="create or upgrade the store's schema",
                             description="Create or upgrade the schema of the SQLite file or "
                             "the PostgreSQL database the settings name, then exit.")
    _add_settings(migrate, ("db", "database_url", "sqlite_synchronous"))
    migrate.set_defaults(func=_migrate)

    token = sub.add_parser("token", help="print a token for USER, signed with the hub's secret",
                           description="Print a token as the application's backend would sign "
                           "it, with the secret the hub uses (CLIPWIRE_SECRET or the one beside "
                           "--db).")
    token.add_argument("user", help="the user id (the token's 'sub')")
    token.add_argument("--ttl", type=float, default=86_400, help="lifetime in seconds [86400]")
    token.add_argument("--name", help="display name claim")
    _add_settings(token, ("db", "secret"))
    token.set_defaults(func=_token)

    chat = sub.add_parser("chat", help="a small terminal client for trying the hub by hand",
                          description="Chat as USER. Type /help once connected.")
    chat.add_argument("--as", dest="user", required=True, metavar="USER", help="who to chat as")
    chat.add_argument("--url", help="hub URL [ws://HOST:PORT/ws]")
    chat.add_argument("--token", help="token to use instead of signing one with the local secret")
    _add_settings(chat, ("host", "port", "db", "secret"))
    chat.set_defaults(func=_chat)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = None if argv is None else argv[1:]
    try:
        result: int = args.func(args)
    except ConfigError as exc:
        print(f"clipwire: {exc}", file=sys.stderr)
        return 2
    except FAILURES as exc:
        print(f"clipwire: {exc}", file=sys.stderr)
        return EXIT_STARTUP
    except KeyboardInterrupt:
        return 130
    return result


if __name__ == "__main__":
    sys.exit(main())
