"""Prometheus metrics of one hub, served at GET /metrics on the hub's port.

Each hub has its own registry, so several hubs in one process (tests, embedding)
never collide. Label values are bounded: request types outside the protocol
are counted as ``unknown``, and server API calls by route template (the paths of
the API document, or ``unmatched``), never by raw path. Frames come from
WebSocket clients only; the server API has counters of its own.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from clipwire.protocol.frames import known_types

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
SIZE_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000)


class HubMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.connections = Gauge("clipwire_connections", "Authenticated connections", registry=r)
        self.frames_in = Counter("clipwire_frames_in", "Frames received, by type", ["type"],
                                 registry=r)
        self.frames_out = Counter("clipwire_frames_out", "Frames written to clients", registry=r)
        self.errors = Counter("clipwire_errors", "Error replies, by code", ["code"], registry=r)
        self.fanout = Histogram("clipwire_fanout_size", "Members a message is delivered to",
                                buckets=SIZE_BUCKETS, registry=r)
        self.delivery = Histogram(
            "clipwire_delivery_seconds",
            "From a send's arrival to its delivery to the recipients' sockets (commit included)",
            buckets=LATENCY_BUCKETS, registry=r)
        self.commit = Histogram("clipwire_commit_seconds", "Store time of one group commit",
                                buckets=LATENCY_BUCKETS, registry=r)
        self.batch = Histogram("clipwire_commit_batch_size", "Messages per group commit",
                               buckets=SIZE_BUCKETS, registry=r)
        self.publish = Histogram("clipwire_broker_publish_seconds",
                                 "Time to publish one batch of events to the broker",
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.pending = Gauge("clipwire_commit_pending", "Messages waiting for the store",
                             registry=r)
        self.after_commit_failures = Counter(
            "clipwire_after_commit_failures",
            "Messages of a group commit whose answer or fan-out raised (logged; the rest of "
            "the batch was still served)", registry=r)
        self.api_requests = Counter("clipwire_api_requests",
                                    "Server API calls, by route template and HTTP status",
                                    ["endpoint", "status"], registry=r)
        self.api_seconds = Histogram("clipwire_api_request_seconds",
                                     "Time to answer a server API call, by route template",
                                     ["endpoint"], buckets=LATENCY_BUCKETS, registry=r)
        # One child per request type, looked up once: ``labels()`` locks and builds a key,
        # a cost every frame would pay.
        self._frames_in = {t: self.frames_in.labels(t) for t in (*known_types(), "unknown")}
        self._unknown = self._frames_in["unknown"]

    def frame_in(self, t: str) -> None:
        self._frames_in.get(t, self._unknown).inc()

    def api_request(self, endpoint: str, status: int, seconds: float) -> None:
        self.api_requests.labels(endpoint, str(status)).inc()
        self.api_seconds.labels(endpoint).observe(seconds)

    def committed(self, batch: int, seconds: float) -> None:
        self.batch.observe(batch)
        self.commit.observe(seconds)

    def render(self) -> bytes:
        data: bytes = generate_latest(self.registry)
        return data
