"""Storage settings beyond the backend's name: the S3 bucket and blob download offload."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from forge_container.config_values import (
    ConfigError,
    boolean,
    choice,
    http_url,
    integer,
    optional,
    string,
)

STORAGE_BACKENDS = ("filesystem", "s3", "database")
ADDRESSING_STYLES = ("auto", "path", "virtual")
#: ``CONTAINER_REGISTRY_BLOB_OFFLOAD``: ``""`` (the app streams), nginx, or Apache/lighttpd.
OFFLOAD_MODES = ("", "x-accel-redirect", "x-sendfile")
#: S3 refuses multipart parts below 5 MiB (but the last) and above 5 GiB.
S3_MIN_PART_SIZE = 5 * 1024**2
S3_MAX_PART_SIZE = 5 * 1024**3

DEFAULTS: dict[str, Any] = {
    "CONTAINER_REGISTRY_S3_BUCKET": None,
    "CONTAINER_REGISTRY_S3_PREFIX": "",
    "CONTAINER_REGISTRY_S3_ENDPOINT_URL": None,
    "CONTAINER_REGISTRY_S3_REGION": None,
    "CONTAINER_REGISTRY_S3_ACCESS_KEY_ID": None,
    "CONTAINER_REGISTRY_S3_SECRET_ACCESS_KEY": None,
    "CONTAINER_REGISTRY_S3_ADDRESSING_STYLE": "auto",
    "CONTAINER_REGISTRY_S3_PART_SIZE": 8 * 1024**2,
    "CONTAINER_REGISTRY_S3_REDIRECT": False,
    "CONTAINER_REGISTRY_S3_REDIRECT_EXPIRY": 1200,
    "CONTAINER_REGISTRY_BLOB_OFFLOAD": "",
    "CONTAINER_REGISTRY_BLOB_OFFLOAD_PREFIX": "/_container_blobs/",
}


@dataclass(frozen=True)
class S3Settings:
    """Where the ``s3`` driver keeps blobs (``CONTAINER_REGISTRY_S3_*``)."""

    bucket: str
    prefix: str
    endpoint_url: str | None
    region: str | None
    access_key_id: str | None
    secret_access_key: str | None = None
    addressing_style: str = "auto"
    part_size: int = 8 * 1024**2
    redirect: bool = False
    redirect_expiry: int = 1200

    def __repr__(self) -> str:  # never print the secret
        return (
            f"S3Settings(bucket={self.bucket!r}, prefix={self.prefix!r},"
            f" endpoint_url={self.endpoint_url!r})"
        )


@dataclass(frozen=True)
class OffloadSettings:
    """Whole-blob GETs handed to the front proxy (``CONTAINER_REGISTRY_BLOB_OFFLOAD*``)."""

    mode: str
    prefix: str


def load_s3(config: Mapping[str, Any], backend: str) -> S3Settings | None:
    """The S3 settings, validated when ``backend`` is ``s3`` (else ``None``)."""
    if backend != "s3":
        return None
    bucket = optional(config, "CONTAINER_REGISTRY_S3_BUCKET", str)
    if not bucket:
        raise ConfigError(
            "CONTAINER_REGISTRY_S3_BUCKET: required when CONTAINER_REGISTRY_STORAGE_BACKEND is 's3'"
        )
    prefix = string(config, "CONTAINER_REGISTRY_S3_PREFIX").strip("/")
    if any(part.startswith(".") or not part for part in prefix.split("/") if prefix):
        raise ConfigError(
            f"CONTAINER_REGISTRY_S3_PREFIX: {prefix!r} is not a key prefix like 'registry'"
        )
    key_id = optional(config, "CONTAINER_REGISTRY_S3_ACCESS_KEY_ID", str)
    secret = optional(config, "CONTAINER_REGISTRY_S3_SECRET_ACCESS_KEY", str)
    if (key_id is None) != (secret is None):
        raise ConfigError(
            "CONTAINER_REGISTRY_S3_ACCESS_KEY_ID: set it together with"
            " CONTAINER_REGISTRY_S3_SECRET_ACCESS_KEY, or neither (boto3's default credentials)"
        )
    return S3Settings(
        bucket=bucket,
        prefix=prefix,
        endpoint_url=http_url(config, "CONTAINER_REGISTRY_S3_ENDPOINT_URL"),
        region=optional(config, "CONTAINER_REGISTRY_S3_REGION", str),
        access_key_id=key_id,
        secret_access_key=secret,
        addressing_style=choice(
            config, "CONTAINER_REGISTRY_S3_ADDRESSING_STYLE", ADDRESSING_STYLES
        ),
        part_size=integer(
            config,
            "CONTAINER_REGISTRY_S3_PART_SIZE",
            minimum=S3_MIN_PART_SIZE,
            maximum=S3_MAX_PART_SIZE,
        ),
        redirect=boolean(config, "CONTAINER_REGISTRY_S3_REDIRECT"),
        redirect_expiry=integer(
            config, "CONTAINER_REGISTRY_S3_REDIRECT_EXPIRY", minimum=10, maximum=7 * 24 * 3600
        ),
    )


def load_offload(config: Mapping[str, Any], backend: str) -> OffloadSettings:
    """How whole-blob downloads leave the app; offload needs the ``filesystem`` backend."""
    mode = choice(config, "CONTAINER_REGISTRY_BLOB_OFFLOAD", OFFLOAD_MODES)
    if mode and backend != "filesystem":
        raise ConfigError(
            "CONTAINER_REGISTRY_BLOB_OFFLOAD: needs the 'filesystem' storage backend"
            " (use CONTAINER_REGISTRY_S3_REDIRECT with 's3')"
        )
    prefix = string(config, "CONTAINER_REGISTRY_BLOB_OFFLOAD_PREFIX")
    if not prefix.startswith("/") or not prefix.endswith("/") or "//" in prefix or " " in prefix:
        raise ConfigError(
            "CONTAINER_REGISTRY_BLOB_OFFLOAD_PREFIX: expected an internal location such as"
            f" '/_container_blobs/', got {prefix!r}"
        )
    return OffloadSettings(mode=mode, prefix=prefix)
