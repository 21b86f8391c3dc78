"""Prometheus metrics (the ``metrics`` extra): imported only when metrics are enabled.

Each app has its own :class:`RegistryMetrics` with a registry of its own. Requests are
observed by the WSGI wrapper when their body is closed; garbage collection and quota
refusals arrive as signals (:mod:`forge_container.events`) in whatever process runs them;
open upload sessions are counted in the database at scrape time.

With several worker processes (gunicorn ``-w N``), set ``PROMETHEUS_MULTIPROC_DIR`` to an
empty directory before they start: every process writes its counts there and a scrape adds
them up (prometheus-client's multiprocess mode).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from flask import current_app, has_app_context
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client import generate_latest as _generate_latest
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

from forge_container import events
from forge_container.access_log import RequestRecord
from forge_container.state import EXTENSION_KEY

#: Where prometheus-client's multiprocess mode keeps the workers' counts.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: Request durations, in seconds: manifests take milliseconds, big blobs minutes.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900)


class RegistryMetrics:
    """The registry's metrics for one app, and their exposition."""

    def __init__(self) -> None:
        self._registry = CollectorRegistry(auto_describe=True)
        registry = self._registry
        self.requests = Counter(
            "forge_container_requests",
            "Registry requests answered, by route, method and status.",
            ["route", "method", "status"],
            registry=registry,
        )
        self.duration = Histogram(
            "forge_container_request_duration_seconds",
            "Time from a registry request's arrival to the end of its response body.",
            ["route", "method"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.bytes_in = Counter(
            "forge_container_request_bytes",
            "Bytes of registry request bodies read, by route.",
            ["route"],
            registry=registry,
        )
        self.bytes_out = Counter(
            "forge_container_response_bytes",
            "Bytes of registry response bodies sent, by route.",
            ["route"],
            registry=registry,
        )
        self.gc_runs = Counter(
            "forge_container_gc_runs", "Garbage collections run (not dry runs).", registry=registry
        )
        self.gc_blobs = Counter(
            "forge_container_gc_blobs_removed",
            "Blobs garbage collection removed.",
            registry=registry,
        )
        self.gc_bytes = Counter(
            "forge_container_gc_freed_bytes",
            "Bytes of blobs garbage collection removed.",
            registry=registry,
        )
        self.gc_manifests = Counter(
            "forge_container_gc_manifests_removed",
            "Untagged manifests and orphan referrers garbage collection removed.",
            registry=registry,
        )
        self.quota_refusals = Counter(
            "forge_container_quota_refusals",
            "Pushes refused by an owner's quota, by quota.",
            ["quota"],
            registry=registry,
        )
        # Connecting the same receivers again is a no-op: one per process, for every app.
        events.gc_finished.connect(_gc_finished, weak=False)
        events.quota_refused.connect(_quota, weak=False)

    def observe(self, record: RequestRecord) -> None:
        """Count one finished registry request."""
        route = record.route
        self.requests.labels(route, record.method, str(record.status)).inc()
        self.duration.labels(route, record.method).observe(record.duration)
        if record.bytes_in:
            self.bytes_in.labels(route).inc(record.bytes_in)
        if record.bytes_out:
            self.bytes_out.labels(route).inc(record.bytes_out)

    def exposition(self, upload_sessions: int) -> tuple[bytes, str]:
        """The text exposition and its content type; ``upload_sessions`` is the count of
        open upload sessions, read by the caller from the database."""
        scrape = CollectorRegistry()
        directory = os.environ.get(MULTIPROC_ENV)
        if directory:
            MultiProcessCollector(scrape, path=directory)  # type: ignore[no-untyped-call]
        else:
            scrape.register(_Collected(self._registry.collect))
        sessions = GaugeMetricFamily(
            "forge_container_upload_sessions",
            "Upload sessions open, on every node (counted in the database).",
            value=upload_sessions,
        )
        scrape.register(_Collected(lambda: [sessions]))
        return _generate_latest(scrape), CONTENT_TYPE_LATEST


class _Collected:
    """A collector answering what ``collect`` returns."""

    def __init__(self, collect: Any) -> None:
        self._collect = collect

    def collect(self) -> Iterable[Metric]:
        metrics: Iterable[Metric] = self._collect()
        return metrics


def _current() -> RegistryMetrics | None:
    """The metrics of the app in whose context a signal was sent, if it has them."""
    if not has_app_context():
        return None
    state = current_app.extensions.get(EXTENSION_KEY)
    return getattr(state, "metrics", None)


def _gc_finished(sender: Any, *, blobs: int, bytes: int, manifests: int, **_: Any) -> None:
    metrics = _current()
    if metrics is not None:
        metrics.gc_runs.inc()
        metrics.gc_blobs.inc(blobs)
        metrics.gc_bytes.inc(bytes)
        metrics.gc_manifests.inc(manifests)


def _quota(sender: Any, *, quota: str, **_: Any) -> None:
    metrics = _current()
    if metrics is not None:
        metrics.quota_refusals.labels(quota).inc()
