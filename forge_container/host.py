"""The host adapter: the plugin's only view of the forge it runs in.

A forge implements :class:`HostAdapter` and hands an instance to
:class:`~forge_container.ContainerRegistry`. The plugin never reads the forge's tables.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

#: Personal access token scope that allows pulls.
SCOPE_READ = "read:package"
#: Personal access token scope that allows pushes and deletes (and implies ``read:package``).
SCOPE_WRITE = "write:package"
#: Every package scope a token may carry.
PACKAGE_SCOPES = frozenset({SCOPE_READ, SCOPE_WRITE})


class Access(enum.IntEnum):
    """What a principal may do with an image, from the forge's own rules."""

    NONE = 0
    READ = 1
    WRITE = 2
    ADMIN = 3

    @property
    def actions(self) -> frozenset[str]:
        """The registry actions this level allows: read pulls, write pushes, admin deletes."""
        return _ACTIONS_BY_ACCESS[self]


_ACTIONS_BY_ACCESS = {
    Access.NONE: frozenset(),
    Access.READ: frozenset({"pull"}),
    Access.WRITE: frozenset({"pull", "push"}),
    Access.ADMIN: frozenset({"pull", "push", "delete"}),
}


@dataclass(frozen=True)
class Principal:
    """An authenticated forge user.

    ``scopes`` is ``None`` for a password login (the user's role decides alone) and the
    personal access token's scopes otherwise; ``token_id`` names that token so refresh
    tokens can be refused once it is revoked.
    """

    id: str
    name: str
    is_admin: bool = False
    scopes: frozenset[str] | None = None
    token_id: str | None = None

    @property
    def scope_actions(self) -> frozenset[str]:
        """The registry actions the credential's scopes allow (all of them for a password)."""
        if self.scopes is None:
            return Access.ADMIN.actions
        actions: set[str] = set()
        if SCOPE_READ in self.scopes or SCOPE_WRITE in self.scopes:
            actions.add("pull")
        if SCOPE_WRITE in self.scopes:
            actions.update({"push", "delete"})
        return frozenset(actions)


@dataclass(frozen=True)
class Owner:
    """A user or organisation that owns images (the first path segment of an image name)."""

    id: str
    name: str
    kind: str = "user"
    is_public: bool = True
    extra: dict[str, str] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class Repository:
    """A forge repository of an owner, as the package pages link it (``url``: its page)."""

    id: str
    name: str
    url: str


@runtime_checkable
class HostAdapter(Protocol):
    """What the plugin asks the forge. Every method must be cheap and side-effect free."""

    def authenticate(self, username: str, secret: str) -> Principal | None:
        """Check a password or personal access token; ``None`` when wrong or not allowed."""
        ...

    def load_principal(self, principal_id: str, token_id: str | None) -> Principal | None:
        """Reload a principal for a refresh token; ``None`` once disabled, or the token revoked."""
        ...

    def principal_from_session(self) -> Principal | None:
        """The user signed in to the forge's web session, for the package pages."""
        ...

    def get_owner(self, name: str) -> Owner | None:
        """A user or organisation by name (case-insensitive; renamed owners resolve)."""
        ...

    def access(self, principal: Principal | None, owner: Owner, image: str) -> Access:
        """The principal's access to ``owner/image`` by the forge's rules (``None``: anonymous).

        Credential scopes and site-admin status are applied by the plugin, not here.
        """
        ...

    def principal_names(self, ids: Collection[str]) -> Mapping[str, str]:
        """Display names of principals by id, for "pushed by"; unknown ids are left out."""
        ...

    def get_repository(self, owner: Owner, name: str) -> Repository | None:
        """The owner's repository ``name`` (case-insensitive), whatever its visibility."""
        ...

    def commit_url(self, repository: Repository, revision: str) -> str | None:
        """The page of commit ``revision`` in ``repository``, or ``None`` if there is none."""
        ...
