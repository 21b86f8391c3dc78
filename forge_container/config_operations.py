"""Operations settings: metrics, health, access logs, request rate limits, bandwidth caps."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from forge_container.config_values import ConfigError, boolean, integer, optional, url_path

DEFAULTS: dict[str, Any] = {
    "CONTAINER_REGISTRY_METRICS_ENABLED": False,
    "CONTAINER_REGISTRY_METRICS_PATH": "/-/registry/metrics",
    "CONTAINER_REGISTRY_METRICS_TOKEN": None,
    "CONTAINER_REGISTRY_HEALTH_ENABLED": True,
    "CONTAINER_REGISTRY_HEALTH_PATH": "/-/registry/health",
    "CONTAINER_REGISTRY_ACCESS_LOG": True,
    "CONTAINER_REGISTRY_RATE_LIMIT_REQUESTS": 0,
    "CONTAINER_REGISTRY_RATE_LIMIT_WINDOW": 60,
    "CONTAINER_REGISTRY_BANDWIDTH_UPLOAD": 0,
    "CONTAINER_REGISTRY_BANDWIDTH_DOWNLOAD": 0,
}

#: The shortest metrics token accepted: it is a shared secret.
MIN_METRICS_TOKEN = 16


@dataclass(frozen=True)
class OperationsSettings:
    """``settings.operations``: what operators watch and limit."""

    metrics_enabled: bool = False
    metrics_path: str = "/-/registry/metrics"
    metrics_token: str | None = None
    health_enabled: bool = True
    health_path: str = "/-/registry/health"
    access_log: bool = True
    rate_limit_requests: int = 0
    rate_limit_window: int = 60
    bandwidth_upload: int = 0
    bandwidth_download: int = 0

    def __repr__(self) -> str:  # never print the token
        return (
            f"OperationsSettings(metrics_enabled={self.metrics_enabled},"
            f" rate_limit_requests={self.rate_limit_requests})"
        )


def load_operations(config: Mapping[str, Any]) -> OperationsSettings:
    """Validate the operations keys."""
    metrics_enabled = boolean(config, "CONTAINER_REGISTRY_METRICS_ENABLED")
    token = optional(config, "CONTAINER_REGISTRY_METRICS_TOKEN", str)
    if metrics_enabled and (token is None or len(token) < MIN_METRICS_TOKEN):
        raise ConfigError(
            "CONTAINER_REGISTRY_METRICS_TOKEN: metrics are enabled; set a bearer token of at"
            f" least {MIN_METRICS_TOKEN} characters for the scraper"
        )
    metrics_path = url_path(config, "CONTAINER_REGISTRY_METRICS_PATH")
    health_path = url_path(config, "CONTAINER_REGISTRY_HEALTH_PATH")
    if metrics_path == health_path:
        raise ConfigError("CONTAINER_REGISTRY_HEALTH_PATH: must differ from the metrics path")
    return OperationsSettings(
        metrics_enabled=metrics_enabled,
        metrics_path=metrics_path,
        metrics_token=token,
        health_enabled=boolean(config, "CONTAINER_REGISTRY_HEALTH_ENABLED"),
        health_path=health_path,
        access_log=boolean(config, "CONTAINER_REGISTRY_ACCESS_LOG"),
        rate_limit_requests=integer(config, "CONTAINER_REGISTRY_RATE_LIMIT_REQUESTS", minimum=0),
        rate_limit_window=integer(config, "CONTAINER_REGISTRY_RATE_LIMIT_WINDOW", minimum=1),
        bandwidth_upload=integer(config, "CONTAINER_REGISTRY_BANDWIDTH_UPLOAD", minimum=0),
        bandwidth_download=integer(config, "CONTAINER_REGISTRY_BANDWIDTH_DOWNLOAD", minimum=0),
    )
