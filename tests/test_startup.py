"""A start that cannot work ends within seconds, with one line saying why and what to do.

Each case runs ``clipwire serve`` (or ``token``, ``chat``) as a process, as a
newcomer or an operator would, and gives it a deadline: a hang fails the test.
A traceback shows only with ``--log-level DEBUG``.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest
from services import fresh_schema, require
from wire import HubProcess, http_get

from clipwire.server.config import ConfigError, HubConfig
from clipwire.server.store.sqlite import MIGRATIONS

DEADLINE_S = 10.0
# A log line the hub may write on its way (e.g. "migrating ... to schema version 1").
INFO_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ INFO ")
NO_REDIS = "redis://127.0.0.1:1/0"  # nothing listens on port 1: refused at once


def clipwire(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the command to its end; past the deadline it is killed, with any workers it
    started (its own process group), and the test fails."""
    command = [sys.executable, "-m", "clipwire.server", *args]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=env if env is not None else os.environ,
                          start_new_session=True) as proc:
        try:
            out, err = proc.communicate(timeout=DEADLINE_S)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            pytest.fail(f"`clipwire {' '.join(args)}` still running after {DEADLINE_S} s")
    return subprocess.CompletedProcess(command, proc.returncode, out, err)


def serve(tmp_path: Path, *args: str, env: dict[str, str] | None = None
          ) -> subprocess.CompletedProcess[str]:
    return clipwire("serve", "--port", "0", "--db", str(tmp_path / "hub.db"), *args,
                    env={**os.environ, **(env or {})})


def the_line(done: subprocess.CompletedProcess[str], *says: str) -> str:
    """The one line a failed start prints (besides INFO log lines), saying all of ``says``."""
    assert done.returncode != 0, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if not INFO_LINE.match(line)]
    assert len(lines) == 1, done.stderr
    (line,) = lines
    assert line.startswith("clipwire: "), line
    for words in says:
        assert words in line, line
    return line


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port something else listens on."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield int(holder.getsockname()[1])


def test_port_in_use(tmp_path: Path, taken_port: int) -> None:
    the_line(serve(tmp_path, "--port", str(taken_port)), "in use", "--port")


def test_port_in_use_traceback_only_at_debug(tmp_path: Path, taken_port: int) -> None:
    done = serve(tmp_path, "--port", str(taken_port), "--log-level", "DEBUG")
    assert done.returncode != 0
    assert "Traceback" in done.stderr and "address already in use" in done.stderr.lower()
    assert done.stderr.splitlines()[-1].startswith("clipwire: cannot listen on")


def test_api_port_in_use(tmp_path: Path, taken_port: int) -> None:
    the_line(serve(tmp_path, "--api-key", "k", "--api-port", str(taken_port)),
             "server API", "in use", "--api-port")


def test_an_address_not_on_this_machine(tmp_path: Path) -> None:
    # TEST-NET-1: the bind fails at once (EADDRNOTAVAIL); no packet is sent.
    the_line(serve(tmp_path, "--host", "192.0.2.1"), "192.0.2.1", "not an address", "--host")


def test_redis_unreachable(tmp_path: Path) -> None:
    the_line(serve(tmp_path, "--redis-url", NO_REDIS), "cannot reach Redis", "--redis-url")


def test_redis_that_never_answers(tmp_path: Path, taken_port: int) -> None:
    """A port that takes the connection but never answers (a wrong port, a stuck proxy)."""
    the_line(serve(tmp_path, "--redis-url", f"redis://127.0.0.1:{taken_port}/0"),
             "cannot reach Redis", "no answer", "--redis-url")


def test_postgres_that_never_answers(tmp_path: Path, taken_port: int) -> None:
    the_line(serve(tmp_path, "--database-url", f"postgresql://127.0.0.1:{taken_port}/test"),
             "PostgreSQL", "no answer", "--database-url")


def test_a_worker_that_cannot_start_stops_the_supervisor(tmp_path: Path) -> None:
    """Not restarted forever: the first worker's line is the supervisor's last word."""
    done = serve(tmp_path, "--workers", "2", "--redis-url", NO_REDIS)
    the_line(done, "cannot reach Redis")
    assert "restarting" not in done.stderr


def test_postgres_unreachable(tmp_path: Path) -> None:
    the_line(serve(tmp_path, "--database-url", "postgresql://127.0.0.1:1/test"),
             "PostgreSQL", "--database-url")


def test_postgres_database_missing(tmp_path: Path) -> None:
    url = urlsplit(require("postgres"))._replace(path="/clipwire_no_such_db").geturl()
    the_line(serve(tmp_path, "--database-url", url), "clipwire_no_such_db", "does not exist",
             "--database-url")


@pytest.mark.parametrize(("version", "says"), [
    (None, "clipwire migrate"),  # never migrated: older than this hub
    (999, "newer than this hub"),  # written by a later release
])
async def test_postgres_schema_of_another_version(tmp_path: Path, version: int | None,
                                                  says: str) -> None:
    async with fresh_schema(require("postgres")) as dsn:
        if version is not None:
            conn = await asyncpg.connect(dsn)
            await conn.execute("CREATE TABLE clipwire_schema (version INT NOT NULL);"
                               f"INSERT INTO clipwire_schema VALUES ({version})")
            await conn.close()
        the_line(serve(tmp_path, "--database-url", dsn), "schema version", says)


def test_sqlite_schema_newer_than_this_hub(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "hub.db") as db:
        db.execute(f"PRAGMA user_version={len(MIGRATIONS) + 1}")
    the_line(serve(tmp_path), "newer than this hub")


def test_db_under_a_regular_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    the_line(clipwire("serve", "--port", "0", "--db", str(tmp_path / "file" / "hub.db")),
             "is not a directory", "--db")


def test_db_that_is_a_directory(tmp_path: Path) -> None:
    (tmp_path / "hub.db").mkdir()
    the_line(serve(tmp_path), "is a directory", "--db")


def test_a_boolean_that_is_not_one(tmp_path: Path) -> None:
    the_line(serve(tmp_path, env={"CLIPWIRE_DEMO": "maybe"}), "CLIPWIRE_DEMO", "not a boolean")


@pytest.mark.parametrize("name", [f.name for f in fields(HubConfig) if isinstance(f.default, bool)])
def test_every_boolean_variable_takes_only_boolean_words(name: str) -> None:
    env = f"CLIPWIRE_{name.upper()}"
    for word, value in [("1", True), ("TRUE", True), ("Yes", True), ("on", True),
                        ("0", False), ("false", False), ("NO", False), ("Off", False)]:
        assert getattr(HubConfig.from_env({env: word}), name) is value, word
    for word in ("maybe", "2", "enabled", ""):
        with pytest.raises(ConfigError, match=env):
            HubConfig.from_env({env: word})


@pytest.mark.parametrize("command", [["token", "bob"], ["chat", "--as", "bob"]])
def test_token_and_chat_refuse_without_the_hubs_secret(tmp_path: Path, command: list[str]) -> None:
    """A new secret would sign tokens the running hub rejects: say where it was looked for."""
    db = tmp_path / "hub.db"
    done = clipwire(*command, "--db", str(db),
                    env={k: v for k, v in os.environ.items() if k != "CLIPWIRE_SECRET"})
    the_line(done, f"{db}.secret", "--secret")
    assert done.stdout == ""
    assert not Path(f"{db}.secret").exists()


def test_help_shows_groups_and_what_to_type() -> None:
    out = clipwire("serve", "--help").stdout
    for title in ("network", "server API", "tokens", "store", "cluster", "limits", "rates",
                  "hooks", "webhooks", "logs"):
        assert f"\n{title}:\n" in out, title
    assert "other settings:" not in out  # every setting has its group
    for shown in ("--secret SECRET", "--db FILE", "--redis-url URL", "--port PORT",
                  "--dm-policy {friends,everyone}", "--log-level {DEBUG,INFO,WARNING,ERROR}",
                  "--demo, --no-demo", "--max-frame-bytes BYTES", "--ping-timeout-s SECONDS"):
        assert shown in out, shown


def test_health_probes_write_no_log_lines(tmp_path: Path) -> None:
    hub = HubProcess(tmp_path / "hub.db", extra_env={"CLIPWIRE_LOG_LEVEL": "INFO"},
                     stderr=subprocess.PIPE)
    hub.start()
    try:
        for path in ("/healthz", "/readyz", "/healthz"):
            assert http_get(hub.port, path)[0] == 200
    finally:
        hub.stop()
    assert hub.proc is not None and hub.proc.stderr is not None
    with hub.proc.stderr:
        log = hub.proc.stderr.read()
    assert "clipwire.hub: serving" in log  # the log was read at INFO
    assert "websockets.server" not in log and "HTTP" not in log, log


@pytest.mark.parametrize("secret", ["x", "s" * 31])
def test_a_short_hs256_secret_is_refused(tmp_path: Path, secret: str) -> None:
    # One byte, or anything a guess can reach, would let anyone sign tokens for every user.
    the_line(serve(tmp_path, "--secret", secret), "CLIPWIRE_SECRET", f"{len(secret)} bytes", "32")
