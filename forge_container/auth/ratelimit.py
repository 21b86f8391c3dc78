"""Failed-login limits per user and per client address, in Redis or in process memory."""

from __future__ import annotations

import logging
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
        now = time.monotonic()
        with self._lock:
            if len(self._data) > 100_000:  # keep a flood of distinct keys from growing memory
                self._data = {k: v for k, v in self._data.items() if v[1] > now}
            count, expires = self._data.get(key, (0, 0.0))
            if expires <= now:
                count, expires = 0, now + window
            self._data[key] = (count + 1, expires)


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


def login_keys(username: str, address: str | None) -> list[str]:
    """The limiter keys for one login attempt."""
    keys = [f"login:user:{username.lower()}"]
    if address:
        keys.append(f"login:addr:{address}")
    return keys


def make_failure_limiter(settings: Settings, redis: Redis | None) -> FailureLimiter:
    counters: Counters = (
        RedisCounters(redis, settings.redis_key_prefix) if redis is not None else MemoryCounters()
    )
    return FailureLimiter(counters, settings.login_max_failures, settings.login_failure_window)
