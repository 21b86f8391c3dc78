"""The package model: tables of the registry, on the plugin's own metadata.

Every table is prefixed ``container_`` and refers to host rows (owners, users,
repositories) by id only, never by foreign key. The models use their own declarative base
so the host's ``flask db migrate`` never sees them; the host's ``db.session`` still works
with them (Flask-SQLAlchemy falls back to the default engine).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

#: Prefix of every table the plugin owns (and of its Alembic version table).
TABLE_PREFIX = "container_"

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: Maximum length of a digest string (``sha512:`` and 128 hex digits).
DIGEST_LENGTH = 135
#: Host ids (users, organisations, repositories) are stored as strings of at most this length.
HOST_ID_LENGTH = 64
#: Longest path the ``database`` storage driver stores (a sha512 blob path is 144).
STORAGE_PATH_LENGTH = 255


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON}


class Package(Base):
    """One image: ``<owner>/<name>``, where ``name`` may nest (``tools/cli``)."""

    __tablename__ = "container_package"
    __table_args__ = (UniqueConstraint("owner_id", "type", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_id: Mapped[str] = mapped_column(String(HOST_ID_LENGTH))
    #: The owner's name when last seen, for listings (the host's name wins on lookup).
    owner_name: Mapped[str] = mapped_column(String(255))
    type: Mapped[str] = mapped_column(String(32), default="container")
    name: Mapped[str] = mapped_column(String(255))
    #: A forge repository this image belongs to, when its first component names one.
    repository_id: Mapped[str | None] = mapped_column(String(HOST_ID_LENGTH), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )

    versions: Mapped[list[PackageVersion]] = relationship(
        back_populates="package", cascade="all, delete-orphan", passive_deletes=True
    )


class PackageVersion(Base):
    """One manifest (image manifest or index) pushed to an image, by its digest."""

    __tablename__ = "container_package_version"
    __table_args__ = (
        UniqueConstraint("package_id", "digest"),
        Index("ix_container_package_version_subject", "package_id", "subject_digest"),
        Index("ix_container_package_version_created", "package_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    package_id: Mapped[int] = mapped_column(ForeignKey("container_package.id", ondelete="CASCADE"))
    digest: Mapped[str] = mapped_column(String(DIGEST_LENGTH))
    media_type: Mapped[str] = mapped_column(String(255))
    artifact_type: Mapped[str | None] = mapped_column(String(255))
    #: The manifest this one refers to (signatures, SBOMs), for the referrers API.
    subject_digest: Mapped[str | None] = mapped_column(String(DIGEST_LENGTH))
    #: Manifest plus every blob it references, in bytes.
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    #: Platforms, labels, annotations, layer history, description, source, revision.
    metadata_json: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_by: Mapped[str | None] = mapped_column(String(HOST_ID_LENGTH))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )

    package: Mapped[Package] = relationship(back_populates="versions")
    files: Mapped[list[PackageFile]] = relationship(
        back_populates="version", cascade="all, delete-orphan", passive_deletes=True
    )


class PackageTag(Base):
    """A tag of an image pointing at one of its versions (case-sensitive, as pushed)."""

    __tablename__ = "container_package_tag"
    __table_args__ = (UniqueConstraint("package_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    package_id: Mapped[int] = mapped_column(ForeignKey("container_package.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(128))
    version_id: Mapped[int] = mapped_column(
        ForeignKey("container_package_version.id", ondelete="CASCADE"), index=True
    )
    updated_by: Mapped[str | None] = mapped_column(String(HOST_ID_LENGTH))
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )


class PackageBlob(Base):
    """Content-addressed bytes, shared by every image that links them (deduplicated)."""

    __tablename__ = "container_package_blob"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    digest: Mapped[str] = mapped_column(String(DIGEST_LENGTH), unique=True)
    size: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, index=True
    )


class BlobLink(Base):
    """A blob uploaded or mounted into an image: what lets the image serve it.

    Storage is shared, access is not: a blob is served from an image only through a link
    (or a file of one of its versions, whose blobs are linked when the manifest is pushed).
    """

    __tablename__ = "container_blob_link"
    __table_args__ = (UniqueConstraint("package_id", "blob_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    package_id: Mapped[int] = mapped_column(ForeignKey("container_package.id", ondelete="CASCADE"))
    blob_id: Mapped[int] = mapped_column(ForeignKey("container_package_blob.id"), index=True)
    created_by: Mapped[str | None] = mapped_column(String(HOST_ID_LENGTH))
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, index=True
    )


class PackageFile(Base):
    """A blob a version references: its manifest, config, layers or index children."""

    __tablename__ = "container_package_file"
    __table_args__ = (UniqueConstraint("version_id", "position"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version_id: Mapped[int] = mapped_column(
        ForeignKey("container_package_version.id", ondelete="CASCADE")
    )
    blob_id: Mapped[int] = mapped_column(ForeignKey("container_package_blob.id"), index=True)
    #: ``manifest`` (the lead file), ``config``, ``layer`` or ``child``.
    role: Mapped[str] = mapped_column(String(16))
    media_type: Mapped[str | None] = mapped_column(String(255))
    position: Mapped[int] = mapped_column(Integer, default=0)

    version: Mapped[PackageVersion] = relationship(back_populates="files")
    blob: Mapped[PackageBlob] = relationship()


class PackageProperty(Base):
    """Typed key/values on packages, versions and files where no column fits."""

    __tablename__ = "container_package_property"
    __table_args__ = (Index("ix_container_package_property_ref", "ref_type", "ref_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: ``package``, ``version`` or ``file``.
    ref_type: Mapped[str] = mapped_column(String(16))
    ref_id: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(255))
    value: Mapped[str] = mapped_column(Text, default="")


class BlobUpload(Base):
    """An upload session, bound to the image and principal that opened it."""

    __tablename__ = "container_blob_upload"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner_id: Mapped[str] = mapped_column(String(HOST_ID_LENGTH))
    image: Mapped[str] = mapped_column(String(255))
    created_by: Mapped[str | None] = mapped_column(String(HOST_ID_LENGTH))
    bytes_received: Mapped[int] = mapped_column(BigInteger, default=0)
    digest_algorithm: Mapped[str] = mapped_column(String(16), default="sha256")
    #: Serialized hash state after the last chunk, so the next chunk may land anywhere.
    hash_state: Mapped[bytes | None] = mapped_column(LargeBinary)
    hash_state_format: Mapped[str | None] = mapped_column(String(64))
    #: Driver-specific state (an S3 multipart upload id and its parts, say).
    storage_state: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow, index=True
    )


class CleanupRule(Base):
    """An owner's retention policy for its images (Gitea's semantics plus our own)."""

    __tablename__ = "container_cleanup_rule"
    __table_args__ = (UniqueConstraint("owner_id", "type"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_id: Mapped[str] = mapped_column(String(HOST_ID_LENGTH))
    type: Mapped[str] = mapped_column(String(32), default="container")
    enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    keep_count: Mapped[int] = mapped_column(Integer, default=0)
    keep_pattern: Mapped[str] = mapped_column(Text, default="")
    remove_pattern: Mapped[str] = mapped_column(Text, default="")
    remove_days: Mapped[int] = mapped_column(Integer, default=0)
    remove_untagged: Mapped[bool] = mapped_column(Boolean, default=False)
    match_full_name: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )


class OwnerQuota(Base):
    """An owner's own quota limits; ``NULL`` falls back to the setting, ``0`` is unlimited.

    See :mod:`forge_container.registry.quota` for what each limit counts.
    """

    __tablename__ = "container_owner_quota"
    __table_args__ = (UniqueConstraint("owner_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_id: Mapped[str] = mapped_column(String(HOST_ID_LENGTH))
    #: Bytes of distinct blobs the owner's images may hold.
    total_size: Mapped[int | None] = mapped_column(BigInteger)
    #: Manifests (versions) the owner's images may hold.
    versions: Mapped[int | None] = mapped_column(Integer)
    #: Bytes of the largest blob the owner may store.
    blob_size: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )


class StorageFile(Base):
    """A file of the ``database`` storage driver (:mod:`forge_container.storage.database`).

    Its bytes are the :class:`StorageChunk` rows that start before ``size``; rows at or past
    it are the leftovers of an append that failed, ignored and removed by the next append.
    """

    __tablename__ = "container_storage_file"
    # AUTOINCREMENT: SQLite would otherwise reuse the id of the last file deleted.
    __table_args__ = (UniqueConstraint("path"), {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: A driver-relative path (:mod:`forge_container.storage.paths`).
    path: Mapped[str] = mapped_column(String(STORAGE_PATH_LENGTH))
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    modified_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class StorageChunk(Base):
    """At most 1 MiB of a :class:`StorageFile`, from byte ``start``."""

    __tablename__ = "container_storage_chunk"

    file_id: Mapped[int] = mapped_column(
        ForeignKey("container_storage_file.id", ondelete="CASCADE"), primary_key=True
    )
    start: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    data: Mapped[bytes] = mapped_column(LargeBinary)


def host_include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    """For the host's ``Migrate(include_name=...)``: leave the plugin's tables alone."""
    return not (type_ == "table" and name is not None and name.startswith(TABLE_PREFIX))


def plugin_include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    """For the plugin's own migrations: look only at ``container_*`` tables."""
    if type_ == "table":
        return name is not None and name.startswith(TABLE_PREFIX)
    return True
