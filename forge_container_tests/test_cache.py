"""The hot-path caches: a bounded TTL cache, and what the registry keeps in it."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import delete

from forge_container.auth.tokens import ACCESS_SALT, TokenClaims
from forge_container.cache import HotPathCache, TTLCache
from forge_container.demo.models import TeamMember, User, db
from forge_container.mediatypes import OCI_MANIFEST
from forge_container.models import Package, PackageTag, PackageVersion
from forge_container.state import EXTENSION_KEY, get_state
from forge_container_tests.helpers import basic, bearer, error_codes, signed_in_the_past


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


class TestTTLCache:
    def test_hit_and_miss(self, clock: Clock) -> None:
        cache: TTLCache[str, int] = TTLCache(10, clock=clock)
        assert cache.get("a") is None
        assert cache.get("a", -1) == -1
        cache.set("a", 1)
        assert cache.get("a") == 1
        assert len(cache) == 1

    def test_entries_expire_after_the_ttl(self, clock: Clock) -> None:
        cache: TTLCache[str, int] = TTLCache(10, clock=clock)
        cache.set("a", 1)
        clock.advance(9.9)
        assert cache.get("a") == 1
        clock.advance(0.1)
        assert cache.get("a") is None
        assert len(cache) == 0

    def test_an_entry_may_live_shorter_but_never_longer(self, clock: Clock) -> None:
        cache: TTLCache[str, int] = TTLCache(10, clock=clock)
        cache.set("short", 1, ttl=2)
        cache.set("long", 2, ttl=3600)
        cache.set("dead", 3, ttl=0)
        clock.advance(2)
        assert cache.get("short") is None
        assert cache.get("dead") is None
        assert cache.get("long") == 2
        clock.advance(8)
        assert cache.get("long") is None

    def test_the_least_recently_used_entry_goes_first(self, clock: Clock) -> None:
        cache: TTLCache[str, int] = TTLCache(10, max_entries=2, clock=clock)
        cache.set("a", 1)
        cache.set("b", 2)
        assert cache.get("a") == 1  # now "b" is the least recently used
        cache.set("c", 3)
        assert (cache.get("a"), cache.get("b"), cache.get("c")) == (1, None, 3)
        assert len(cache) == 2

    def test_get_or_set_computes_once_and_keeps_none(self, clock: Clock) -> None:
        cache: TTLCache[str, int | None] = TTLCache(10, clock=clock)
        calls: list[str] = []

        def unknown() -> None:
            calls.append("unknown")

        assert cache.get_or_set("nobody", unknown) is None
        assert cache.get_or_set("nobody", unknown) is None
        assert calls == ["unknown"]
        clock.advance(10)
        assert cache.get_or_set("nobody", unknown) is None
        assert calls == ["unknown", "unknown"]

    def test_ttl_zero_caches_nothing(self, clock: Clock) -> None:
        cache: TTLCache[str, int] = TTLCache(0, clock=clock)
        counter = iter(range(100))
        assert not cache.enabled
        cache.set("a", 1)
        assert cache.get("a") is None
        assert [cache.get_or_set("b", lambda: next(counter)) for _ in range(3)] == [0, 1, 2]
        assert len(cache) == 0

    def test_discard_and_clear(self, clock: Clock) -> None:
        cache: TTLCache[str, int] = TTLCache(10, clock=clock)
        cache.set("a", 1)
        cache.set("b", 2)
        cache.discard("a")
        cache.discard("missing")
        assert (cache.get("a"), cache.get("b")) == (None, 2)
        cache.clear()
        assert len(cache) == 0

    @pytest.mark.parametrize(("ttl", "size"), [(-1, 10), (1, 0)])
    def test_bad_parameters(self, ttl: float, size: int) -> None:
        with pytest.raises(ValueError):
            TTLCache(ttl, max_entries=size)

    def test_many_threads_at_once(self) -> None:
        cache: TTLCache[int, int] = TTLCache(60, max_entries=50)
        errors: list[BaseException] = []
        wrong: list[tuple[int, int]] = []

        def work(seed: int) -> None:
            try:
                for i in range(3000):
                    key = (seed * 7 + i) % 200
                    value = cache.get_or_set(key, partial(pow, key, 2))
                    if value != key * key:
                        wrong.append((key, value))
                    if i % 5 == 0:
                        cache.set(key, key * key)
                    if i % 97 == 0:
                        cache.discard(key)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == [] and wrong == []
        assert 0 < len(cache) <= 50


class TestHotPathCache:
    def test_login_keys_hide_the_password(self) -> None:
        cache = HotPathCache(5)
        key = cache.login_key("alice", "hunter2-secret")
        assert key == cache.login_key("alice", "hunter2-secret")
        assert b"hunter2" not in key and len(key) == 32
        assert key != cache.login_key("alice", "hunter2-secreT")
        assert key != cache.login_key("alice:hunter2", "-secret")
        # Keyed per process: the same credentials give another key elsewhere.
        assert key != HotPathCache(5).login_key("alice", "hunter2-secret")

    def test_verified_tokens_are_reused(self, app: Flask, clock: Clock) -> None:
        tokens = get_state(app).tokens
        cache = HotPathCache(5, clock=clock)
        verified: list[str] = []

        def verify(token: str) -> TokenClaims:
            verified.append(token)
            return tokens.verify(token)

        token = tokens.issue(None, []).token
        first = cache.claims(token, verify)
        assert cache.claims(token, verify) is first
        assert len(verified) == 1
        clock.advance(5)
        cache.claims(token, verify)
        assert len(verified) == 2

    def test_a_cached_token_never_outlives_its_expiry(self, app: Flask, clock: Clock) -> None:
        tokens = get_state(app).tokens
        cache = HotPathCache(60, clock=clock)
        # Signed 298 s ago with a 300 s lifetime: two seconds left.
        token = signed_in_the_past(app.config["SECRET_KEY"], ACCESS_SALT, seconds=298)
        claims = cache.claims(token, tokens.verify)
        assert claims.expires_at is not None
        assert cache.tokens.get(cache.token_key(token)) is claims
        clock.advance(3)
        assert cache.tokens.get(cache.token_key(token)) is None

    def test_an_expired_token_is_not_cached(self, app: Flask, clock: Clock) -> None:
        claims = dataclasses.replace(
            get_state(app).tokens.verify(get_state(app).tokens.issue(None, []).token),
            expires_at=0.0,
        )
        cache = HotPathCache(60, clock=clock)
        assert cache.claims("old", lambda token: claims) is claims
        assert len(cache.tokens) == 0


# Through the registry: a revoke stops working once the TTL has passed.


def use_cache(app: Flask, ttl: float, clock: Callable[[], float]) -> HotPathCache:
    """Give the app caches with ``ttl`` on ``clock`` (what ``init_app`` builds, clock aside)."""
    state = get_state(app)
    cache = HotPathCache(ttl, clock=clock)
    app.extensions[EXTENSION_KEY] = dataclasses.replace(state, cache=cache)
    return cache


@pytest.fixture
def private_org(app: Flask, forge: Any) -> None:
    """``secret/tool`` in a private organisation where ``m`` reads."""
    forge.user("founder")
    forge.user("m")
    forge.org("secret", owner="founder", public=False)
    forge.member("secret", "m", "read")
    owner = forge.owner("secret")
    with app.app_context():
        session = get_state(app).db.session()
        package = Package(owner_id=owner.id, owner_name=owner.name, name="tool")
        version = PackageVersion(
            package=package, digest="sha256:" + "a" * 64, media_type=OCI_MANIFEST
        )
        session.add_all([package, version])
        session.flush()
        session.add(PackageTag(package_id=package.id, name="v1", version_id=version.id))
        session.commit()


def leave_org(app: Flask, user: str) -> None:
    with app.app_context():
        user_id = db.session.query(User.id).filter_by(lower_name=user).scalar()
        db.session.execute(delete(TeamMember).where(TeamMember.user_id == user_id))
        db.session.commit()


TAGS = "/v2/secret/tool/tags/list"


@pytest.mark.usefixtures("private_org")
def test_a_revoked_membership_stops_working_after_the_ttl(
    app: Flask, client: FlaskClient, clock: Clock
) -> None:
    cache = use_cache(app, 5, clock)
    auth = basic("m", "pw-m")
    assert client.get(TAGS, headers=auth).status_code == 200
    leave_org(app, "m")
    # Within the TTL the cached grant still answers ...
    clock.advance(4.9)
    assert client.get(TAGS, headers=auth).status_code == 200
    assert len(cache.access) == 1 and len(cache.logins) == 1
    # ... and once it has passed, the forge's answer counts.
    clock.advance(0.1)
    response = client.get(TAGS, headers=auth)
    assert response.status_code == 404
    assert error_codes(response) == ["NAME_UNKNOWN"]


@pytest.mark.usefixtures("private_org")
def test_with_ttl_zero_a_revoke_applies_at_once(
    app: Flask, client: FlaskClient, clock: Clock
) -> None:
    cache = use_cache(app, 0, clock)
    auth = basic("m", "pw-m")
    assert client.get(TAGS, headers=auth).status_code == 200
    leave_org(app, "m")
    assert client.get(TAGS, headers=auth).status_code == 404
    assert [len(c) for c in (cache.tokens, cache.logins, cache.owners, cache.access)] == [0] * 4


@pytest.mark.usefixtures("private_org")
def test_a_revoked_pat_stops_working_after_the_ttl(
    app: Flask, client: FlaskClient, forge: Any, clock: Clock
) -> None:
    use_cache(app, 5, clock)
    auth = basic("m", forge.token("m", name="ci"))
    assert client.get(TAGS, headers=auth).status_code == 200
    forge.revoke("m", "ci")
    assert client.get(TAGS, headers=auth).status_code == 200
    clock.advance(5)
    assert client.get(TAGS, headers=auth).status_code == 401
    # The token endpoint asks the forge every time.
    assert client.get("/v2/token", headers=auth).status_code == 401


@pytest.mark.usefixtures("private_org")
def test_bearer_tokens_are_verified_once_per_ttl(
    app: Flask, client: FlaskClient, clock: Clock
) -> None:
    cache = use_cache(app, 5, clock)
    response = client.get("/v2/token?scope=repository:secret/tool:pull", headers=basic("m", "pw-m"))
    token = response.get_json()["token"]
    for _ in range(3):
        assert client.get(TAGS, headers=bearer(token)).status_code == 200
    assert cache.tokens.get(cache.token_key(token)) is not None
    assert len(cache.tokens) == 1 and len(cache.owners) == 1


@pytest.mark.usefixtures("private_org")
@pytest.mark.parametrize("app_config", [{"CONTAINER_REGISTRY_LOGIN_MAX_FAILURES": 2}])
def test_failed_logins_are_never_cached(app: Flask, client: FlaskClient, clock: Clock) -> None:
    cache = use_cache(app, 5, clock)
    assert client.get(TAGS, headers=basic("m", "pw-m")).status_code == 200
    for _ in range(2):
        assert client.get(TAGS, headers=basic("m", "wrong")).status_code == 401
    assert len(cache.logins) == 1
    # Every failure reached the limit, which refuses the user, cached login or not.
    assert client.get(TAGS, headers=basic("m", "wrong")).status_code == 429
    assert client.get(TAGS, headers=basic("m", "pw-m")).status_code == 429


def test_the_app_builds_its_cache_from_the_config(app: Flask) -> None:
    assert get_state(app).cache.ttl == app.config["CONTAINER_REGISTRY_CACHE_TTL"] == 5
