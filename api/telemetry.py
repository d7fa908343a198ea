"""Prometheus collectors, one registry per app (so tests can build several apps)."""
from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Gauge, Histogram


@dataclass
class Telemetry:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self):
        r = self.registry
        self.jobs = Gauge("sam3v_jobs", "jobs by state", ["state"], registry=r)
        self.queue_depth = Gauge("sam3v_queue_depth", "broker messages waiting", ["queue"], registry=r)
        self.broker_up = Gauge("sam3v_broker_up", "1 if the broker answered the last scrape", registry=r)
        self.latency = Histogram("sam3v_request_seconds", "time to first response byte",
                                 ["method", "route", "status"], registry=r,
                                 buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5))
