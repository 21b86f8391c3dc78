"""Tag and digest lookups of pulls, cached per process and invalidated through Redis.

A pull resolves ``<image>:<reference>`` to a manifest digest, media type and size: an
indexed query, but the most frequent one a registry answers. Every process keeps its
answers, each stamped with the image's *generation*, a random token in Redis that every
committed change to the image's tags or manifests replaces. A lookup reads the generation
(one Redis ``GET``, far cheaper than the query) and trusts a cached answer only when its
stamp matches. So a tag moved on one node is seen by the next pull on every node, and a
process never serves a stale tag longer than it takes a pusher's request to finish.

The tokens are random rather than counters: when Redis restarts empty, the new tokens
match no answer cached before. Entries also expire after the hot-path TTL
(``CONTAINER_REGISTRY_CACHE_TTL``), which bounds the damage of a change whose invalidation
was lost (its process died between commit and ``SET``). Without Redis, or with the TTL at
0, nothing is cached. When Redis fails, lookups go to the database for a while.

The generations are replaced by a receiver of the ``image_pushed``, ``tag_deleted`` and
``manifest_deleted`` signals (:mod:`forge_container.events`), connected by the extension:
code that changes an image's tags or manifests must send one of them after its commit.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Generic, TypeVar

from redis.exceptions import RedisError

from forge_container.cache import TTLCache

if TYPE_CHECKING:
    from redis import Redis

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Seconds a generation key lives in Redis after its last change or first read: images
#: not pulled for that long cost Redis nothing, and a key that expires just causes misses.
GENERATION_LIFETIME = 7 * 24 * 3600
#: Seconds lookups skip Redis (and the cache) after it failed.
BACKOFF = 5.0


class ManifestRefs(Generic[T]):
    """Answers of ``lookup`` by ``(owner_id, image, reference)``, valid while the image's
    generation in Redis is unchanged. ``T`` is the answer (``None`` is cached too: a tag
    that does not exist yet is also what a change would invalidate)."""

    def __init__(
        self,
        redis: Redis | None,
        *,
        prefix: str,
        ttl: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._redis = redis
        self._prefix = prefix + "manifest-generation:"
        self._entries: TTLCache[tuple[str, str, str], tuple[object, T]] = TTLCache(ttl, clock=clock)
        self._clock = clock
        self._skip_until = 0.0
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self._redis is not None and self._entries.enabled

    def key(self, owner_id: str, image: str) -> str:
        """The Redis key of an image's generation (image names never hold ``@``)."""
        return f"{self._prefix}{image}@{owner_id}"

    def lookup(self, owner_id: str, image: str, reference: str, query: Callable[[], T]) -> T:
        """The cached answer for ``reference`` if the image has not changed since, else
        ``query()`` (kept for the next lookup)."""
        generation = self._generation(owner_id, image) if self.enabled else None
        if generation is None:
            return query()
        key = (owner_id, image, reference)
        cached = self._entries.get(key)
        if cached is not None and cached[0] == generation:
            return cached[1]
        # The generation was read before the query: if the image changes meanwhile, the
        # stamp is already old and the next lookup queries again.
        answer = query()
        self._entries.set(key, (generation, answer))
        return answer

    def invalidate(self, owner_id: str, image: str) -> None:
        """The image's tags or manifests changed (and the change is committed): every
        process's answers for it are stale from now on."""
        if self._redis is None or not self._entries.enabled:
            return
        try:
            self._redis.set(
                self.key(owner_id, image), secrets.token_bytes(8), ex=GENERATION_LIFETIME
            )
        except RedisError as exc:
            # The change is stored; other processes may serve the old answer until their
            # entries expire (the cache TTL). Ours stops now.
            self._entries.clear()
            log.warning("could not invalidate cached lookups of %s: %s", image, exc)

    def clear(self) -> None:
        """Forget this process's answers."""
        self._entries.clear()

    def _generation(self, owner_id: str, image: str) -> object:
        """The image's generation, created when missing; ``None``: Redis is failing."""
        if self._skip_until > self._clock():
            return None
        assert self._redis is not None
        key = self.key(owner_id, image)
        try:
            generation = self._redis.get(key)
            if generation is None:
                # First lookup since Redis started (or since the key expired): a new
                # random token, which no answer cached before can carry.
                self._redis.set(key, secrets.token_bytes(8), nx=True, ex=GENERATION_LIFETIME)
                generation = self._redis.get(key)
        except RedisError as exc:
            with self._lock:
                self._skip_until = self._clock() + BACKOFF
            self._entries.clear()
            log.warning("Redis failed; tag lookups skip the cache for %.0f s: %s", BACKOFF, exc)
            return None
        return generation
