"""The demo forge's :class:`~forge_container.host.HostAdapter`: its rules, for the plugin."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from urllib.parse import quote

from flask_login import current_user  # type: ignore[import-untyped]
from sqlalchemy import func, select

from forge_container.demo import accounts
from forge_container.demo.models import (
    AccessToken,
    Collaborator,
    Repository,
    Team,
    TeamMember,
    User,
    db,
    parse_id,
)
from forge_container.host import Access, Owner, Principal
from forge_container.host import Repository as RepositoryLink

_ROLE_ACCESS = {1: Access.READ, 2: Access.WRITE, 3: Access.ADMIN}


def _parse_key(key: str, kind: str) -> int | None:
    prefix, sep, number = key.partition(":")
    return parse_id(number) if prefix == kind and sep else None


def _principal(user: User, token: AccessToken | None = None) -> Principal:
    if token is None:
        return Principal(id=user.key, name=user.name, is_admin=user.is_admin)
    return Principal(
        id=user.key,
        name=user.name,
        is_admin=user.is_admin,
        scopes=token.scope_set,
        token_id=str(token.id),
    )


class DemoHost:
    """Users, organisations with teams, repositories with collaborators, and tokens.

    Ids the plugin sees: ``u:<id>`` for users and ``o:<id>`` for organisations.
    """

    def authenticate(self, username: str, secret: str) -> Principal | None:
        user = accounts.find_user(username) if username else None
        if user is None or not user.is_active or not secret:
            accounts.verify_password(None, secret)
            return None
        token = accounts.find_token(user, secret)
        if token is not None:
            return _principal(user, token)
        if accounts.verify_password(user, secret):
            return _principal(user)
        return None

    def load_principal(self, principal_id: str, token_id: str | None) -> Principal | None:
        user = self._user(principal_id)
        if user is None or not user.is_active:
            return None
        if token_id is None:
            return _principal(user)
        number = parse_id(token_id)
        token = None if number is None else db.session.get(AccessToken, number)
        if token is None or token.user_id != user.id or not token.is_valid():
            return None
        return _principal(user, token)

    def principal_from_session(self) -> Principal | None:
        user = current_user._get_current_object()
        if not isinstance(user, User) or not user.is_active:
            return None
        return _principal(user)

    def get_owner(self, name: str) -> Owner | None:
        user = accounts.find_user(name)
        if user is not None:
            return Owner(id=user.key, name=user.name, kind="user", is_public=user.is_public)
        org = accounts.find_org(name)
        if org is not None:
            return Owner(id=org.key, name=org.name, kind="org", is_public=org.is_public)
        return None

    def access(self, principal: Principal | None, owner: Owner, image: str) -> Access:
        user = None
        if principal is not None:
            user = self._user(principal.id)
            if user is None or not user.is_active:
                return Access.NONE
            if user.is_admin:
                return Access.ADMIN
        granted = self._owner_access(user, owner) if user is not None else Access.NONE
        first = image.split("/", 1)[0].lower()
        repo = db.session.scalar(
            select(Repository).where(
                Repository.owner_id == owner.id, Repository.lower_name == first
            )
        )
        public = owner.is_public
        if repo is not None:
            public = public and not repo.is_private
            if user is not None:
                role = db.session.scalar(
                    select(Collaborator.role).where(
                        Collaborator.repo_id == repo.id, Collaborator.user_id == user.id
                    )
                )
                granted = max(granted, _ROLE_ACCESS.get(role or 0, Access.NONE))
        if public:
            granted = max(granted, Access.READ)
        return granted

    def principal_names(self, ids: Collection[str]) -> Mapping[str, str]:
        numbers = {key: _parse_key(key, "u") for key in ids}
        wanted = {n for n in numbers.values() if n is not None}
        if not wanted:
            return {}
        rows = db.session.execute(select(User.id, User.name).where(User.id.in_(wanted)))
        names = {number: name for number, name in rows}
        return {key: names[n] for key, n in numbers.items() if n is not None and n in names}

    def get_repository(self, owner: Owner, name: str) -> RepositoryLink | None:
        repo = db.session.scalar(
            select(Repository).where(
                Repository.owner_id == owner.id, Repository.lower_name == name.lower()
            )
        )
        if repo is None:
            return None
        url = f"/{quote(owner.name)}/{quote(repo.name)}"
        return RepositoryLink(id=repo.key, name=repo.name, url=url)

    def commit_url(self, repository: RepositoryLink, revision: str) -> str | None:
        # The demo keeps no commits: link the page a real forge would have.
        if not (revision.isascii() and revision.isalnum()) or len(revision) > 64:
            return None
        return f"{repository.url}/commit/{revision}"

    @staticmethod
    def _user(principal_id: str) -> User | None:
        number = _parse_key(principal_id, "u")
        return None if number is None else db.session.get(User, number)

    @staticmethod
    def _owner_access(user: User, owner: Owner) -> Access:
        if owner.kind == "user":
            return Access.ADMIN if owner.id == user.key else Access.NONE
        org_id = _parse_key(owner.id, "o")
        if org_id is None:
            return Access.NONE
        role = db.session.scalar(
            select(func.max(Team.role))
            .join(TeamMember, TeamMember.team_id == Team.id)
            .where(Team.org_id == org_id, TeamMember.user_id == user.id)
        )
        return _ROLE_ACCESS.get(role or 0, Access.NONE)
