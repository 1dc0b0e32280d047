"""The coordinator's side of the worker processes: spawn, command, collect.

Workers are spawned once per run and reused for every scenario and system
(``use`` switches them), so process start-up is paid once.
"""

from __future__ import annotations

import itertools
import multiprocessing
import time
from multiprocessing.connection import Connection
from typing import Any

from .worker import worker_main


class WorkerError(RuntimeError):
    pass


class Pool:
    def __init__(self, procs: int, cpus: list[int] | None) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._ids = itertools.count(1)
        self.pipes: list[Connection] = []
        self.procs: list[Any] = []
        self._replies: list[dict[int, tuple[bool, Any]]] = []
        for i in range(procs):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=worker_main, args=(child, i, cpus), name=f"bench-worker-{i}",
                               daemon=True)
            proc.start()
            child.close()
            self.pipes.append(parent)
            self.procs.append(proc)
            self._replies.append({})

    def __len__(self) -> int:
        return len(self.pipes)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def submit(self, i: int, op: str, **kwargs: Any) -> int:
        rid = next(self._ids)
        self.pipes[i].send((rid, op, kwargs))
        return rid

    def ready(self, i: int, rid: int) -> bool:
        self._drain(i, 0)
        return rid in self._replies[i]

    def result(self, i: int, rid: int, timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        while rid not in self._replies[i]:
            left = deadline - time.monotonic()
            if left <= 0:
                raise WorkerError(f"worker {i} did not answer within {timeout:.0f} s")
            self._drain(i, min(left, 1.0))
            if not self.procs[i].is_alive() and rid not in self._replies[i]:
                self._drain(i, 0)
                if rid not in self._replies[i]:
                    raise WorkerError(f"worker {i} died (exit code {self.procs[i].exitcode})")
        ok, value = self._replies[i].pop(rid)
        if not ok:
            raise WorkerError(value)
        return value

    def _drain(self, i: int, timeout: float) -> None:
        pipe = self.pipes[i]
        try:
            while pipe.poll(timeout):
                rid, ok, value = pipe.recv()
                self._replies[i][rid] = (ok, value)
                timeout = 0
        except (EOFError, OSError):
            pass

    def call(self, i: int, op: str, timeout: float = 60.0, **kwargs: Any) -> Any:
        return self.result(i, self.submit(i, op, **kwargs), timeout)

    def call_all(self, op: str, timeout: float = 60.0, per: list[dict[str, Any]] | None = None,
                 **kwargs: Any) -> list[Any]:
        """Run ``op`` on every worker at once (``per[i]`` adds worker-specific arguments)."""
        rids = [self.submit(i, op, **kwargs, **(per[i] if per else {})) for i in range(len(self))]
        deadline = time.monotonic() + timeout
        return [self.result(i, rid, max(0.1, deadline - time.monotonic())) for i, rid in enumerate(rids)]

    def close(self) -> None:
        for i, proc in enumerate(self.procs):
            if proc.is_alive():
                try:
                    self.submit(i, "exit")
                except (BrokenPipeError, OSError):
                    pass
        for proc in self.procs:
            proc.join(10)
            if proc.is_alive():
                proc.terminate()
                proc.join(5)
        for pipe in self.pipes:
            pipe.close()
