"""Small in-process caches for the hot path: bounded, thread-safe, and short-lived.

Clients hammer the manifest, tag and blob-HEAD routes with the same credentials; each
request would otherwise verify its token or password and ask the forge for the owner and
the caller's access again. Entries live at most ``ttl`` seconds, so a revoked grant stops
working within that time on every process. No background threads: expired entries are
dropped when met, and the least recently used go first when a cache is full.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar, cast

from forge_container.auth.tokens import TokenClaims
from forge_container.host import Access, Owner, Principal

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

#: Entries per cache: enough for the hot set of a busy node, a few MiB at most.
MAX_ENTRIES = 10_000
#: Access decisions are per principal and image, so they get more room.
MAX_ACCESS_ENTRIES = 20_000

_MISSING = object()


class TTLCache(Generic[K, V]):
    """A thread-safe LRU mapping whose entries expire ``ttl`` seconds after they are set.

    ``ttl == 0`` disables it: nothing is stored, every lookup misses. ``clock`` is a
    monotonic clock in seconds (injectable for tests).
    """

    def __init__(
        self,
        ttl: float,
        max_entries: int = MAX_ENTRIES,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl < 0 or max_entries < 1:
            raise ValueError("ttl must be >= 0 and max_entries >= 1")
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.ttl > 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def get(self, key: K, default: V | None = None) -> V | None:
        """The live value for ``key``, else ``default``."""
        value = self._lookup(key)
        return default if value is _MISSING else cast(V, value)

    def set(self, key: K, value: V, ttl: float | None = None) -> None:
        """Store ``value`` for ``ttl`` seconds, never longer than the cache's own TTL."""
        lifetime = self.ttl if ttl is None else min(ttl, self.ttl)
        if lifetime <= 0:
            return
        with self._lock:
            self._entries[key] = (self._clock() + lifetime, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def get_or_set(self, key: K, compute: Callable[[], V]) -> V:
        """The cached value, or ``compute()`` stored for next time (``None`` included).

        ``compute`` runs outside the lock: two threads may compute the same key at once,
        which is harmless and never blocks the others.
        """
        value = self._lookup(key)
        if value is not _MISSING:
            return cast(V, value)
        computed = compute()
        self.set(key, computed)
        return computed

    def discard(self, key: K) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def _lookup(self, key: K) -> object:
        if not self.enabled:
            return _MISSING
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return _MISSING
            if entry[0] <= self._clock():
                del self._entries[key]
                return _MISSING
            self._entries.move_to_end(key)
            return entry[1]


class HotPathCache:
    """The caches of one app (kept in its ``RegistryState``), all with the same TTL.

    - ``tokens``: verified bearer tokens, by a hash of the token, never past its expiry;
    - ``logins``: successful Basic logins, by a keyed hash of username and password (the
      password never lands in memory as a key); failures are never cached, so they all
      reach the failed-login limit;
    - ``owners``: ``host.get_owner(name)``, unknown owners included;
    - ``access``: ``host.access(principal, owner, image)``, by principal (id, token id,
      scopes), owner (id, visibility) and image.
    """

    def __init__(self, ttl: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.tokens: TTLCache[bytes, TokenClaims] = TTLCache(ttl, clock=clock)
        self.logins: TTLCache[bytes, Principal] = TTLCache(ttl, clock=clock)
        self.owners: TTLCache[str, Owner | None] = TTLCache(ttl, clock=clock)
        self.access: TTLCache[tuple[Principal | None, Owner, str], Access] = TTLCache(
            ttl, MAX_ACCESS_ENTRIES, clock=clock
        )
        self._salt = secrets.token_bytes(32)

    def token_key(self, token: str) -> bytes:
        return hashlib.sha256(token.encode()).digest()

    def login_key(self, username: str, password: str) -> bytes:
        """A per-process keyed SHA-256 of the credentials: no raw password as a key."""
        message = username.encode() + b"\0" + password.encode()
        return hmac.new(self._salt, message, hashlib.sha256).digest()

    def claims(self, token: str, verify: Callable[[str], TokenClaims]) -> TokenClaims:
        """``verify(token)``, cached until the token expires or the TTL passes."""
        key = self.token_key(token)
        claims = self.tokens.get(key)
        if claims is None:
            claims = verify(token)
            remaining = self.ttl if claims.expires_at is None else claims.expires_at - time.time()
            self.tokens.set(key, claims, ttl=remaining)
        return claims

    def clear(self) -> None:
        """Forget everything (after a bulk permission change, say)."""
        for cache in (self.tokens, self.logins, self.owners, self.access):
            cache.clear()


#: Bytes the manifest content cache of one process may hold, and the largest entry.
CONTENT_MAX_BYTES = 32 << 20
CONTENT_MAX_ITEM = 1 << 20


class ContentCache:
    """A thread-safe LRU of immutable content by digest, bounded by its total bytes.

    Content addressed by its digest never changes, so entries need no TTL and no
    invalidation: whether a reader may see a digest is decided elsewhere, on every request.
    Items over ``max_item`` bytes are not kept.
    """

    def __init__(
        self, max_bytes: int = CONTENT_MAX_BYTES, max_item: int = CONTENT_MAX_ITEM
    ) -> None:
        if max_bytes < 0 or max_item < 0:
            raise ValueError("max_bytes and max_item must be >= 0")
        self.max_bytes = max_bytes
        self.max_item = min(max_item, max_bytes)
        self._entries: OrderedDict[str, bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    @property
    def size(self) -> int:
        """The bytes held now."""
        return self._size

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, digest: str) -> bytes | None:
        with self._lock:
            data = self._entries.get(digest)
            if data is not None:
                self._entries.move_to_end(digest)
            return data

    def put(self, digest: str, data: bytes) -> None:
        """Keep ``data`` (the content of ``digest``), evicting the least recently used."""
        if len(data) > self.max_item:
            return
        with self._lock:
            old = self._entries.pop(digest, None)
            if old is not None:
                self._size -= len(old)
            self._entries[digest] = data
            self._size += len(data)
            while self._size > self.max_bytes:
                _, evicted = self._entries.popitem(last=False)
                self._size -= len(evicted)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._size = 0
