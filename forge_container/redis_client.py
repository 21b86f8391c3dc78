"""The Redis connection, when one is configured (rate limits now; RQ later)."""

from __future__ import annotations

from redis import Redis

from forge_container.config import Settings


def make_redis(settings: Settings) -> Redis | None:
    """A client for ``CONTAINER_REGISTRY_REDIS_URL``; ``None`` when Redis is not configured.

    No connection is made here: a Redis that is down shows up on first use, not at start-up.
    """
    if settings.redis_url is None:
        return None
    return Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=5)
