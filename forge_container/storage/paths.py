"""Every storage path is built, parsed and validated here, and nowhere else.

Layout under a driver's root (a directory, or a key prefix for object stores)::

    blobs/<alg>/<first 2 hex>/<hex>   one finished blob, content-addressed and immutable
    uploads/<id>/data                 the bytes of one upload in progress, appended per PATCH

``uploads/`` sits beside ``blobs/`` so that, on a filesystem, committing an upload is a
rename within one filesystem (atomic). Components never start with ``.``: drivers keep
their scratch files (``.tmp-*``) under such names, out of reach of these paths.
"""

from __future__ import annotations

import re

from forge_container.digest import Digest, InvalidDigest
from forge_container.storage.base import InvalidPath

#: Top-level directory of finished blobs.
BLOBS = "blobs"
#: Top-level directory of uploads in progress.
UPLOADS = "uploads"

UPLOAD_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
_UPLOAD_FILE = "data"


def validate_path(path: str, *, allow_root: bool = False) -> str:
    """Return ``path`` if it is a safe relative path, or raise :class:`InvalidPath`.

    Refused: absolute paths, NUL, backslashes, empty components and components starting
    with ``.`` (which covers ``.`` and ``..``). ``allow_root`` accepts ``""`` (the root).
    """
    if not isinstance(path, str):
        raise InvalidPath(repr(path), "not a string")
    if path == "":
        if allow_root:
            return path
        raise InvalidPath(path, "empty")
    if "\0" in path:
        raise InvalidPath(path, "contains NUL")
    if "\\" in path:
        raise InvalidPath(path, "contains a backslash")
    if path.startswith("/"):
        raise InvalidPath(path, "absolute")
    for part in path.split("/"):
        if not part:
            raise InvalidPath(path, "empty component")
        if part.startswith("."):
            raise InvalidPath(path, f"component {part!r} starts with '.'")
    return path


def blob_path(digest: Digest) -> str:
    """``blobs/<alg>/<first 2 hex>/<hex>``: where the blob with ``digest`` is stored."""
    return validate_path(f"{BLOBS}/{digest.algorithm}/{digest.hex[:2]}/{digest.hex}")


def upload_path(upload_id: str) -> str:
    """``uploads/<id>/data``: the bytes of upload ``upload_id`` (``[A-Za-z0-9_-]{1,64}``)."""
    if not isinstance(upload_id, str) or UPLOAD_ID_RE.fullmatch(upload_id) is None:
        raise InvalidPath(repr(upload_id), "upload ids are 1 to 64 of [A-Za-z0-9_-]")
    return validate_path(f"{UPLOADS}/{upload_id}/{_UPLOAD_FILE}")


def digest_from_blob_path(path: str) -> Digest:
    """The digest of a path built by :func:`blob_path` (e.g. from a listing)."""
    parts = validate_path(path).split("/")
    if len(parts) != 4 or parts[0] != BLOBS:
        raise InvalidPath(path, "not a blob path")
    try:
        digest = Digest(parts[1], parts[3])
    except InvalidDigest as exc:
        raise InvalidPath(path, str(exc)) from None
    if blob_path(digest) != path:
        raise InvalidPath(path, "not a blob path")
    return digest


def upload_id_from_path(path: str) -> str:
    """The upload id of a path built by :func:`upload_path` (e.g. from a listing)."""
    parts = validate_path(path).split("/")
    if len(parts) != 3 or parts[0] != UPLOADS or parts[2] != _UPLOAD_FILE:
        raise InvalidPath(path, "not an upload path")
    upload_path(parts[1])
    return parts[1]
