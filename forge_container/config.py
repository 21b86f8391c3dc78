"""Configuration keys, their defaults, and the frozen settings validated once at start-up.

Every key is documented in ``docs/configuration.rst``.
"""

from __future__ import annotations

import os
from collections import ChainMap
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from forge_container import config_operations, config_storage
from forge_container.config_operations import OperationsSettings, load_operations
from forge_container.config_storage import (
    STORAGE_BACKENDS,
    OffloadSettings,
    S3Settings,
    load_offload,
    load_s3,
)
from forge_container.config_values import (
    ConfigError,
    boolean,
    choice,
    http_url,
    integer,
    name,
    optional,
    string,
)

__all__ = [
    "DEFAULTS",
    "PREFIX",
    "STORAGE_BACKENDS",
    "ConfigError",
    "OffloadSettings",
    "OperationsSettings",
    "S3Settings",
    "Settings",
    "load_settings",
]

PREFIX = "CONTAINER_REGISTRY_"

#: Defaults, applied with ``app.config.setdefault`` in ``init_app``.
DEFAULTS: dict[str, Any] = {
    "CONTAINER_REGISTRY_SERVICE": "forge-container",
    "CONTAINER_REGISTRY_TOKEN_REALM": None,
    "CONTAINER_REGISTRY_TOKEN_SECRET": None,
    "CONTAINER_REGISTRY_TOKEN_TTL": 300,
    "CONTAINER_REGISTRY_REFRESH_TOKEN_TTL": 30 * 24 * 3600,
    "CONTAINER_REGISTRY_ALLOW_ANONYMOUS": True,
    "CONTAINER_REGISTRY_PROXY_COUNT": 0,
    "CONTAINER_REGISTRY_LOGIN_MAX_FAILURES": 10,
    "CONTAINER_REGISTRY_LOGIN_FAILURE_WINDOW": 300,
    "CONTAINER_REGISTRY_REDIS_URL": None,
    "CONTAINER_REGISTRY_REDIS_KEY_PREFIX": "forge_container:",
    "CONTAINER_REGISTRY_STORAGE_BACKEND": "filesystem",
    "CONTAINER_REGISTRY_STORAGE_PATH": None,
    "CONTAINER_REGISTRY_MAX_BLOB_SIZE": 10 * 1024**3,
    "CONTAINER_REGISTRY_MAX_MANIFEST_SIZE": 10 * 1024**2,
    "CONTAINER_REGISTRY_CATALOG_MAX_ENTRIES": 1000,
    "CONTAINER_REGISTRY_CACHE_TTL": 5,
    "CONTAINER_REGISTRY_QUEUE": "forge_container",
    "CONTAINER_REGISTRY_UPLOAD_EXPIRY": 86400,
    "CONTAINER_REGISTRY_GC_GRACE": 3600,
    "CONTAINER_REGISTRY_GC_UNTAGGED_AGE": 0,
    "CONTAINER_REGISTRY_JOB_BATCH_SIZE": 500,
    "CONTAINER_REGISTRY_CLEANUP_INTERVAL": 3600,
    "CONTAINER_REGISTRY_QUOTA_TOTAL_SIZE": 0,
    "CONTAINER_REGISTRY_QUOTA_VERSIONS": 0,
    "CONTAINER_REGISTRY_QUOTA_BLOB_SIZE": 0,
    "CONTAINER_REGISTRY_QUOTA_EXEMPT_ADMINS": True,
    "CONTAINER_REGISTRY_UI_ENABLED": True,
    "CONTAINER_REGISTRY_UI_URL_PREFIX": "",
    "CONTAINER_REGISTRY_UI_LAYOUT": "forge_container/layout.html",
    "CONTAINER_REGISTRY_UI_PAGE_SIZE": 25,
    "CONTAINER_REGISTRY_REGISTRY_HOST": None,
    **config_storage.DEFAULTS,
    **config_operations.DEFAULTS,
}

#: The spec's floor for the manifest size limit: registries must accept at least 4 MiB.
MIN_MANIFEST_SIZE = 4 * 1024**2

#: The largest page the package pages may be configured to show.
MAX_UI_PAGE_SIZE = 500


@dataclass(frozen=True)
class Settings:
    """The validated configuration of one app (``app.extensions["forge_container"].settings``)."""

    service: str
    token_realm: str | None
    token_secrets: tuple[str, ...]
    token_ttl: int
    refresh_token_ttl: int
    allow_anonymous: bool
    proxy_count: int
    login_max_failures: int
    login_failure_window: int
    redis_url: str | None
    redis_key_prefix: str
    storage_backend: str
    storage_path: str
    max_blob_size: int
    max_manifest_size: int
    catalog_max_entries: int
    cache_ttl: int
    queue: str
    upload_expiry: int
    gc_grace: int
    gc_untagged_age: int
    job_batch_size: int
    cleanup_interval: int
    quota_total_size: int
    quota_versions: int
    quota_blob_size: int
    quota_exempt_admins: bool
    ui_enabled: bool
    ui_url_prefix: str
    ui_layout: str
    ui_page_size: int
    registry_host: str | None
    s3: S3Settings | None = None
    offload: OffloadSettings = field(
        default_factory=lambda: OffloadSettings("", "/_container_blobs/")
    )
    operations: OperationsSettings = field(default_factory=OperationsSettings)


def load_settings(config: Mapping[str, Any], *, instance_path: str) -> Settings:
    """Validate the ``CONTAINER_REGISTRY_*`` keys of ``config`` into :class:`Settings`."""
    config = ChainMap(dict(config), DEFAULTS)
    secret = config.get("CONTAINER_REGISTRY_TOKEN_SECRET")
    if secret is None:
        secret = config.get("SECRET_KEY")
        if not secret:
            raise ConfigError(
                "CONTAINER_REGISTRY_TOKEN_SECRET is not set and neither is SECRET_KEY:"
                " registry tokens need a signing secret"
            )
    secrets = _secrets(secret)
    token_ttl = integer(config, "CONTAINER_REGISTRY_TOKEN_TTL", minimum=60)
    refresh_ttl = integer(config, "CONTAINER_REGISTRY_REFRESH_TOKEN_TTL", minimum=token_ttl)
    storage_backend = choice(config, "CONTAINER_REGISTRY_STORAGE_BACKEND", STORAGE_BACKENDS)
    storage_path = optional(config, "CONTAINER_REGISTRY_STORAGE_PATH", str) or os.path.join(
        instance_path, "container-registry"
    )
    realm = http_url(config, "CONTAINER_REGISTRY_TOKEN_REALM")
    redis_url = optional(config, "CONTAINER_REGISTRY_REDIS_URL", str)
    if redis_url is not None and not redis_url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(f"CONTAINER_REGISTRY_REDIS_URL: {redis_url!r} is not a redis:// URL")
    service = string(config, "CONTAINER_REGISTRY_SERVICE")
    if not service or '"' in service:
        raise ConfigError("CONTAINER_REGISTRY_SERVICE: must be a non-empty name without quotes")
    return Settings(
        service=service,
        token_realm=realm,
        token_secrets=secrets,
        token_ttl=token_ttl,
        refresh_token_ttl=refresh_ttl,
        allow_anonymous=boolean(config, "CONTAINER_REGISTRY_ALLOW_ANONYMOUS"),
        proxy_count=integer(config, "CONTAINER_REGISTRY_PROXY_COUNT", minimum=0),
        login_max_failures=integer(config, "CONTAINER_REGISTRY_LOGIN_MAX_FAILURES", minimum=0),
        login_failure_window=integer(config, "CONTAINER_REGISTRY_LOGIN_FAILURE_WINDOW", minimum=1),
        redis_url=redis_url,
        redis_key_prefix=string(config, "CONTAINER_REGISTRY_REDIS_KEY_PREFIX"),
        storage_backend=storage_backend,
        storage_path=storage_path,
        max_blob_size=integer(config, "CONTAINER_REGISTRY_MAX_BLOB_SIZE", minimum=0),
        max_manifest_size=integer(
            config, "CONTAINER_REGISTRY_MAX_MANIFEST_SIZE", minimum=MIN_MANIFEST_SIZE
        ),
        catalog_max_entries=integer(config, "CONTAINER_REGISTRY_CATALOG_MAX_ENTRIES", minimum=1),
        cache_ttl=integer(config, "CONTAINER_REGISTRY_CACHE_TTL", minimum=0),
        queue=name(config, "CONTAINER_REGISTRY_QUEUE"),
        upload_expiry=integer(config, "CONTAINER_REGISTRY_UPLOAD_EXPIRY", minimum=60),
        gc_grace=integer(config, "CONTAINER_REGISTRY_GC_GRACE", minimum=0),
        gc_untagged_age=integer(config, "CONTAINER_REGISTRY_GC_UNTAGGED_AGE", minimum=0),
        job_batch_size=integer(config, "CONTAINER_REGISTRY_JOB_BATCH_SIZE", minimum=1),
        cleanup_interval=integer(config, "CONTAINER_REGISTRY_CLEANUP_INTERVAL", minimum=60),
        quota_total_size=integer(config, "CONTAINER_REGISTRY_QUOTA_TOTAL_SIZE", minimum=0),
        quota_versions=integer(config, "CONTAINER_REGISTRY_QUOTA_VERSIONS", minimum=0),
        quota_blob_size=integer(config, "CONTAINER_REGISTRY_QUOTA_BLOB_SIZE", minimum=0),
        quota_exempt_admins=boolean(config, "CONTAINER_REGISTRY_QUOTA_EXEMPT_ADMINS"),
        ui_enabled=boolean(config, "CONTAINER_REGISTRY_UI_ENABLED"),
        ui_url_prefix=_url_prefix(config, "CONTAINER_REGISTRY_UI_URL_PREFIX"),
        ui_layout=_template_name(config, "CONTAINER_REGISTRY_UI_LAYOUT"),
        ui_page_size=_page_size(config, "CONTAINER_REGISTRY_UI_PAGE_SIZE"),
        registry_host=_registry_host(config, "CONTAINER_REGISTRY_REGISTRY_HOST"),
        s3=load_s3(config, storage_backend),
        offload=load_offload(config, storage_backend),
        operations=load_operations(config),
    )


def _url_prefix(config: Mapping[str, Any], key: str) -> str:
    """Empty, or ``/a/b``: no trailing slash, and never under ``/v2``."""
    value = string(config, key).rstrip("/")
    if value and (not value.startswith("/") or "//" in value or any(c in value for c in "<>?#")):
        raise ConfigError(f"{key}: expected '' or a path like '/packages', got {value!r}")
    if value == "/v2" or value.startswith("/v2/"):
        raise ConfigError(f"{key}: the package pages cannot live under /v2")
    return value


def _template_name(config: Mapping[str, Any], key: str) -> str:
    value = string(config, key)
    if not value.strip():
        raise ConfigError(f"{key}: expected a template name such as 'layout.html'")
    return value


def _page_size(config: Mapping[str, Any], key: str) -> int:
    value = integer(config, key, minimum=1)
    if value > MAX_UI_PAGE_SIZE:
        raise ConfigError(f"{key}: must be at most {MAX_UI_PAGE_SIZE}, got {value}")
    return value


def _registry_host(config: Mapping[str, Any], key: str) -> str | None:
    """``host[:port]`` as clients push to it; ``None``: the host of each request."""
    value = optional(config, key, str)
    if value is not None and (
        "://" in value or any(c in value for c in "/?#@ \t") or value.strip() != value
    ):
        raise ConfigError(f"{key}: expected a host name with an optional port, got {value!r}")
    return value


def _secrets(value: Any) -> tuple[str, ...]:
    key = "CONTAINER_REGISTRY_TOKEN_SECRET"
    if isinstance(value, str | bytes):
        value = [value]
    if not isinstance(value, list | tuple) or not value:
        raise ConfigError(f"{key}: expected a secret or a non-empty list of secrets")
    secrets: list[str] = []
    for item in value:
        if isinstance(item, bytes):
            item = item.decode("latin-1")
        if not isinstance(item, str) or len(item) < 16:
            raise ConfigError(f"{key}: every secret must be a string of at least 16 characters")
        secrets.append(item)
    return tuple(secrets)
