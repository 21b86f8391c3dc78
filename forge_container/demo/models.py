"""The demo forge's tables: users, organisations, teams, repositories, collaborators, tokens.

Every table is prefixed ``forge_`` so it never meets the plugin's ``container_`` tables.
Names are unique case-insensitively (``lower_name``); user and organisation names share
one namespace, which :mod:`forge_container.demo.accounts` enforces.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import Boolean, DateTime, ForeignKey, Integer, MetaData, String, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


#: The host's Flask-SQLAlchemy extension; the plugin shares its session and engine.
db = SQLAlchemy(model_class=Base)

if TYPE_CHECKING:
    Model = Base
else:
    Model = db.Model


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """``value`` as an aware UTC datetime (SQLite hands back naive ones)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def parse_id(text: str) -> int | None:
    """A row id from its decimal string, or ``None`` (never an out-of-range integer)."""
    if not (text.isascii() and text.isdigit()) or len(text) > 9:
        return None
    return int(text)


class Role(enum.IntEnum):
    """A team's or collaborator's role; the values order them."""

    READ = 1
    WRITE = 2
    ADMIN = 3

    @classmethod
    def parse(cls, value: str) -> Role:
        try:
            return cls[value.strip().upper()]
        except KeyError:
            raise ValueError(f"unknown role {value!r}; choose read, write or admin") from None

    @property
    def label(self) -> str:
        return self.name.lower()


class User(Model):
    """A forge account; flask-login's user object too."""

    __tablename__ = "forge_user"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(40))
    lower_name: Mapped[str] = mapped_column(String(40), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    is_public: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    tokens: Mapped[list[AccessToken]] = relationship(back_populates="user")

    @property
    def key(self) -> str:
        """The id the plugin sees (``Principal.id`` and ``Owner.id``)."""
        return f"u:{self.id}"

    # flask-login's user protocol (``is_active`` is the column above).
    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def is_anonymous(self) -> bool:
        return False

    def get_id(self) -> str:
        return str(self.id)


class Organization(Model):
    """An organisation: owns repositories and images; its teams grant rights."""

    __tablename__ = "forge_organization"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(40))
    lower_name: Mapped[str] = mapped_column(String(40), unique=True)
    is_public: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    teams: Mapped[list[Team]] = relationship(back_populates="organization")

    @property
    def key(self) -> str:
        return f"o:{self.id}"


class Team(Model):
    """A team of an organisation; every member gets the team's role on all its images."""

    __tablename__ = "forge_team"
    __table_args__ = (UniqueConstraint("org_id", "lower_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("forge_organization.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    lower_name: Mapped[str] = mapped_column(String(64))
    role: Mapped[int] = mapped_column(Integer)

    organization: Mapped[Organization] = relationship(back_populates="teams")


class TeamMember(Model):
    __tablename__ = "forge_team_member"

    team_id: Mapped[int] = mapped_column(
        ForeignKey("forge_team.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("forge_user.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class Repository(Model):
    """A code repository; images named ``<owner>/<repo>[/...]`` follow its rules."""

    __tablename__ = "forge_repository"
    __table_args__ = (UniqueConstraint("owner_id", "lower_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: ``u:<id>`` or ``o:<id>``, as :attr:`User.key` and :attr:`Organization.key`.
    owner_id: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(100))
    lower_name: Mapped[str] = mapped_column(String(100))
    is_private: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    @property
    def key(self) -> str:
        return f"r:{self.id}"


class Collaborator(Model):
    __tablename__ = "forge_collaborator"

    repo_id: Mapped[int] = mapped_column(
        ForeignKey("forge_repository.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("forge_user.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    role: Mapped[int] = mapped_column(Integer)


class AccessToken(Model):
    """A personal access token, stored as the SHA-256 of its secret."""

    __tablename__ = "forge_access_token"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("forge_user.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(64))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    #: Space-separated, sorted scopes (``write:package`` always comes with ``read:package``).
    scopes: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    user: Mapped[User] = relationship(back_populates="tokens")

    @property
    def scope_set(self) -> frozenset[str]:
        return frozenset(self.scopes.split())

    def is_valid(self, now: datetime | None = None) -> bool:
        """Neither revoked nor expired."""
        if self.revoked_at is not None:
            return False
        return self.expires_at is None or as_utc(self.expires_at) > (now or utcnow())
