"""``/v2/<name>/blobs/<digest>``: HEAD, GET (with ranges) and DELETE of an image's blobs."""

from __future__ import annotations

import re
from typing import BinaryIO

from flask import Response, request
from werkzeug.wsgi import wrap_file

from forge_container.registry import blobs
from forge_container.state import get_state
from forge_container.storage import CHUNK_SIZE
from forge_container.views import bp
from forge_container.views.guard import current_target
from forge_container.views.responses import empty_response

#: Blobs are content-addressed and never change, so caches may keep them for a year.
CACHE_CONTROL = "max-age=31536000"
BLOB_MEDIA_TYPE = "application/octet-stream"

# One range of RFC 9110 §14.1.2; several ranges are answered with the whole blob.
_RANGE_RE = re.compile(r"bytes=(\d*)-(\d*)", re.IGNORECASE)


@bp.route("/<path:name>/blobs/<digest>", methods=["GET", "HEAD"])
def get_blob(name: str, digest: str) -> Response:
    """The blob if the image links it: whole, a ``Range`` of it (206), or 304.

    A whole blob may instead be handed to the front server or redirected to the store
    (:func:`~forge_container.registry.blobs.download_blob`).
    """
    target = current_target()
    state = get_state()
    session = state.db.session()
    owner_id, image = target.owner.id, target.name.image
    fresh = request.if_none_match.contains_weak(digest)
    if request.method == "HEAD":
        info = blobs.stat_blob(session, state.storage, owner_id, image, digest)
        if fresh:
            return _blob_response(info, Response(status=304), None)
        return _blob_response(info, Response(status=200), info.size)
    body = blobs.download_blob(
        session,
        state.storage,
        state.settings,
        owner_id,
        image,
        digest,
        byte_range=None if fresh else _requested_range(digest),
        with_body=not fresh,
        whole="Range" not in request.headers,
    )
    if isinstance(body, blobs.BlobHandoff):
        return _handoff_response(body)
    if body.stream is None:
        return _blob_response(body.info, Response(status=304), None)
    if body.partial:
        response = Response(_RangeBody(body.stream, body.length), status=206)
        last = body.start + body.length - 1
        response.headers["Content-Range"] = f"bytes {body.start}-{last}/{body.info.size}"
    else:
        response = Response(wrap_file(request.environ, body.stream, CHUNK_SIZE))
    response.direct_passthrough = True
    return _blob_response(body.info, response, body.length)


@bp.delete("/<path:name>/blobs/<digest>")
def delete_blob(name: str, digest: str) -> Response:
    """Unlink the blob from the image (202); its bytes stay for garbage collection."""
    target = current_target()
    blobs.unlink_blob(get_state().db.session(), target.owner.id, target.name.image, digest)
    response = empty_response(202)
    del response.headers["Content-Type"]
    return response


def _handoff_response(handoff: blobs.BlobHandoff) -> Response:
    """An empty answer telling the front server (200) or the client (307) where the bytes are."""
    if handoff.how == blobs.REDIRECT:
        response = Response(b"", status=307)
        response.headers["Location"] = handoff.target
        response.headers["Docker-Content-Digest"] = handoff.info.digest
        del response.headers["Content-Type"]
        return response
    response = _blob_response(handoff.info, Response(b""), None)
    if handoff.how == blobs.ACCEL_REDIRECT:
        response.headers["X-Accel-Redirect"] = handoff.target
        if handoff.rate_limit:
            response.headers["X-Accel-Limit-Rate"] = str(handoff.rate_limit)
    else:
        response.headers["X-Sendfile"] = handoff.target
    return response


def _blob_response(info: blobs.BlobInfo, response: Response, length: int | None) -> Response:
    response.mimetype = BLOB_MEDIA_TYPE
    if length is not None:
        response.headers["Content-Length"] = str(length)
    response.headers["Docker-Content-Digest"] = info.digest
    response.headers["ETag"] = f'"{info.digest}"'
    response.headers["Accept-Ranges"] = "bytes"
    response.headers["Cache-Control"] = CACHE_CONTROL
    return response


def _requested_range(digest: str) -> blobs.ByteRange | None:
    """The single byte range asked for, or ``None`` to send the whole blob.

    A malformed ``Range`` is ignored (RFC 9110 §14.2), and so is one whose ``If-Range``
    names another entity.
    """
    header = request.headers.get("Range")
    if header is None:
        return None
    if_range = request.headers.get("If-Range")
    if if_range is not None and if_range.strip() != f'"{digest}"':
        return None
    match = _RANGE_RE.fullmatch(header.strip().replace(" ", ""))
    if match is None:
        return None
    first, last = match.groups()
    if not first:
        return blobs.ByteRange(first=None, last=int(last)) if last else None
    if last and int(last) < int(first):
        return None
    return blobs.ByteRange(first=int(first), last=int(last) if last else None)


class _RangeBody:
    """``length`` bytes of ``stream`` in pieces; the server closes it when done."""

    def __init__(self, stream: BinaryIO, length: int) -> None:
        self._stream = stream
        self._left = length

    def __iter__(self) -> _RangeBody:
        return self

    def __next__(self) -> bytes:
        if self._left <= 0:
            raise StopIteration
        piece = self._stream.read(min(CHUNK_SIZE, self._left))
        if not piece:
            raise StopIteration
        self._left -= len(piece)
        return piece

    def close(self) -> None:
        self._stream.close()
