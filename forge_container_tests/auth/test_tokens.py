from __future__ import annotations

from typing import Any

import pytest

from forge_container.auth.scopes import Scope
from forge_container.auth.tokens import ACCESS_SALT, REFRESH_SALT, InvalidToken, TokenService
from forge_container.config import DEFAULTS, load_settings
from forge_container.host import Principal
from forge_container_tests.helpers import signed_in_the_past

ALICE = Principal(id="u:1", name="alice", scopes=frozenset({"read:package"}), token_id="t:9")
PULL = Scope("repository", "alice/app", frozenset({"pull"}))


def service(**overrides: Any) -> TokenService:
    config = {**DEFAULTS, "SECRET_KEY": "k" * 32, **overrides}
    return TokenService(load_settings(config, instance_path="/x"))


def test_a_token_carries_the_principal_and_its_grant() -> None:
    tokens = service()
    issued = tokens.issue(ALICE, [PULL])
    claims = tokens.verify(issued.token)
    assert claims.principal == Principal(id="u:1", name="alice", scopes=frozenset({"read:package"}))
    assert claims.actions_for("repository", "alice/app") == {"pull"}
    assert claims.actions_for("repository", "alice/other") == frozenset()
    assert issued.expires_in == 300
    assert issued.issued_at.endswith("Z")


def test_an_anonymous_token_has_no_principal() -> None:
    tokens = service()
    claims = tokens.verify(tokens.issue(None, [PULL]).token)
    assert claims.principal is None
    assert claims.actions_for("repository", "alice/app") == {"pull"}


def test_a_tampered_token_is_refused() -> None:
    tokens = service()
    token = tokens.issue(ALICE, [PULL]).token
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    with pytest.raises(InvalidToken):
        tokens.verify(forged)


def test_a_token_signed_with_another_secret_is_refused() -> None:
    token = service(SECRET_KEY="x" * 32).issue(ALICE, [PULL]).token
    with pytest.raises(InvalidToken):
        service().verify(token)


def test_an_expired_token_is_refused() -> None:
    tokens = service()
    with pytest.raises(InvalidToken) as info:
        tokens.verify(signed_in_the_past("k" * 32, ACCESS_SALT, seconds=301))
    assert info.value.expired
    assert tokens.verify(signed_in_the_past("k" * 32, ACCESS_SALT, seconds=290)).jti == "j"


def test_refresh_tokens_live_longer() -> None:
    tokens = service()
    old = signed_in_the_past("k" * 32, REFRESH_SALT, seconds=3600, extra={"sub": "u:1"})
    assert tokens.verify_refresh(old).subject == "u:1"
    with pytest.raises(InvalidToken):
        tokens.verify_refresh(
            signed_in_the_past("k" * 32, REFRESH_SALT, seconds=31 * 86400, extra={"sub": "u:1"})
        )


def test_a_token_for_another_service_is_refused() -> None:
    token = service(CONTAINER_REGISTRY_SERVICE="other").issue(ALICE, [PULL]).token
    with pytest.raises(InvalidToken, match="another service"):
        service().verify(token)


def test_rotation_first_secret_signs_every_secret_verifies() -> None:
    old, new = "o" * 32, "n" * 32
    before = service(CONTAINER_REGISTRY_TOKEN_SECRET=[old])
    after = service(CONTAINER_REGISTRY_TOKEN_SECRET=[new, old])
    only_new = service(CONTAINER_REGISTRY_TOKEN_SECRET=[new])
    old_token = before.issue(ALICE, [PULL]).token
    assert after.verify(old_token).subject == "u:1"
    new_token = after.issue(ALICE, [PULL]).token
    assert only_new.verify(new_token).subject == "u:1"
    with pytest.raises(InvalidToken):
        only_new.verify(old_token)


def test_refresh_tokens_name_the_principal_and_its_access_token() -> None:
    tokens = service()
    refresh = tokens.issue_refresh(ALICE)
    claims = tokens.verify_refresh(refresh)
    assert (claims.subject, claims.token_id) == ("u:1", "t:9")


def test_access_and_refresh_tokens_are_not_interchangeable() -> None:
    tokens = service()
    with pytest.raises(InvalidToken):
        tokens.verify(tokens.issue_refresh(ALICE))
    with pytest.raises(InvalidToken):
        tokens.verify_refresh(tokens.issue(ALICE, [PULL]).token)
