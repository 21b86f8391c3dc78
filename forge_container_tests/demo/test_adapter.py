"""The demo forge's HostAdapter: access rules, credentials, principals and owners."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from flask_login import login_user  # type: ignore[import-untyped]
from sqlalchemy import select

from forge_container.demo import DemoHost, accounts
from forge_container.demo.models import AccessToken, db
from forge_container.host import Access, HostAdapter, Owner, Principal
from forge_container_tests.conftest import Forge

N, R, W, A = Access.NONE, Access.READ, Access.WRITE, Access.ADMIN
LEVELS = {"N": N, "R": R, "W": W, "A": A}

#: Who asks, in the order of the expectation strings below. ``olivia`` owns the user
#: namespace and the org (through its Owners team); ``rita``/``wanda``/``adam`` are org
#: members with team roles read/write/admin; ``carl``/``cwen``/``cade`` are collaborators
#: of the repository (read/write/admin) when there is one; ``ina`` is an inactive write
#: member; ``root`` is a site admin; ``None`` is anonymous.
WHO = ("olivia", "rita", "wanda", "adam", "carl", "cwen", "cade", "out", None, "ina", "root")

# (owner kind, owner public, repository: none/public/private) -> expected access, per WHO.
MATRIX = [
    ("org", True, "none", "ARWARRRRRNA"),
    ("org", True, "public", "ARWARWARRNA"),
    ("org", True, "private", "ARWARWANNNA"),
    ("org", False, "none", "ARWANNNNNNA"),
    ("org", False, "public", "ARWARWANNNA"),
    ("org", False, "private", "ARWARWANNNA"),
    ("user", True, "none", "ARRRRRRRRNA"),
    ("user", True, "public", "ARRRRWARRNA"),
    ("user", True, "private", "ANNNRWANNNA"),
    ("user", False, "none", "ANNNNNNNNNA"),
    ("user", False, "public", "ANNNRWANNNA"),
    ("user", False, "private", "ANNNRWANNNA"),
]


@pytest.fixture
def host() -> DemoHost:
    return DemoHost()


@pytest.fixture
def ctx(app: Flask) -> Iterator[None]:
    with app.app_context():
        yield


def _people(forge: Forge) -> dict[str, Principal]:
    people = {name: forge.user(name) for name in WHO if name not in (None, "ina", "root")}
    people["ina"] = forge.user("ina", active=False)
    people["root"] = forge.user("root", admin=True)
    return people


@pytest.mark.parametrize(("kind", "public", "repo", "expected"), MATRIX)
def test_access_matrix(
    forge: Forge, host: DemoHost, app: Flask, kind: str, public: bool, repo: str, expected: str
) -> None:
    people = _people(forge)
    forge.org("acme", "olivia", public=public)
    owner_name = "acme"
    if kind == "user":
        owner_name = "olivia"
        with app.app_context():
            accounts.require_user("olivia").is_public = public
            db.session.commit()
    for name, role in (("rita", "read"), ("wanda", "write"), ("adam", "admin"), ("ina", "write")):
        forge.member("acme", name, role)
    if repo != "none":
        forge.repo(owner_name, "App", private=repo == "private")
        for name, role in (("carl", "read"), ("cwen", "write"), ("cade", "admin")):
            forge.collaborator(owner_name, "app", name, role)
    owner = forge.owner(owner_name)
    with app.app_context():
        got = {who: host.access(people[who] if who else None, owner, "app/web").name for who in WHO}
    assert got == {who: LEVELS[level].name for who, level in zip(WHO, expected, strict=True)}


def test_repository_rules_use_the_first_component_only(
    forge: Forge, host: DemoHost, app: Flask
) -> None:
    alice = forge.user("alice")
    bob = forge.user("bob")
    forge.user("carol")
    forge.repo("alice", "secret", private=True)
    forge.repo("carol", "tools", private=True)
    forge.collaborator("alice", "secret", "bob", "write")
    alice_ns = forge.owner("alice")
    with app.app_context():
        assert host.access(None, alice_ns, "secret") == N
        assert host.access(None, alice_ns, "secret/a/b") == N
        assert host.access(bob, alice_ns, "secret/a") == W
        assert host.access(None, alice_ns, "other/secret") == R
        assert host.access(bob, alice_ns, "tools") == R  # carol's private repo is not alice's
        assert host.access(alice, alice_ns, "secret") == A


def test_access_for_a_vanished_or_forged_principal(
    forge: Forge, host: DemoHost, app: Flask
) -> None:
    forge.user("alice")
    owner = forge.owner("alice")
    with app.app_context():
        assert host.access(Principal(id="u:999", name="ghost"), owner, "x") == N
        assert host.access(Principal(id="o:1", name="acme"), owner, "x") == N
        assert host.access(Principal(id="u:1", name="alice", is_admin=False), owner, "x") == A


def test_site_admin_flag_comes_from_the_forge(forge: Forge, host: DemoHost, app: Flask) -> None:
    forge.user("alice", public=False)
    mallory = forge.user("mallory")
    owner = forge.owner("alice")
    forged = Principal(id=mallory.id, name="mallory", is_admin=True)
    with app.app_context():
        assert host.access(forged, owner, "x") == N


def test_demo_host_implements_the_protocol() -> None:
    assert isinstance(DemoHost(), HostAdapter)


# --- credentials ---------------------------------------------------------------------


def test_authenticate_with_password(forge: Forge, host: DemoHost, ctx: None) -> None:
    forge.user("Alice", admin=True)
    principal = host.authenticate("aLICE", "pw-Alice")
    assert principal == Principal(id="u:1", name="Alice", is_admin=True, scopes=None)
    assert host.authenticate("alice", "wrong") is None
    assert host.authenticate("alice", "") is None
    assert host.authenticate("nobody", "pw-Alice") is None
    assert host.authenticate("", "pw-Alice") is None


def test_authenticate_with_token(forge: Forge, host: DemoHost, ctx: None) -> None:
    forge.user("alice")
    read = forge.token("alice", name="ro")
    write = forge.token("alice", ("write:package",), 30, name="rw")
    principal = host.authenticate("alice", read)
    assert principal is not None
    assert principal.scopes == frozenset({"read:package"})
    assert principal.token_id is not None
    principal = host.authenticate("alice", write)
    assert principal is not None
    assert principal.scopes == frozenset({"read:package", "write:package"})
    assert principal.scope_actions == {"pull", "push", "delete"}


@pytest.mark.parametrize("case", ["expired", "revoked", "other user", "wrong secret", "inactive"])
def test_authenticate_refuses_bad_tokens(
    forge: Forge, host: DemoHost, ctx: None, case: str
) -> None:
    forge.user("alice")
    forge.user("bob")
    secret = forge.token("alice", expires_days=-1 if case == "expired" else None, name="t")
    username = "bob" if case == "other user" else "alice"
    if case == "revoked":
        forge.revoke("alice", "t")
    if case == "wrong secret":
        secret = secret[:-2] + ("aa" if not secret.endswith("aa") else "bb")
    if case == "inactive":
        accounts.require_user("alice").is_active = False
        db.session.commit()
    assert host.authenticate(username, secret) is None


def test_inactive_user_cannot_authenticate(forge: Forge, host: DemoHost, ctx: None) -> None:
    forge.user("alice", active=False)
    assert host.authenticate("alice", "pw-alice") is None


def test_load_principal(forge: Forge, host: DemoHost, app: Flask) -> None:
    alice = forge.user("alice")
    forge.user("bob")
    secret = forge.token("alice", ("write:package",), name="rw")
    bob_secret = forge.token("bob", name="b")
    forge.token("alice", expires_days=-1, name="old")
    with app.app_context():
        token = host.authenticate("alice", secret)
        bob_token = host.authenticate("bob", bob_secret)
        expired_id = str(db.session.scalar(select(AccessToken.id).where(AccessToken.name == "old")))
        assert token is not None and token.token_id and bob_token and bob_token.token_id
        assert host.load_principal(alice.id, None) == alice
        assert host.load_principal(alice.id, token.token_id) == token
        assert host.load_principal(alice.id, bob_token.token_id) is None
        assert host.load_principal(alice.id, expired_id) is None
        assert host.load_principal(alice.id, "999") is None
        assert host.load_principal(alice.id, "abc") is None
        assert host.load_principal(alice.id, "9" * 30) is None
        assert host.load_principal("u:" + "9" * 30, None) is None
        assert host.load_principal("u:999", None) is None
        assert host.load_principal("o:1", None) is None
        assert host.load_principal("garbage", None) is None
    forge.revoke("alice", "rw")
    with app.app_context():
        assert host.load_principal(alice.id, token.token_id) is None
        accounts.require_user("alice").is_active = False
        db.session.commit()
        assert host.load_principal(alice.id, None) is None


def test_principal_from_session(forge: Forge, host: DemoHost, app: Flask) -> None:
    forge.user("alice", admin=True)
    with app.test_request_context():
        assert host.principal_from_session() is None
        login_user(accounts.require_user("alice"))
        assert host.principal_from_session() == Principal(id="u:1", name="alice", is_admin=True)


# --- owners --------------------------------------------------------------------------


def test_get_owner(forge: Forge, host: DemoHost, ctx: None) -> None:
    forge.user("Alice", public=False)
    forge.org("ACME", "alice")
    assert host.get_owner("alice") == Owner(id="u:1", name="Alice", kind="user", is_public=False)
    assert host.get_owner("acme") == Owner(id="o:1", name="ACME", kind="org", is_public=True)
    assert host.get_owner("nobody") is None


def test_user_and_org_names_share_one_namespace(forge: Forge, ctx: None) -> None:
    forge.user("alice")
    forge.org("acme", "alice")
    with pytest.raises(accounts.DemoError, match="already taken"):
        accounts.create_user("ACME", "pw")
    with pytest.raises(accounts.DemoError, match="already taken"):
        accounts.create_org("Alice", "alice")
