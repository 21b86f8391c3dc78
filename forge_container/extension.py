"""The composition root: config, settings, host adapter, blueprints, error handling, CLI."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import Flask, current_app, has_app_context

from forge_container import events
from forge_container.auth.ratelimit import make_failure_limiter, make_request_limiter
from forge_container.auth.tokens import TokenService
from forge_container.cache import HotPathCache
from forge_container.cli import container_cli
from forge_container.config import DEFAULTS, ConfigError, Settings, load_settings
from forge_container.host import HostAdapter
from forge_container.manifest_refs import ManifestRefs
from forge_container.redis_client import make_redis
from forge_container.state import EXTENSION_KEY, RegistryState
from forge_container.storage import make_driver
from forge_container.views import register_views
from forge_container.views.middleware import RegistryMiddleware

if TYPE_CHECKING:
    from flask_sqlalchemy import SQLAlchemy

    from forge_container.metrics import RegistryMetrics


class ContainerRegistry:
    """The Flask extension: ``ContainerRegistry(app, db=db, host=adapter)`` or ``init_app``.

    It keeps nothing of the app: per-app state lives in ``app.extensions["forge_container"]``.
    """

    def __init__(
        self,
        app: Flask | None = None,
        *,
        db: SQLAlchemy | None = None,
        host: HostAdapter | None = None,
    ) -> None:
        self._db = db
        self._host = host
        if app is not None:
            self.init_app(app)

    def init_app(
        self, app: Flask, *, db: SQLAlchemy | None = None, host: HostAdapter | None = None
    ) -> None:
        """Configure ``app``: validate settings, register the ``/v2`` blueprint and the CLI."""
        if EXTENSION_KEY in app.extensions:
            raise RuntimeError("ContainerRegistry is already registered on this app")
        db = db or self._db
        host = host or self._host
        if db is None or "sqlalchemy" not in app.extensions:
            raise RuntimeError("pass db= and call the host's SQLAlchemy.init_app(app) first")
        if host is None or not isinstance(host, HostAdapter):
            raise TypeError("host= must implement forge_container.host.HostAdapter")
        for key, value in DEFAULTS.items():
            app.config.setdefault(key, value)
        settings = load_settings(app.config, instance_path=app.instance_path)
        redis = make_redis(settings)
        metrics = _make_metrics(settings)
        request_limiter = make_request_limiter(settings, redis)
        app.extensions[EXTENSION_KEY] = RegistryState(
            settings=settings,
            host=host,
            db=db,
            tokens=TokenService(settings),
            login_limiter=make_failure_limiter(settings, redis),
            storage=make_driver(settings, db=db),
            redis=redis,
            cache=HotPathCache(settings.cache_ttl),
            manifest_refs=ManifestRefs(
                redis, prefix=settings.redis_key_prefix, ttl=settings.cache_ttl
            ),
            request_limiter=request_limiter if request_limiter.enabled else None,
            metrics=metrics,
        )
        register_views(app)
        app.wsgi_app = RegistryMiddleware(  # type: ignore[method-assign]
            app.wsgi_app, settings.operations, metrics
        )
        app.cli.add_command(container_cli)
        for signal in (events.image_pushed, events.tag_deleted, events.manifest_deleted):
            signal.connect(_forget_lookups)


def _forget_lookups(sender: object, *, owner_id: str, image: str, **change: object) -> None:
    """A committed change to an image's tags or manifests: its cached lookups are stale."""
    if has_app_context():
        state = current_app.extensions.get(EXTENSION_KEY)
        if isinstance(state, RegistryState):
            state.manifest_refs.invalidate(owner_id, image)


def _make_metrics(settings: Settings) -> RegistryMetrics | None:
    """The app's metrics; prometheus-client is imported only when they are enabled."""
    if not settings.operations.metrics_enabled:
        return None
    try:
        from forge_container.metrics import RegistryMetrics
    except ImportError as exc:
        if exc.name != "prometheus_client" and not str(exc.name).startswith("prometheus_client."):
            raise
        raise ConfigError(
            "CONTAINER_REGISTRY_METRICS_ENABLED: metrics need prometheus-client;"
            " install forge-container[metrics]"
        ) from exc
    return RegistryMetrics()
