"""Parse the ``Authorization`` header into Basic or Bearer credentials."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

#: Longer headers are refused before decoding (tokens are a few hundred bytes).
MAX_HEADER_LENGTH = 8192


class MalformedAuthorization(ValueError):
    """An ``Authorization`` header that is neither valid Basic nor Bearer."""


@dataclass(frozen=True)
class BasicCredentials:
    username: str
    password: str


@dataclass(frozen=True)
class BearerCredentials:
    token: str


Credentials = BasicCredentials | BearerCredentials


def parse_authorization(header: str | None) -> Credentials | None:
    """``None`` without a header; raise :class:`MalformedAuthorization` when it is unusable."""
    if header is None or not header.strip():
        return None
    if len(header) > MAX_HEADER_LENGTH:
        raise MalformedAuthorization("Authorization header too long")
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "basic":
        return _basic(value)
    if scheme.lower() == "bearer":
        if not value or " " in value:
            raise MalformedAuthorization("malformed Bearer token")
        return BearerCredentials(token=value)
    raise MalformedAuthorization(
        f"unsupported authorization scheme {scheme!r}: use Basic or Bearer"
    )


def _basic(value: str) -> BasicCredentials:
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise MalformedAuthorization("malformed Basic credentials: not base64") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    username, sep, password = text.partition(":")
    if not sep or not username:
        raise MalformedAuthorization("malformed Basic credentials: expected username:password")
    if "\x00" in text:
        raise MalformedAuthorization("malformed Basic credentials: NUL byte")
    return BasicCredentials(username=username, password=password)
