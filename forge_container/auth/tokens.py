"""Registry bearer tokens and refresh tokens, signed with itsdangerous.

The payload is shaped like the distribution JWT claims (``sub``, ``aud``, ``jti``,
``access``) so a move to asymmetric JWTs later is mechanical. The first configured secret
signs; every secret verifies (key rotation).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from itsdangerous import BadData, SignatureExpired, URLSafeTimedSerializer

from forge_container.auth.scopes import Scope
from forge_container.config import Settings
from forge_container.host import Principal

ACCESS_SALT = "forge_container.registry-token"
REFRESH_SALT = "forge_container.refresh-token"


class InvalidToken(ValueError):
    """A token that is tampered with, expired, or meant for another service."""

    def __init__(self, message: str, *, expired: bool = False) -> None:
        super().__init__(message)
        self.expired = expired


@dataclass(frozen=True)
class TokenClaims:
    """What a verified access token says."""

    subject: str | None
    name: str | None
    is_admin: bool
    scopes: frozenset[str] | None
    access: tuple[Scope, ...]
    jti: str
    #: When the token stops being valid (Unix time), for caches that must not outlive it.
    expires_at: float | None = None

    @property
    def principal(self) -> Principal | None:
        if self.subject is None:
            return None
        return Principal(
            id=self.subject, name=self.name or "", is_admin=self.is_admin, scopes=self.scopes
        )

    def actions_for(self, resource_type: str, name: str) -> frozenset[str]:
        for scope in self.access:
            if scope.type == resource_type and scope.name == name:
                return scope.actions
        return frozenset()


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_in: int
    issued_at: str


@dataclass(frozen=True)
class RefreshClaims:
    subject: str
    token_id: str | None


class TokenService:
    """Issue and verify tokens for one app's settings."""

    def __init__(self, settings: Settings) -> None:
        keys = list(reversed(settings.token_secrets))  # itsdangerous signs with the last key
        self._access = URLSafeTimedSerializer(keys, salt=ACCESS_SALT)
        self._refresh = URLSafeTimedSerializer(keys, salt=REFRESH_SALT)
        self._settings = settings

    def issue(self, principal: Principal | None, access: Iterable[Scope]) -> IssuedToken:
        payload: dict[str, Any] = {
            "aud": self._settings.service,
            "jti": secrets.token_urlsafe(12),
            "access": [
                {"type": s.type, "name": s.name, "actions": sorted(s.actions)} for s in access
            ],
        }
        if principal is not None:
            payload["sub"] = principal.id
            payload["name"] = principal.name
            payload["adm"] = principal.is_admin
            if principal.scopes is not None:
                payload["scp"] = sorted(principal.scopes)
        token = self._access.dumps(payload)
        assert isinstance(token, str)
        return IssuedToken(
            token=token, expires_in=self._settings.token_ttl, issued_at=_rfc3339(time.time())
        )

    def verify(self, token: str) -> TokenClaims:
        payload, signed_at = self._load(self._access, token, self._settings.token_ttl)
        try:
            access = tuple(
                Scope(type=str(e["type"]), name=str(e["name"]), actions=frozenset(e["actions"]))
                for e in payload.get("access", [])
            )
            scopes = payload.get("scp")
            return TokenClaims(
                subject=payload.get("sub"),
                name=payload.get("name"),
                is_admin=bool(payload.get("adm", False)),
                scopes=frozenset(scopes) if scopes is not None else None,
                access=access,
                jti=str(payload["jti"]),
                expires_at=signed_at + self._settings.token_ttl,
            )
        except (KeyError, TypeError) as exc:
            raise InvalidToken("malformed token payload") from exc

    def issue_refresh(self, principal: Principal) -> str:
        token = self._refresh.dumps(
            {
                "aud": self._settings.service,
                "sub": principal.id,
                "pat": principal.token_id,
                "jti": secrets.token_urlsafe(12),
            }
        )
        assert isinstance(token, str)
        return token

    def verify_refresh(self, token: str) -> RefreshClaims:
        payload, _ = self._load(self._refresh, token, self._settings.refresh_token_ttl)
        subject = payload.get("sub")
        if not isinstance(subject, str):
            raise InvalidToken("malformed refresh token")
        token_id = payload.get("pat")
        return RefreshClaims(subject=subject, token_id=token_id if token_id else None)

    def _load(
        self, serializer: URLSafeTimedSerializer, token: str, ttl: int
    ) -> tuple[dict[str, Any], float]:
        """The payload and the signing time (Unix time) of a valid token."""
        try:
            payload, signed_at = serializer.loads(token, max_age=ttl, return_timestamp=True)
        except SignatureExpired:
            raise InvalidToken("token expired", expired=True) from None
        except BadData:
            raise InvalidToken("invalid token") from None
        if not isinstance(payload, dict) or payload.get("aud") != self._settings.service:
            raise InvalidToken("token was issued for another service")
        return payload, signed_at.timestamp()


def _rfc3339(timestamp: float) -> str:
    return datetime.fromtimestamp(int(timestamp), UTC).isoformat().replace("+00:00", "Z")
