"""``/v2/<name>/blobs/uploads/``: upload sessions, monolithic and chunked uploads, mounts."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from typing import IO, cast

from flask import Response, request
from werkzeug.exceptions import RequestEntityTooLarge

from forge_container import access
from forge_container.access import Caller, Target
from forge_container.errors import BlobUploadInvalid, NameUnknown, SizeInvalid
from forge_container.names import InvalidName, parse_name
from forge_container.registry import mounts, uploads
from forge_container.registry.blobs import BlobInfo
from forge_container.state import RegistryState, get_state
from forge_container.views import bp
from forge_container.views.guard import current_caller, current_target
from forge_container.views.responses import empty_response

PULL = frozenset({"pull"})

# ``<start>-<end>`` as the spec writes it; ``bytes=`` and ``bytes <start>-<end>/<total>``
# as some clients do.
_CONTENT_RANGE_RE = re.compile(r"(?:bytes[= ])?(\d+)-(\d+)(?:/(?:\d+|\*))?", re.IGNORECASE)


@bp.post("/<path:name>/blobs/uploads/", strict_slashes=False)
def start_upload(name: str) -> Response:
    """Mount (201), upload a whole blob (201) or open a session (202)."""
    target, who = _uploader()
    state = get_state()
    session = state.db.session()
    mount = request.args.get("mount")
    if mount:
        mounted = _mount(state, who, mount)
        if mounted is not None:
            return _created(target, mounted)
    digest = request.args.get("digest")
    if digest is not None:
        info = uploads.upload_blob(
            session,
            state.storage,
            state.settings,
            who,
            digest,
            _RequestBody(),
            content_length=request.content_length,
        )
        return _created(target, info)
    status = uploads.start_upload(session, who, algorithm=request.args.get("digest-algorithm"))
    return _session_response(target, status, 202, min_chunk=state.storage.min_chunk_length)


@bp.get("/<path:name>/blobs/uploads/<upload_id>")
def upload_status(name: str, upload_id: str) -> Response:
    """How far the session got: 204 with ``Range`` (none while it is empty)."""
    target, who = _uploader()
    state = get_state()
    status = uploads.upload_status(state.db.session(), state.storage, who, upload_id)
    return _session_response(target, status, 204)


@bp.patch("/<path:name>/blobs/uploads/<upload_id>")
def append_chunk(name: str, upload_id: str) -> Response:
    """Append a chunk (``Content-Range``) or a stream (none) to the session: 202."""
    target, who = _uploader()
    state = get_state()
    with _resume_hint(target):
        status = uploads.append_chunk(
            state.db.session(),
            state.storage,
            state.settings,
            who,
            upload_id,
            _RequestBody(),
            content_length=request.content_length,
            content_range=_content_range(),
        )
    return _session_response(target, status, 202, min_chunk=state.storage.min_chunk_length)


@bp.put("/<path:name>/blobs/uploads/<upload_id>")
def finish_upload(name: str, upload_id: str) -> Response:
    """Append the optional last chunk, verify ``?digest=`` and store the blob: 201."""
    target, who = _uploader()
    state = get_state()
    with _resume_hint(target):
        info = uploads.finish_upload(
            state.db.session(),
            state.storage,
            state.settings,
            who,
            upload_id,
            request.args.get("digest"),
            _RequestBody(),
            content_length=request.content_length,
            content_range=_content_range(),
        )
    return _created(target, info)


@bp.delete("/<path:name>/blobs/uploads/<upload_id>")
def cancel_upload(name: str, upload_id: str) -> Response:
    """Cancel the session and drop its bytes: 204."""
    _, who = _uploader()
    state = get_state()
    uploads.cancel_upload(state.db.session(), state.storage, who, upload_id)
    return empty_response(204, {})


def _uploader() -> tuple[Target, uploads.Uploader]:
    target = current_target()
    principal = current_caller().principal
    return target, uploads.Uploader(
        owner_id=target.owner.id,
        owner_name=target.owner.name,
        image=target.name.image,
        principal_id=principal.id if principal is not None else None,
        is_admin=principal is not None and principal.is_admin,
    )


def _mount(state: RegistryState, who: uploads.Uploader, digest: str) -> BlobInfo | None:
    """Mount ``digest`` from ``?from=`` if the caller may pull it, or without ``from`` from
    any image the caller may pull; ``None`` when not possible: the upload goes on as usual."""
    session = state.db.session()
    caller = current_caller()
    source_name = request.args.get("from")
    if not source_name:
        readable = partial(_may_read, state, caller)
        return mounts.mount_blob(
            session, state.storage, state.settings, who, digest, source=None, may_read=readable
        )
    try:
        name = parse_name(source_name)
        source = access.resolve_target(state, name)
    except (InvalidName, NameUnknown):
        return None
    if not access.permits(state, caller, name, PULL):
        return None
    return mounts.mount_blob(
        session,
        state.storage,
        state.settings,
        who,
        digest,
        source=(source.owner.id, name.image),
        may_read=lambda candidate: True,
    )


def _may_read(state: RegistryState, caller: Caller, candidate: mounts.MountCandidate) -> bool:
    """Whether the caller may pull the image ``candidate`` (its owner looked up afresh, by id,
    so a name taken over by someone else after a rename grants nothing)."""
    try:
        name = parse_name(f"{candidate.owner_name.lower()}/{candidate.image}")
        owner = access.resolve_target(state, name).owner
    except (InvalidName, NameUnknown):
        return False
    return owner.id == candidate.owner_id and access.permits(state, caller, name, PULL)


def _content_range() -> tuple[int, int] | None:
    """``Content-Range`` of a chunk as ``(start, end)``, both inclusive; ``None`` if absent."""
    value = request.headers.get("Content-Range", "").strip()
    if not value:
        return None
    match = _CONTENT_RANGE_RE.fullmatch(value)
    if match is None or int(match[2]) < int(match[1]):
        raise BlobUploadInvalid(f"invalid Content-Range {value!r}: expected <start>-<end>")
    return int(match[1]), int(match[2])


@contextmanager
def _resume_hint(target: Target) -> Iterator[None]:
    """A 416 tells the client where to resume: the session's ``Location`` and ``Range``."""
    try:
        yield
    except uploads.UploadRangeInvalid as exc:
        exc.headers.update(_session_headers(target, exc.upload_id, exc.received))
        raise


class _RequestBody:
    """The request body for the service: server-side read failures become registry errors.

    The stream is opened on first read, so the session's own checks come first.
    """

    def __init__(self) -> None:
        self._stream: IO[bytes] | None = None

    def read(self, size: int, /) -> bytes:
        try:
            if self._stream is None:
                self._stream = _input_stream()
            return self._stream.read(size)
        except RequestEntityTooLarge:
            limit = get_state().settings.max_blob_size
            raise SizeInvalid(f"blobs may be at most {limit} bytes", status=413) from None
        except Exception as exc:
            # A client that disconnects or sends a broken body: werkzeug raises
            # ClientDisconnected, gunicorn its own parse errors.
            raise BlobUploadInvalid(f"the request body could not be read: {exc}") from None


def _input_stream() -> IO[bytes]:
    """The body as the server hands it over, when the server ends it at the body's end.

    Such servers (gunicorn) set ``wsgi.input_terminated``; werkzeug would still wrap the
    stream to apply the size limit, one more copy of every byte, and the services check
    the length and the limit themselves. Other servers get werkzeug's safe stream.
    """
    if request.environ.get("wsgi.input_terminated"):
        return cast(IO[bytes], request.environ["wsgi.input"])
    return request.stream


def _session_headers(target: Target, upload_id: str, received: int) -> dict[str, str]:
    headers = {
        "Location": f"/v2/{target.name}/blobs/uploads/{upload_id}",
        "Docker-Upload-UUID": upload_id,
    }
    # No Range while the session is empty: "0-0" would claim one byte, "0--1" breaks buildx.
    if received > 0:
        headers["Range"] = f"0-{received - 1}"
    return headers


def _session_response(
    target: Target,
    status: uploads.UploadStatus,
    code: int,
    *,
    min_chunk: int = 0,
) -> Response:
    """The session's headers, and the smallest chunk worth sending when there is one."""
    headers = _session_headers(target, status.id, status.received)
    if min_chunk > 0:
        headers["OCI-Chunk-Min-Length"] = str(min_chunk)
    return empty_response(code, headers)


def _created(target: Target, info: BlobInfo) -> Response:
    location = f"/v2/{target.name}/blobs/{info.digest}"
    return empty_response(201, {"Location": location, "Docker-Content-Digest": info.digest})
