"""``clipwire serve --workers 2``: two hub processes on one port (SO_REUSEPORT), joined
through Redis; SIGTERM to the supervisor stops them all.

Which worker serves a client is read from /proc: the worker owning the server end
of the client's TCP connection.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from pathlib import Path

from clusterhelp import NodeProcess, Rig, gather_limited, node_args, until
from services import PrivateRedis


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def tcp_sockets(pid: int, port: int) -> tuple[bool, set[int]]:
    """Whether ``pid`` listens on ``port``, and the peer ports of its connections on it."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    listening, peers = False, set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, remote, state, inode = fields[1], fields[2], fields[3], fields[9]
            if inode not in inodes or int(local.rsplit(":", 1)[1], 16) != port:
                continue
            if state == "0A":
                listening = True
            elif state == "01":
                peers.add(int(remote.rsplit(":", 1)[1], 16))
    return listening, peers


def gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"


async def test_two_workers_share_one_port_and_stop_together(rig: Rig) -> None:
    port = free_port()
    supervisor = NodeProcess("workers", rig.workdir,
                             [*node_args(rig.redis_url, rig.dsn, port=port), "--workers", "2"])
    rig.nodes.append(supervisor)
    supervisor.spawn()
    url = await supervisor.ready()
    assert supervisor.port == port and "with 2 workers" in supervisor.banner

    workers: list[int] = []

    def both_listen() -> bool:
        workers[:] = children(supervisor.pid)
        return len(workers) == 2 and all(tcp_sockets(pid, port)[0] for pid in workers)

    await until(both_listen, 30, lambda: f"workers {workers} listening on {port}")

    devices = [rig.device(f"w{i:02}") for i in range(40)]
    welcomes = await gather_limited((device.connect(url) for device in devices), 50)
    served_by: dict[str, int] = {}
    for pid in workers:
        peers = tcp_sockets(pid, port)[1]
        for device in devices:
            assert device.ws is not None
            if device.ws.local_address[1] in peers:
                served_by[device.user] = pid
    assert len(served_by) == 40
    counts = {pid: list(served_by.values()).count(pid) for pid in workers}
    assert all(counts.values()), f"the kernel gave every client to one worker: {counts}"
    # Each worker numbers its own sessions: two processes answered, so some ids repeat.
    sessions = [welcome["session"] for welcome in welcomes]
    assert len(set(sessions)) < len(sessions)

    # DMs between twenty pairs: those across the two workers go through Redis.
    pairs = [(devices[i], devices[i + 20]) for i in range(20)]
    across = sum(1 for a, b in pairs if served_by[a.user] != served_by[b.user])
    assert across > 0
    sent = await asyncio.gather(*(a.ok("send", to=b.user, cmid="hi", text=f"hi {b.user}") for a, b in pairs))
    await until(lambda: all(b.holding(ok["conv"]).get(1) == (a.user, "hi")
                            for (a, b), ok in zip(pairs, sent, strict=True)), 10, "every DM arrived")

    # SIGTERM to the supervisor: both workers stop, their clients are told, it exits 0.
    assert supervisor.proc is not None
    supervisor.proc.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(supervisor.wait_stopped, 30) == 0
    assert all(gone(pid) for pid in workers)
    await until(lambda: all(d.lost.is_set() for d in devices), 10, "clients disconnected")
    codes = {d.ws.close_code for d in devices if d.ws is not None}
    assert codes <= {1001, 4010}, codes  # going away, or draining: reconnect elsewhere
    print(f"\nworkers: clients per worker {sorted(counts.values())}, DMs across workers {across}/20, "
          f"close codes {sorted(c for c in codes if c is not None)}")


async def test_a_worker_that_cannot_restart_leaves_the_others_serving(
        tmp_path: Path, private_redis: PrivateRedis) -> None:
    """Once the hub has served, a worker that dies while Redis is away fails its
    restart (exit 3): the supervisor tries again later instead of stopping the
    worker that still serves, and both serve once Redis is back."""
    port = free_port()
    supervisor = NodeProcess("workers", tmp_path,
                             [*node_args(private_redis.url, str(tmp_path / "hub.db"), port=port),
                              "--workers", "2"])
    supervisor.spawn()
    try:
        await supervisor.ready()
        workers: list[int] = []

        def both_listen() -> bool:
            workers[:] = children(supervisor.pid)
            return len(workers) == 2 and all(tcp_sockets(pid, port)[0] for pid in workers)

        await until(both_listen, 30, lambda: f"workers {workers} listening on {port}")
        survivor, victim = workers
        private_redis.stop()
        os.kill(victim, signal.SIGKILL)
        # The replacement starts after 1 s and exits 3 without Redis; the next try is 2 s later.
        await asyncio.sleep(3.5)
        assert not gone(supervisor.pid) and not gone(survivor), supervisor.log()
        assert tcp_sockets(survivor, port)[0]
        private_redis.start()
        await until(both_listen, 40, lambda: f"workers {workers} listening again on {port}")
        assert survivor in workers
    finally:
        supervisor.terminate()
        assert supervisor.wait_stopped() == 0, supervisor.log()
