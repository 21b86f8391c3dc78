"""Configuration keys, their defaults, and the frozen settings validated once at start-up.

Every key is documented in ``docs/configuration.rst``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

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
}

#: The spec's floor for the manifest size limit: registries must accept at least 4 MiB.
MIN_MANIFEST_SIZE = 4 * 1024**2

STORAGE_BACKENDS = ("filesystem",)
#: The largest page the package pages may be configured to show.
MAX_UI_PAGE_SIZE = 500

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration value that cannot be used; the message names the key."""


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


def load_settings(config: Mapping[str, Any], *, instance_path: str) -> Settings:
    """Validate the ``CONTAINER_REGISTRY_*`` keys of ``config`` into :class:`Settings`."""
    secret = config.get("CONTAINER_REGISTRY_TOKEN_SECRET")
    if secret is None:
        secret = config.get("SECRET_KEY")
        if not secret:
            raise ConfigError(
                "CONTAINER_REGISTRY_TOKEN_SECRET is not set and neither is SECRET_KEY:"
                " registry tokens need a signing secret"
            )
    secrets = _secrets(secret)
    token_ttl = _int(config, "CONTAINER_REGISTRY_TOKEN_TTL", minimum=60)
    refresh_ttl = _int(config, "CONTAINER_REGISTRY_REFRESH_TOKEN_TTL", minimum=token_ttl)
    storage_backend = _str(config, "CONTAINER_REGISTRY_STORAGE_BACKEND")
    if storage_backend not in STORAGE_BACKENDS:
        raise ConfigError(
            f"CONTAINER_REGISTRY_STORAGE_BACKEND: unknown backend {storage_backend!r};"
            f" choose one of {', '.join(STORAGE_BACKENDS)}"
        )
    storage_path = _optional(config, "CONTAINER_REGISTRY_STORAGE_PATH", str) or os.path.join(
        instance_path, "container-registry"
    )
    realm = _optional(config, "CONTAINER_REGISTRY_TOKEN_REALM", str)
    if realm is not None and not realm.startswith(("http://", "https://")):
        raise ConfigError(f"CONTAINER_REGISTRY_TOKEN_REALM: {realm!r} is not an http(s) URL")
    redis_url = _optional(config, "CONTAINER_REGISTRY_REDIS_URL", str)
    if redis_url is not None and not redis_url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(f"CONTAINER_REGISTRY_REDIS_URL: {redis_url!r} is not a redis:// URL")
    service = _str(config, "CONTAINER_REGISTRY_SERVICE")
    if not service or '"' in service:
        raise ConfigError("CONTAINER_REGISTRY_SERVICE: must be a non-empty name without quotes")
    return Settings(
        service=service,
        token_realm=realm,
        token_secrets=secrets,
        token_ttl=token_ttl,
        refresh_token_ttl=refresh_ttl,
        allow_anonymous=_bool(config, "CONTAINER_REGISTRY_ALLOW_ANONYMOUS"),
        proxy_count=_int(config, "CONTAINER_REGISTRY_PROXY_COUNT", minimum=0),
        login_max_failures=_int(config, "CONTAINER_REGISTRY_LOGIN_MAX_FAILURES", minimum=0),
        login_failure_window=_int(config, "CONTAINER_REGISTRY_LOGIN_FAILURE_WINDOW", minimum=1),
        redis_url=redis_url,
        redis_key_prefix=_str(config, "CONTAINER_REGISTRY_REDIS_KEY_PREFIX"),
        storage_backend=storage_backend,
        storage_path=storage_path,
        max_blob_size=_int(config, "CONTAINER_REGISTRY_MAX_BLOB_SIZE", minimum=0),
        max_manifest_size=_int(
            config, "CONTAINER_REGISTRY_MAX_MANIFEST_SIZE", minimum=MIN_MANIFEST_SIZE
        ),
        catalog_max_entries=_int(config, "CONTAINER_REGISTRY_CATALOG_MAX_ENTRIES", minimum=1),
        cache_ttl=_int(config, "CONTAINER_REGISTRY_CACHE_TTL", minimum=0),
        queue=_name(config, "CONTAINER_REGISTRY_QUEUE"),
        upload_expiry=_int(config, "CONTAINER_REGISTRY_UPLOAD_EXPIRY", minimum=60),
        gc_grace=_int(config, "CONTAINER_REGISTRY_GC_GRACE", minimum=0),
        gc_untagged_age=_int(config, "CONTAINER_REGISTRY_GC_UNTAGGED_AGE", minimum=0),
        job_batch_size=_int(config, "CONTAINER_REGISTRY_JOB_BATCH_SIZE", minimum=1),
        cleanup_interval=_int(config, "CONTAINER_REGISTRY_CLEANUP_INTERVAL", minimum=60),
        quota_total_size=_int(config, "CONTAINER_REGISTRY_QUOTA_TOTAL_SIZE", minimum=0),
        quota_versions=_int(config, "CONTAINER_REGISTRY_QUOTA_VERSIONS", minimum=0),
        quota_blob_size=_int(config, "CONTAINER_REGISTRY_QUOTA_BLOB_SIZE", minimum=0),
        quota_exempt_admins=_bool(config, "CONTAINER_REGISTRY_QUOTA_EXEMPT_ADMINS"),
        ui_enabled=_bool(config, "CONTAINER_REGISTRY_UI_ENABLED"),
        ui_url_prefix=_url_prefix(config, "CONTAINER_REGISTRY_UI_URL_PREFIX"),
        ui_layout=_template_name(config, "CONTAINER_REGISTRY_UI_LAYOUT"),
        ui_page_size=_page_size(config, "CONTAINER_REGISTRY_UI_PAGE_SIZE"),
        registry_host=_registry_host(config, "CONTAINER_REGISTRY_REGISTRY_HOST"),
    )


def _url_prefix(config: Mapping[str, Any], key: str) -> str:
    """Empty, or ``/a/b``: no trailing slash, and never under ``/v2``."""
    value = _str(config, key).rstrip("/")
    if value and (not value.startswith("/") or "//" in value or any(c in value for c in "<>?#")):
        raise ConfigError(f"{key}: expected '' or a path like '/packages', got {value!r}")
    if value == "/v2" or value.startswith("/v2/"):
        raise ConfigError(f"{key}: the package pages cannot live under /v2")
    return value


def _template_name(config: Mapping[str, Any], key: str) -> str:
    value = _str(config, key)
    if not value.strip():
        raise ConfigError(f"{key}: expected a template name such as 'layout.html'")
    return value


def _page_size(config: Mapping[str, Any], key: str) -> int:
    value = _int(config, key, minimum=1)
    if value > MAX_UI_PAGE_SIZE:
        raise ConfigError(f"{key}: must be at most {MAX_UI_PAGE_SIZE}, got {value}")
    return value


def _registry_host(config: Mapping[str, Any], key: str) -> str | None:
    """``host[:port]`` as clients push to it; ``None``: the host of each request."""
    value = _optional(config, key, str)
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


def _raw(config: Mapping[str, Any], key: str) -> Any:
    return config[key] if key in config else DEFAULTS[key]


def _str(config: Mapping[str, Any], key: str) -> str:
    value = _raw(config, key)
    if not isinstance(value, str):
        raise ConfigError(f"{key}: expected a string, got {value!r}")
    return value


def _optional(config: Mapping[str, Any], key: str, kind: Callable[[Any], T]) -> T | None:
    value = _raw(config, key)
    if value is None or value == "":
        return None
    if kind is str and not isinstance(value, str):
        raise ConfigError(f"{key}: expected a string, got {value!r}")
    return kind(value)


def _name(config: Mapping[str, Any], key: str) -> str:
    value = _str(config, key)
    if not value or not value.replace("_", "").replace("-", "").replace(".", "").isalnum():
        raise ConfigError(f"{key}: expected a name of letters, digits, '.', '_' or '-'")
    return value


def _int(config: Mapping[str, Any], key: str, *, minimum: int) -> int:
    value = _raw(config, key)
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{key}: expected a whole number, got {value!r}")
    if value < minimum:
        raise ConfigError(f"{key}: must be at least {minimum}, got {value}")
    return value


def _bool(config: Mapping[str, Any], key: str) -> bool:
    value = _raw(config, key)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ConfigError(f"{key}: expected true or false, got {value!r}")
