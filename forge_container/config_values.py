"""Parsers for config values: each checks one key and raises :class:`ConfigError` naming it.

They read from a mapping that already holds every key (the app config after
``setdefault``, or the defaults layered under a partial mapping by ``load_settings``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

T = TypeVar("T")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class ConfigError(ValueError):
    """A configuration value that cannot be used; the message names the key."""


def string(config: Mapping[str, Any], key: str) -> str:
    """A string value."""
    value = config[key]
    if not isinstance(value, str):
        raise ConfigError(f"{key}: expected a string, got {value!r}")
    return value


def optional(config: Mapping[str, Any], key: str, kind: Callable[[Any], T]) -> T | None:
    """``None`` for ``None`` or ``""``, else the value converted by ``kind``."""
    value = config[key]
    if value is None or value == "":
        return None
    if kind is str and not isinstance(value, str):
        raise ConfigError(f"{key}: expected a string, got {value!r}")
    return kind(value)


def name(config: Mapping[str, Any], key: str) -> str:
    """A name of letters, digits, ``.``, ``_`` or ``-``."""
    value = string(config, key)
    if not value or not value.replace("_", "").replace("-", "").replace(".", "").isalnum():
        raise ConfigError(f"{key}: expected a name of letters, digits, '.', '_' or '-'")
    return value


def integer(
    config: Mapping[str, Any], key: str, *, minimum: int, maximum: int | None = None
) -> int:
    """A whole number (or a string of digits) in ``[minimum, maximum]``."""
    value = config[key]
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{key}: expected a whole number, got {value!r}")
    if value < minimum:
        raise ConfigError(f"{key}: must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{key}: must be at most {maximum}, got {value}")
    return value


def boolean(config: Mapping[str, Any], key: str) -> bool:
    """A bool, or one of ``1/true/yes/on`` and ``0/false/no/off``."""
    value = config[key]
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ConfigError(f"{key}: expected true or false, got {value!r}")


def choice(config: Mapping[str, Any], key: str, choices: tuple[str, ...]) -> str:
    """One of ``choices``."""
    value = string(config, key)
    if value not in choices:
        raise ConfigError(f"{key}: unknown value {value!r}; choose one of {', '.join(choices)}")
    return value


def url_path(config: Mapping[str, Any], key: str) -> str:
    """An absolute URL path such as ``/-/health``, outside ``/v2``."""
    value = string(config, key)
    if not value.startswith("/") or "//" in value or any(c in value for c in "<>?# \t"):
        raise ConfigError(f"{key}: expected a path like '/-/health', got {value!r}")
    if value in ("/v2", "/v2/") or value.startswith("/v2/"):
        raise ConfigError(f"{key}: cannot live under /v2")
    return value


def http_url(config: Mapping[str, Any], key: str) -> str | None:
    """``None`` or an ``http(s)://`` URL."""
    value = optional(config, key, str)
    if value is not None and not value.startswith(("http://", "https://")):
        raise ConfigError(f"{key}: {value!r} is not an http(s) URL")
    return value
