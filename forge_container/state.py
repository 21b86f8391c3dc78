"""Per-app registry state, kept in ``app.extensions`` (never on the extension object)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flask import Flask, current_app

from forge_container.auth.ratelimit import FailureLimiter, RequestLimiter
from forge_container.auth.tokens import TokenService
from forge_container.cache import ContentCache, HotPathCache
from forge_container.config import Settings
from forge_container.host import HostAdapter
from forge_container.manifest_refs import ManifestRefs
from forge_container.storage import StorageDriver

if TYPE_CHECKING:
    from flask_sqlalchemy import SQLAlchemy
    from redis import Redis

    from forge_container.metrics import RegistryMetrics

#: The key of the plugin's state in ``app.extensions``.
EXTENSION_KEY = "forge_container"


@dataclass(frozen=True)
class RegistryState:
    """What one app's registry is made of; reach it with :func:`get_state`."""

    settings: Settings
    host: HostAdapter
    db: SQLAlchemy
    tokens: TokenService
    login_limiter: FailureLimiter
    storage: StorageDriver
    redis: Redis | None
    #: Token, login, owner and access caches of the hot path (``CONTAINER_REGISTRY_CACHE_TTL``).
    cache: HotPathCache
    #: Manifest bytes by digest, for pulls (served only for a digest the image has now).
    manifest_bytes: ContentCache = field(default_factory=ContentCache)
    #: Tag and digest lookups of pulls, invalidated across processes through Redis.
    manifest_refs: ManifestRefs[Any] = field(
        default_factory=lambda: ManifestRefs(None, prefix="", ttl=0)
    )
    #: Requests per principal or address (``CONTAINER_REGISTRY_RATE_LIMIT_*``); ``None``: off.
    request_limiter: RequestLimiter | None = None
    #: Prometheus metrics, when ``CONTAINER_REGISTRY_METRICS_ENABLED``.
    metrics: RegistryMetrics | None = None


def get_state(app: Flask | None = None) -> RegistryState:
    """The registry state of ``app`` (default: the current app)."""
    target: Any = app if app is not None else current_app
    try:
        state: RegistryState = target.extensions[EXTENSION_KEY]
    except KeyError:
        raise RuntimeError("ContainerRegistry.init_app() was not called on this app") from None
    return state
