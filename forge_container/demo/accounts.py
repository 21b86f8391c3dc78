"""The demo forge's account operations, shared by the CLI, the sign-in page and the tests.

Every function that changes something commits; bad input raises :class:`DemoError` with
a message fit for a user.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from datetime import timedelta
from functools import lru_cache

from flask import current_app
from sqlalchemy import func, select
from werkzeug.security import check_password_hash, generate_password_hash

from forge_container.demo.models import (
    AccessToken,
    Collaborator,
    Organization,
    Repository,
    Role,
    Team,
    TeamMember,
    User,
    db,
    utcnow,
)
from forge_container.host import PACKAGE_SCOPES, SCOPE_READ, SCOPE_WRITE

#: Every personal access token starts with this, so leaked ones are easy to spot.
TOKEN_PREFIX = "fcp_"
#: Owner and repository names: the registry's path-component grammar, any case.
NAME_RE = re.compile(r"[A-Za-z0-9]+(?:(?:[._]|__|-+)[A-Za-z0-9]+)*")
OWNER_NAME_MAX = 40
REPO_NAME_MAX = 100


class DemoError(ValueError):
    """A request the demo forge refuses; the message says why."""


def _check_name(kind: str, name: str, maximum: int) -> str:
    if len(name) > maximum or not NAME_RE.fullmatch(name):
        raise DemoError(
            f"invalid {kind} name {name!r}: use letters, digits and single '.', '_' or '-'"
            f" between them, at most {maximum} characters"
        )
    return name


def hash_password(password: str) -> str:
    """Hash with ``FORGE_DEMO_PASSWORD_METHOD`` (werkzeug's default when unset)."""
    if not password:
        raise DemoError("the password must not be empty")
    method = current_app.config.get("FORGE_DEMO_PASSWORD_METHOD")
    if method:
        return generate_password_hash(password, method=method)
    return generate_password_hash(password)


@lru_cache(maxsize=8)
def _dummy_hash(method: str | None) -> str:
    if method:
        return generate_password_hash(secrets.token_hex(16), method=method)
    return generate_password_hash(secrets.token_hex(16))


def verify_password(user: User | None, password: str) -> bool:
    """Check ``password``; takes as long for a missing user as for a wrong password."""
    if user is None:
        check_password_hash(_dummy_hash(current_app.config.get("FORGE_DEMO_PASSWORD_METHOD")), "")
        return False
    return bool(password) and check_password_hash(user.password_hash, password)


def check_login(name: str, password: str) -> User | None:
    """The active user ``name`` if ``password`` is theirs."""
    user = find_user(name) if name else None
    if user is not None and not user.is_active:
        user = None
    return user if verify_password(user, password) else None


def find_user(name: str) -> User | None:
    return db.session.scalar(select(User).where(User.lower_name == name.lower()))


def find_org(name: str) -> Organization | None:
    return db.session.scalar(select(Organization).where(Organization.lower_name == name.lower()))


def require_user(name: str) -> User:
    user = find_user(name)
    if user is None:
        raise DemoError(f"no user named {name!r}")
    return user


def require_org(name: str) -> Organization:
    org = find_org(name)
    if org is None:
        raise DemoError(f"no organisation named {name!r}")
    return org


def owner_key(name: str) -> str:
    """The ``u:<id>``/``o:<id>`` key of a user or organisation, or :class:`DemoError`."""
    user = find_user(name)
    if user is not None:
        return user.key
    org = find_org(name)
    if org is not None:
        return org.key
    raise DemoError(f"no user or organisation named {name!r}")


def _check_free(name: str) -> None:
    if find_user(name) is not None or find_org(name) is not None:
        raise DemoError(f"the name {name!r} is already taken by a user or organisation")


def create_user(
    name: str, password: str, *, admin: bool = False, active: bool = True, public: bool = True
) -> User:
    _check_name("user", name, OWNER_NAME_MAX)
    _check_free(name)
    user = User(
        name=name,
        lower_name=name.lower(),
        password_hash=hash_password(password),
        is_admin=admin,
        is_active=active,
        is_public=public,
    )
    db.session.add(user)
    db.session.commit()
    return user


def set_password(user: User, password: str) -> None:
    user.password_hash = hash_password(password)
    db.session.commit()


def create_org(name: str, owner: str, *, public: bool = True) -> Organization:
    """Create an organisation; ``owner`` joins its ``Owners`` team (role admin)."""
    _check_name("organisation", name, OWNER_NAME_MAX)
    user = require_user(owner)
    _check_free(name)
    org = Organization(name=name, lower_name=name.lower(), is_public=public)
    team = Team(organization=org, name="Owners", lower_name="owners", role=Role.ADMIN)
    db.session.add_all([org, team])
    db.session.flush()
    db.session.add(TeamMember(team_id=team.id, user_id=user.id))
    db.session.commit()
    return org


def add_member(org_name: str, user_name: str, *, team: str, role: str) -> Team:
    """Add a user to a team of an organisation, creating the team with ``role`` if missing."""
    org = require_org(org_name)
    user = require_user(user_name)
    wanted = Role.parse(role)
    team = team.strip()
    if not team or len(team) > 64:
        raise DemoError("a team name needs 1 to 64 characters")
    found = db.session.scalar(
        select(Team).where(Team.org_id == org.id, Team.lower_name == team.lower())
    )
    if found is None:
        found = Team(org_id=org.id, name=team, lower_name=team.lower(), role=wanted)
        db.session.add(found)
        db.session.flush()
    elif found.role != wanted:
        raise DemoError(
            f"team {found.name!r} of {org.name} has role {Role(found.role).label},"
            f" not {wanted.label}"
        )
    elif db.session.get(TeamMember, (found.id, user.id)) is not None:
        raise DemoError(f"{user.name} is already a member of team {found.name!r} of {org.name}")
    db.session.add(TeamMember(team_id=found.id, user_id=user.id))
    db.session.commit()
    return found


def split_repo(full_name: str) -> tuple[str, str]:
    """``OWNER/NAME`` into its parts."""
    owner, sep, name = full_name.partition("/")
    if not sep or not owner or not name or "/" in name:
        raise DemoError(f"expected OWNER/NAME, got {full_name!r}")
    return owner, name


def find_repo(owner: str, name: str) -> Repository | None:
    return db.session.scalar(
        select(Repository).where(
            Repository.owner_id == owner_key(owner), Repository.lower_name == name.lower()
        )
    )


def create_repo(owner: str, name: str, *, private: bool = False) -> Repository:
    _check_name("repository", name, REPO_NAME_MAX)
    key = owner_key(owner)
    if find_repo(owner, name) is not None:
        raise DemoError(f"repository {owner}/{name} already exists")
    repo = Repository(owner_id=key, name=name, lower_name=name.lower(), is_private=private)
    db.session.add(repo)
    db.session.commit()
    return repo


def add_collaborator(owner: str, name: str, user_name: str, *, role: str) -> Collaborator:
    repo = find_repo(owner, name)
    if repo is None:
        raise DemoError(f"no repository {owner}/{name}")
    user = require_user(user_name)
    wanted = Role.parse(role)
    existing = db.session.get(Collaborator, (repo.id, user.id))
    if existing is not None:
        raise DemoError(
            f"{user.name} is already a collaborator of {owner}/{repo.name}"
            f" (role {Role(existing.role).label})"
        )
    collaborator = Collaborator(repo_id=repo.id, user_id=user.id, role=wanted)
    db.session.add(collaborator)
    db.session.commit()
    return collaborator


def parse_scopes(scopes: str | Iterable[str]) -> frozenset[str]:
    """Validate token scopes; ``write:package`` brings ``read:package`` along."""
    items = scopes.split(",") if isinstance(scopes, str) else list(scopes)
    result = {item.strip() for item in items if item.strip()}
    if not result:
        raise DemoError(f"a token needs scopes: {', '.join(sorted(PACKAGE_SCOPES))}")
    unknown = result - PACKAGE_SCOPES
    if unknown:
        raise DemoError(
            f"unknown scope {', '.join(sorted(unknown))}; choose from"
            f" {', '.join(sorted(PACKAGE_SCOPES))}"
        )
    if SCOPE_WRITE in result:
        result.add(SCOPE_READ)
    return frozenset(result)


def hash_token(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogateescape")).hexdigest()


def _unrevoked_tokens(user: User, name: str) -> list[AccessToken]:
    found = db.session.scalars(
        select(AccessToken).where(
            AccessToken.user_id == user.id,
            func.lower(AccessToken.name) == name.lower(),
            AccessToken.revoked_at.is_(None),
        )
    )
    return list(found)


def create_token(
    user_name: str,
    scopes: str | Iterable[str],
    *,
    name: str | None = None,
    expires_days: int | None = None,
) -> tuple[AccessToken, str]:
    """Create a personal access token; returns it and its secret (shown once, stored hashed).

    A negative ``expires_days`` makes an already expired token (for tests).
    """
    user = require_user(user_name)
    scope_set = parse_scopes(scopes)
    if name is None:
        count = db.session.scalar(
            select(func.count()).select_from(AccessToken).where(AccessToken.user_id == user.id)
        )
        name = f"token-{(count or 0) + 1}"
    name = name.strip()
    if not name or len(name) > 64:
        raise DemoError("a token name needs 1 to 64 characters")
    if _unrevoked_tokens(user, name):
        raise DemoError(f"{user.name} already has a token named {name!r} (revoke it first)")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(30)
    now = utcnow()
    token = AccessToken(
        user_id=user.id,
        name=name,
        token_hash=hash_token(secret),
        scopes=" ".join(sorted(scope_set)),
        created_at=now,
        expires_at=None if expires_days is None else now + timedelta(days=expires_days),
    )
    db.session.add(token)
    db.session.commit()
    return token, secret


def revoke_token(user_name: str, name: str) -> AccessToken:
    user = require_user(user_name)
    tokens = _unrevoked_tokens(user, name)
    if not tokens:
        raise DemoError(f"{user.name} has no unrevoked token named {name!r}")
    now = utcnow()
    for token in tokens:
        token.revoked_at = now
    db.session.commit()
    return tokens[0]


def find_token(user: User, secret: str) -> AccessToken | None:
    """The user's valid token whose secret is ``secret``, compared in constant time."""
    digest = hash_token(secret)
    token = db.session.scalar(
        select(AccessToken).where(AccessToken.user_id == user.id, AccessToken.token_hash == digest)
    )
    if token is None or not hmac.compare_digest(token.token_hash, digest):
        return None
    return token if token.is_valid() else None
