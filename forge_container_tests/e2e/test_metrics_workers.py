"""Metrics under gunicorn with two workers: with ``PROMETHEUS_MULTIPROC_DIR`` a scrape adds
up what every worker counted, whichever worker answers it."""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from forge_container_tests.e2e.conftest import (
    Server,
    Site,
    basic_auth,
    create_site,
    running,
    watching,
)

TOKEN = "e2e-scraper-token-0123456789"
REQUESTS = "forge_container_requests_total"
TOKEN_ROUTE = {"route": "token", "method": "GET", "status": "200"}
#: Requests sent per round, and the most sent before both workers must have answered some.
ROUND = 40
MAX_REQUESTS = 800
#: How long counts may lag behind the responses the client has read, at most.
SETTLE_TIMEOUT = 10
T = TypeVar("T")


@dataclass(frozen=True)
class MetricsSite(Site):
    """A site whose servers serve metrics, counted in ``multiproc_dir``."""

    multiproc_dir: Path = Path()

    def environment(self) -> dict[str, str]:
        env = super().environment()
        env.update(
            CONTAINER_REGISTRY_METRICS_ENABLED="true",
            CONTAINER_REGISTRY_METRICS_TOKEN=TOKEN,
            PROMETHEUS_MULTIPROC_DIR=str(self.multiproc_dir),
        )
        return env


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("metrics")
    multiproc = root / "prometheus"
    multiproc.mkdir()
    with create_site(root / "site") as site:
        fields = {field.name: getattr(site, field.name) for field in dataclasses.fields(Site)}
        metrics_site = MetricsSite(**fields, multiproc_dir=multiproc)
        with running(metrics_site, root / "gunicorn.log", workers=2, threads=2) as live:
            yield live


@pytest.fixture
def live(server: Server) -> Iterator[Server]:
    with watching(server):
        yield server


def scrape(server: Server) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    reply = server.request(
        "GET", "/-/registry/metrics", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert reply.status == 200
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(reply.body.decode())
        for sample in family.samples
    }


def value(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def per_worker(server: Server) -> dict[int, float]:
    """Token requests each worker counted, read from its own file."""
    directory = Path(server.site.environment()["PROMETHEUS_MULTIPROC_DIR"])
    counts = {}
    for path in directory.glob("counter_*.db"):
        families: Any = MultiProcessCollector.merge([str(path)], accumulate=False)  # type: ignore[no-untyped-call]
        counts[int(path.stem.split("_")[1])] = sum(
            sample.value
            for family in families
            for sample in family.samples
            if sample.name == REQUESTS and sample.labels == TOKEN_ROUTE
        )
    return counts


def settled(read: Callable[[], T], done: Callable[[T], bool]) -> T:
    """``read()`` once ``done`` with it, or after a while: a request is counted when the
    server closes its response, which may be just after the client has read it."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    result = read()
    while not done(result) and time.monotonic() < deadline:
        time.sleep(0.05)
        result = read()
    return result


def test_the_counts_of_both_workers_add_up(live: Server) -> None:
    assert value(scrape(live), REQUESTS, **TOKEN_ROUTE) == 0
    sent = 0

    def token(_: int) -> int:
        return live.request("GET", "/v2/token?service=forge-container").status

    with ThreadPoolExecutor(8) as pool:
        while sent < MAX_REQUESTS:
            assert set(pool.map(token, range(ROUND))) == {200}
            sent += ROUND
            if len([count for count in per_worker(live).values() if count]) >= 2:
                break
    counts = settled(lambda: per_worker(live), lambda counts: sum(counts.values()) == sent)
    assert len([count for count in counts.values() if count]) == 2, counts
    assert set(counts) >= set(live.worker_pids())
    assert value(scrape(live), REQUESTS, **TOKEN_ROUTE) == sent


def test_a_blob_sent_with_sendfile_counts_its_bytes(live: Server) -> None:
    data = b"sendfile " * 10_000
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    auth = basic_auth("alice", live.site.passwords["alice"])
    stored = live.request(
        "POST", f"/v2/alice/sent/blobs/uploads/?digest={digest}", headers=auth, body=data
    )
    assert stored.status == 201, stored
    sent = "forge_container_response_bytes_total"
    before = value(scrape(live), sent, route="get_blob")
    for _ in range(2):
        reply = live.request("GET", f"/v2/alice/sent/blobs/{digest}", headers=auth)
        assert reply.body == data
    after = settled(
        lambda: value(scrape(live), sent, route="get_blob"),
        lambda after: after - before >= 2 * len(data),
    )
    assert after - before == 2 * len(data)


def test_health_and_hidden_metrics(live: Server) -> None:
    health = live.request("GET", "/-/registry/health")
    assert (health.status, health.json()["status"]) == (200, "ok")
    assert live.request("GET", "/-/registry/metrics").status == 404
