"""Rate limits in Redis or in process memory: failed logins per user and per client address,
and requests per principal or client address."""

from __future__ import annotations

import logging
import math
import threading
import time
from typing import TYPE_CHECKING, Protocol

from redis.exceptions import RedisError

from forge_container.config import Settings

if TYPE_CHECKING:
    from redis import Redis

log = logging.getLogger(__name__)


class Counters(Protocol):
    """Fixed-window counters that expire on their own."""

    def count(self, key: str) -> tuple[int, int]:
        """The count under ``key`` and the seconds until it expires."""
        ...

    def increment(self, key: str, window: int) -> None: ...

    def hit(self, key: str, window: int) -> tuple[int, int]:
        """Count one more under ``key`` (its window starts with the first); the new count
        and the seconds until the window ends."""
        ...


class MemoryCounters:
    """Counters of this process only: right for one worker, too lenient for several."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._data: dict[str, tuple[int, float]] = {}

    def count(self, key: str) -> tuple[int, int]:
        with self._lock:
            count, expires = self._data.get(key, (0, 0.0))
            remaining = expires - time.monotonic()
            if remaining <= 0:
                self._data.pop(key, None)
                return 0, 0
            return count, int(remaining) + 1

    def increment(self, key: str, window: int) -> None:
        self.hit(key, window)

    def hit(self, key: str, window: int) -> tuple[int, int]:
        now = time.monotonic()
        with self._lock:
            if len(self._data) > 100_000:  # keep a flood of distinct keys from growing memory
                self._data = {k: v for k, v in self._data.items() if v[1] > now}
            count, expires = self._data.get(key, (0, 0.0))
            if expires <= now:
                count, expires = 0, now + window
            self._data[key] = (count + 1, expires)
        return count + 1, max(1, math.ceil(expires - now))


class RedisCounters:
    """Counters in Redis, shared by every worker and node."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        self._redis = redis
        self._prefix = prefix

    def count(self, key: str) -> tuple[int, int]:
        pipe = self._redis.pipeline()
        pipe.get(self._prefix + key)
        pipe.ttl(self._prefix + key)
        value, ttl = pipe.execute()
        return (int(value) if value else 0), max(int(ttl), 0)

    def increment(self, key: str, window: int) -> None:
        pipe = self._redis.pipeline()
        pipe.incr(self._prefix + key)
        pipe.expire(self._prefix + key, window, nx=True)
        pipe.execute()

    def hit(self, key: str, window: int) -> tuple[int, int]:
        pipe = self._redis.pipeline()
        pipe.incr(self._prefix + key)
        pipe.expire(self._prefix + key, window, nx=True)
        pipe.ttl(self._prefix + key)
        count, _, ttl = pipe.execute()
        return int(count), int(ttl) if int(ttl) > 0 else window


class FailureLimiter:
    """Refuses logins for a key (user, address) once it has failed too often in a window."""

    def __init__(self, counters: Counters | None, max_failures: int, window: int) -> None:
        self._counters = counters
        self._max = max_failures
        self._window = window

    @property
    def enabled(self) -> bool:
        return self._counters is not None and self._max > 0

    def retry_after(self, keys: list[str]) -> int | None:
        """Seconds to wait when any key is over the limit, else ``None``.

        A Redis that is down does not lock everybody out: the check fails open and logs.
        """
        if self._counters is None or self._max <= 0:
            return None
        try:
            waits = [ttl for count, ttl in map(self._counters.count, keys) if count >= self._max]
        except RedisError as exc:
            log.warning("login rate limit unavailable, not enforced: %s", exc)
            return None
        return max(max(waits), 1) if waits else None

    def record_failure(self, keys: list[str]) -> None:
        if self._counters is None or self._max <= 0:
            return
        try:
            for key in keys:
                self._counters.increment(key, self._window)
        except RedisError as exc:
            log.warning("could not record a failed login: %s", exc)


class RequestLimiter:
    """At most ``limit`` requests per key (a principal, a client address) in each fixed
    window of ``window`` seconds; ``limit`` 0 counts nothing."""

    def __init__(self, counters: Counters, limit: int, window: int) -> None:
        self._counters = counters
        self._limit = limit
        self._window = window

    @property
    def enabled(self) -> bool:
        return self._limit > 0

    def hit(self, key: str) -> int | None:
        """Count one request under ``key``; the seconds to wait when it is over the limit.

        A Redis that is down does not refuse everybody: the limit fails open and logs.
        """
        if self._limit <= 0:
            return None
        try:
            count, ttl = self._counters.hit(key, self._window)
        except RedisError as exc:
            log.warning("request rate limit unavailable, not enforced: %s", exc)
            return None
        return max(ttl, 1) if count > self._limit else None


def request_key(principal_id: str | None, address: str | None) -> str:
    """The request limiter's key: the principal when known, else the client address."""
    if principal_id is not None:
        return f"requests:principal:{principal_id}"
    return f"requests:addr:{address or 'unknown'}"


def login_keys(username: str, address: str | None) -> list[str]:
    """The limiter keys for one login attempt."""
    keys = [f"login:user:{username.lower()}"]
    if address:
        keys.append(f"login:addr:{address}")
    return keys


def make_counters(settings: Settings, redis: Redis | None) -> Counters:
    """Counters in Redis when it is configured (shared by every node), else in this process."""
    if redis is not None:
        return RedisCounters(redis, settings.redis_key_prefix)
    return MemoryCounters()


def make_failure_limiter(settings: Settings, redis: Redis | None) -> FailureLimiter:
    counters = make_counters(settings, redis)
    return FailureLimiter(counters, settings.login_max_failures, settings.login_failure_window)


def make_request_limiter(settings: Settings, redis: Redis | None) -> RequestLimiter:
    """``CONTAINER_REGISTRY_RATE_LIMIT_REQUESTS`` per ``CONTAINER_REGISTRY_RATE_LIMIT_WINDOW``."""
    operations = settings.operations
    return RequestLimiter(
        make_counters(settings, redis),
        operations.rate_limit_requests,
        operations.rate_limit_window,
    )
