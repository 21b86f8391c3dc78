from __future__ import annotations

from typing import Any

import pytest

from forge_container.config import DEFAULTS, ConfigError, load_settings

SECRET = "s" * 32


def settings_from(**overrides: Any) -> Any:
    config = {**DEFAULTS, "SECRET_KEY": SECRET, **overrides}
    return load_settings(config, instance_path="/srv/instance")


def test_defaults_are_sane() -> None:
    settings = settings_from()
    assert settings.token_ttl == 300
    assert settings.token_secrets == (SECRET,)
    assert settings.storage_backend == "filesystem"
    assert settings.storage_path == "/srv/instance/container-registry"
    assert settings.allow_anonymous is True
    assert settings.redis_url is None


def test_settings_are_frozen() -> None:
    settings = settings_from()
    with pytest.raises(AttributeError):
        settings.token_ttl = 1


def test_token_secret_list_keeps_order_for_rotation() -> None:
    settings = settings_from(CONTAINER_REGISTRY_TOKEN_SECRET=["n" * 20, "o" * 20])
    assert settings.token_secrets == ("n" * 20, "o" * 20)


def test_strings_from_the_environment_are_coerced() -> None:
    settings = settings_from(
        CONTAINER_REGISTRY_TOKEN_TTL="600", CONTAINER_REGISTRY_ALLOW_ANONYMOUS="false"
    )
    assert settings.token_ttl == 600
    assert settings.allow_anonymous is False


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("CONTAINER_REGISTRY_TOKEN_TTL", 30, "at least 60"),
        ("CONTAINER_REGISTRY_TOKEN_TTL", "soon", "whole number"),
        ("CONTAINER_REGISTRY_TOKEN_TTL", True, "whole number"),
        ("CONTAINER_REGISTRY_REFRESH_TOKEN_TTL", 100, "at least 300"),
        ("CONTAINER_REGISTRY_ALLOW_ANONYMOUS", "maybe", "true or false"),
        ("CONTAINER_REGISTRY_STORAGE_BACKEND", "floppy", "unknown value"),
        ("CONTAINER_REGISTRY_TOKEN_REALM", "ftp://x/token", "http(s) URL"),
        ("CONTAINER_REGISTRY_REDIS_URL", "localhost:6379", "redis:// URL"),
        ("CONTAINER_REGISTRY_TOKEN_SECRET", "short", "at least 16"),
        ("CONTAINER_REGISTRY_TOKEN_SECRET", [], "non-empty list"),
        ("CONTAINER_REGISTRY_PROXY_COUNT", -1, "at least 0"),
        ("CONTAINER_REGISTRY_SERVICE", 'a"b', "without quotes"),
        ("CONTAINER_REGISTRY_LOGIN_FAILURE_WINDOW", 0, "at least 1"),
        ("CONTAINER_REGISTRY_MAX_MANIFEST_SIZE", 1024, "at least 4194304"),
        ("CONTAINER_REGISTRY_MAX_BLOB_SIZE", -1, "at least 0"),
        ("CONTAINER_REGISTRY_CATALOG_MAX_ENTRIES", 0, "at least 1"),
        ("CONTAINER_REGISTRY_CACHE_TTL", "a while", "whole number"),
    ],
)
def test_a_bad_value_names_its_key(key: str, value: Any, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        settings_from(**{key: value})
    assert key in str(info.value)
    assert words in str(info.value)


def test_a_signing_secret_is_required() -> None:
    config = {**DEFAULTS, "SECRET_KEY": None}
    with pytest.raises(ConfigError, match="CONTAINER_REGISTRY_TOKEN_SECRET"):
        load_settings(config, instance_path="/x")


@pytest.mark.parametrize(
    ("overrides", "key", "words"),
    [
        ({"CONTAINER_REGISTRY_STORAGE_BACKEND": "s3"}, "CONTAINER_REGISTRY_S3_BUCKET", "required"),
        (
            {
                "CONTAINER_REGISTRY_STORAGE_BACKEND": "s3",
                "CONTAINER_REGISTRY_S3_BUCKET": "b",
                "CONTAINER_REGISTRY_S3_PART_SIZE": 1024,
            },
            "CONTAINER_REGISTRY_S3_PART_SIZE",
            "at least 5242880",
        ),
        (
            {
                "CONTAINER_REGISTRY_STORAGE_BACKEND": "s3",
                "CONTAINER_REGISTRY_S3_BUCKET": "b",
                "CONTAINER_REGISTRY_S3_ACCESS_KEY_ID": "id",
            },
            "CONTAINER_REGISTRY_S3_ACCESS_KEY_ID",
            "together",
        ),
        (
            {
                "CONTAINER_REGISTRY_STORAGE_BACKEND": "s3",
                "CONTAINER_REGISTRY_S3_BUCKET": "b",
                "CONTAINER_REGISTRY_S3_ADDRESSING_STYLE": "sideways",
            },
            "CONTAINER_REGISTRY_S3_ADDRESSING_STYLE",
            "unknown value",
        ),
        (
            {
                "CONTAINER_REGISTRY_STORAGE_BACKEND": "s3",
                "CONTAINER_REGISTRY_S3_BUCKET": "b",
                "CONTAINER_REGISTRY_S3_ENDPOINT_URL": "127.0.0.1:8333",
            },
            "CONTAINER_REGISTRY_S3_ENDPOINT_URL",
            "http(s) URL",
        ),
        (
            {
                "CONTAINER_REGISTRY_STORAGE_BACKEND": "s3",
                "CONTAINER_REGISTRY_S3_BUCKET": "b",
                "CONTAINER_REGISTRY_BLOB_OFFLOAD": "x-sendfile",
            },
            "CONTAINER_REGISTRY_BLOB_OFFLOAD",
            "filesystem",
        ),
        (
            {"CONTAINER_REGISTRY_BLOB_OFFLOAD": "nginx"},
            "CONTAINER_REGISTRY_BLOB_OFFLOAD",
            "x-accel",
        ),
        (
            {"CONTAINER_REGISTRY_BLOB_OFFLOAD_PREFIX": "/no-slash"},
            "CONTAINER_REGISTRY_BLOB_OFFLOAD_PREFIX",
            "internal location",
        ),
        ({"CONTAINER_REGISTRY_METRICS_ENABLED": True}, "CONTAINER_REGISTRY_METRICS_TOKEN", "token"),
        ({"CONTAINER_REGISTRY_HEALTH_PATH": "/v2/health"}, "CONTAINER_REGISTRY_HEALTH_PATH", "/v2"),
        (
            {"CONTAINER_REGISTRY_HEALTH_PATH": "/-/registry/metrics"},
            "CONTAINER_REGISTRY_HEALTH_PATH",
            "differ",
        ),
        ({"CONTAINER_REGISTRY_RATE_LIMIT_WINDOW": 0}, "CONTAINER_REGISTRY_RATE_LIMIT_WINDOW", "1"),
        ({"CONTAINER_REGISTRY_BANDWIDTH_UPLOAD": -5}, "CONTAINER_REGISTRY_BANDWIDTH_UPLOAD", "0"),
    ],
)
def test_storage_and_operations_keys_are_validated(
    overrides: dict[str, Any], key: str, words: str
) -> None:
    with pytest.raises(ConfigError) as info:
        settings_from(**overrides)
    assert str(info.value).startswith(key)
    assert words in str(info.value)


def test_s3_settings_are_read_and_the_secret_never_printed() -> None:
    settings = settings_from(
        CONTAINER_REGISTRY_STORAGE_BACKEND="s3",
        CONTAINER_REGISTRY_S3_BUCKET="registry",
        CONTAINER_REGISTRY_S3_PREFIX="/forge/",
        CONTAINER_REGISTRY_S3_ENDPOINT_URL="http://127.0.0.1:8333",
        CONTAINER_REGISTRY_S3_ACCESS_KEY_ID="key-id",
        CONTAINER_REGISTRY_S3_SECRET_ACCESS_KEY="very-secret-value",
        CONTAINER_REGISTRY_S3_REDIRECT="true",
    )
    assert settings.s3 is not None
    assert (settings.s3.bucket, settings.s3.prefix) == ("registry", "forge")
    assert settings.s3.redirect is True
    assert settings.s3.part_size == 8 * 1024**2
    assert "very-secret-value" not in repr(settings)


def test_operations_default_to_health_on_and_metrics_limits_caps_off() -> None:
    ops = settings_from().operations
    assert ops.health_enabled and ops.access_log
    assert not ops.metrics_enabled
    assert (ops.rate_limit_requests, ops.bandwidth_upload, ops.bandwidth_download) == (0, 0, 0)
    assert settings_from().s3 is None
    assert settings_from().offload.mode == ""
