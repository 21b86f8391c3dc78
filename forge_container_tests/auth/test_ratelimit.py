from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from redis import Redis

from forge_container.auth.ratelimit import (
    Counters,
    FailureLimiter,
    MemoryCounters,
    RedisCounters,
    login_keys,
)
from forge_container_tests.helpers import forget_keys


@pytest.fixture(params=["memory", "redis"])
def counters(request: pytest.FixtureRequest, redis_url: str) -> Iterator[Counters]:
    if request.param == "memory":
        yield MemoryCounters()
        return
    client = Redis.from_url(redis_url)
    prefix = f"fc-test-{uuid.uuid4().hex}:"
    yield RedisCounters(client, prefix)
    forget_keys(client, prefix)
    client.close()


def test_a_key_is_refused_after_max_failures(counters: Counters) -> None:
    limiter = FailureLimiter(counters, max_failures=3, window=60)
    keys = login_keys("Alice", "10.0.0.1")
    for _ in range(2):
        limiter.record_failure(keys)
        assert limiter.retry_after(keys) is None
    limiter.record_failure(keys)
    wait = limiter.retry_after(keys)
    assert wait is not None and 1 <= wait <= 60


def test_users_are_counted_case_insensitively_and_addresses_apart(counters: Counters) -> None:
    limiter = FailureLimiter(counters, max_failures=1, window=60)
    limiter.record_failure(login_keys("Alice", "10.0.0.1"))
    assert limiter.retry_after(login_keys("alice", "10.0.0.2")) is not None
    assert limiter.retry_after(login_keys("bob", "10.0.0.1")) is not None
    assert limiter.retry_after(login_keys("bob", "10.0.0.2")) is None


def test_zero_disables_the_limit(counters: Counters) -> None:
    limiter = FailureLimiter(counters, max_failures=0, window=60)
    for _ in range(5):
        limiter.record_failure(login_keys("alice", None))
    assert limiter.retry_after(login_keys("alice", None)) is None
    assert not limiter.enabled


def test_a_redis_that_is_down_fails_open() -> None:
    client = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    limiter = FailureLimiter(RedisCounters(client, "x:"), max_failures=1, window=60)
    limiter.record_failure(["k"])
    assert limiter.retry_after(["k"]) is None
    client.close()
