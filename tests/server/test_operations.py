"""What operators rely on: /metrics, /readyz, the TOML file, JSON logs, and drain."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

import pytest
from wire import SECRET, Dial, HubFactory, HubProcess, RawClient, history_all, token

from clipwire.server.config import ConfigError, HubConfig


async def _get(port: int, path: str) -> tuple[int, str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    raw = await reader.read()
    writer.close()
    head, _, body = raw.decode().partition("\r\n\r\n")
    return int(head.split()[1]), body


async def test_metrics_count_what_happened(hub_factory: HubFactory, dial: Dial) -> None:
    hub = await hub_factory()
    alice, bob = await dial(hub.url, "alice"), await dial(hub.url, "bob")
    conv = (await alice.ok("send", to="bob", cmid="1", text="hi"))["conv"]
    await bob.event("msg")
    assert (await alice.call("history", conv="dm:nobody"))["code"] == "forbidden"
    await alice.send_frame({"t": "no-such-type", "id": 77})
    await alice.reply(77)
    status, body = await _get(hub.port, "/metrics")
    assert status == 200
    values = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
              for line in body.splitlines() if line and not line.startswith("#")}
    assert values["clipwire_connections"] == 2
    assert values['clipwire_frames_in_total{type="send"}'] == 1
    assert values['clipwire_frames_in_total{type="unknown"}'] == 1
    assert values['clipwire_errors_total{code="forbidden"}'] == 1
    assert values["clipwire_commit_batch_size_count"] >= 1
    assert values["clipwire_delivery_seconds_count"] == 1
    assert values["clipwire_fanout_size_sum"] == 2
    assert conv


async def test_readyz_reports_the_store(hub_factory: HubFactory) -> None:
    hub = await hub_factory()
    assert await _get(hub.port, "/readyz") == (200, "ready\n")
    await hub.store.close()  # the store goes away under the hub
    status, body = await _get(hub.port, "/readyz")
    assert status == 503 and body.startswith("store:")
    assert (await _get(hub.port, "/healthz"))[0] == 200  # alive all the same
    await hub.store.open()


def test_toml_file_then_environment_then_flags(tmp_path: Path) -> None:
    path = tmp_path / "clipwire.toml"
    path.write_text('port = 9100\nmax-frame-bytes = 4096\nhello_timeout_s = 3\ndb = "x.db"\n')
    config = HubConfig.from_env({"CLIPWIRE_PORT": "9200"}, config_file=str(path), db="flag.db")
    assert (config.port, config.max_frame_bytes, config.hello_timeout_s, config.db) == (
        9200, 4096, 3.0, "flag.db")
    path.write_text("max_frame_bytes = 'big'\n")
    with pytest.raises(ConfigError, match="max_frame_bytes must be a int"):
        HubConfig.from_env({}, config_file=str(path))
    path.write_text("nonsense = 1\n")
    with pytest.raises(ConfigError, match="unknown setting 'nonsense'"):
        HubConfig.from_env({}, config_file=str(path))
    path.write_text("port = [\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        HubConfig.from_env({}, config_file=str(path))


async def test_cli_names_a_wrong_setting(tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "clipwire.server", "serve", "--db", str(tmp_path / "x.db"),
        "--dm-policy", "strangers", stderr=asyncio.subprocess.PIPE)
    _, err = await proc.communicate()
    assert proc.returncode == 2
    assert "CLIPWIRE_DM_POLICY must be friends or everyone" in err.decode()


async def test_json_log_lines() -> None:
    out = await asyncio.create_subprocess_exec(
        sys.executable, "-c",
        "import logging; from clipwire.server import logs; logs.configure('INFO', 'json'); "
        "logging.getLogger('clipwire.hub').info('s1 connected: user %s', 'alice')",
        stderr=asyncio.subprocess.PIPE)
    _, err = await out.communicate()
    entry = json.loads(err.decode().splitlines()[-1])
    assert entry["level"] == "INFO" and entry["logger"] == "clipwire.hub"
    assert entry["message"] == "s1 connected: user alice" and entry["ts"].endswith("Z")


async def test_drain_under_traffic_loses_nothing(tmp_path: Path) -> None:
    """SIGTERM while clients send: every client gets 4010, and after they reconnect to
    the next hub on the same store, every acknowledged message is there exactly once."""
    db = tmp_path / "drain.db"
    first = HubProcess(db)
    first.start()
    users = [f"u{i}" for i in range(6)]
    clients = [await RawClient.open(first.url) for _ in users]
    for client, user in zip(clients, users, strict=True):
        await client.hello(token(user))
    conv = (await clients[0].ok("group.create", members=users[1:], title="drain"))["conv"]
    acked: set[str] = set()
    stop = asyncio.Event()

    async def talk(client: RawClient, user: str) -> None:
        n = 0
        while not stop.is_set():
            try:
                rid = await client.send_request("send", conv=conv, cmid=f"{user}-{n}", text="x")
                reply = await client.reply(rid, timeout=2)
            except Exception:
                return  # the hub is draining
            if reply["t"] == "ok":
                acked.add(f"{user}-{n}")
            n += 1

    talkers = [asyncio.create_task(talk(c, u)) for c, u in zip(clients, users, strict=True)]
    for _ in range(200):  # traffic flowing, however slow the machine
        if len(acked) > 20:
            break
        await asyncio.sleep(0.05)
    assert first.proc is not None
    first.proc.send_signal(signal.SIGTERM)
    await asyncio.wait_for(asyncio.gather(*talkers), 15)  # each ends when its socket closes
    stop.set()
    codes = [(await client.closed(timeout=10))[0] for client in clients]
    assert first.proc.wait(10) == 0
    first.stop()
    assert codes == [4010] * len(users)
    assert len(acked) > 20

    second = HubProcess(db)
    second.start()
    try:
        reader = await RawClient.open(second.url)
        await reader.hello(token("u1"))
        stored = await history_all(reader, conv)
        cmids = [m["cmid"] for m in stored]
        assert [m["seq"] for m in stored] == list(range(1, len(stored) + 1))
        assert len(cmids) == len(set(cmids))
        assert acked <= set(cmids)
        await reader.close()
    finally:
        second.stop()
    assert SECRET


def test_sigterm_stops_a_hub_whose_stdout_is_gone(tmp_path: Path) -> None:
    """The parent that read the hub's address has gone: the shutdown line cannot be
    printed, and the hub must still close its store and exit."""
    hub = HubProcess(tmp_path / "hub.db")
    hub.start()
    assert hub.proc is not None and hub.proc.stdout is not None
    hub.proc.stdout.close()  # the next print meets a closed pipe (EPIPE)
    hub.proc.terminate()
    try:
        assert hub.proc.wait(20) == 0
    finally:
        hub.stop()
