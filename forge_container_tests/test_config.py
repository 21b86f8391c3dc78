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
        ("CONTAINER_REGISTRY_STORAGE_BACKEND", "floppy", "unknown backend"),
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
