"""``/v2/<name>/manifests/<reference>``: push, pull and delete manifests and tags."""

from __future__ import annotations

from flask import Response, request

from forge_container.registry import manifests
from forge_container.state import get_state
from forge_container.views import bp
from forge_container.views.guard import current_caller, current_target
from forge_container.views.responses import empty_response


@bp.get("/<path:name>/manifests/<reference>")
def get_manifest(name: str, reference: str) -> Response:
    """The stored bytes as pushed (HEAD: the headers only); ``If-None-Match`` gives 304."""
    state = get_state()
    target = current_target()
    head = request.method == "HEAD"
    found = manifests.get_manifest(
        state.db.session(),
        state.storage,
        owner_id=target.owner.id,
        image=target.name.image,
        reference=reference,
        read=not head,
        cache=state.manifest_bytes,
        refs=state.manifest_refs,
    )
    headers = {"Docker-Content-Digest": found.digest, "ETag": f'"{found.digest}"'}
    # The digest is a strong ETag: If-None-Match naming it (or *) gets 304. Checked here
    # rather than by make_conditional, which parses dates and ranges a pull never sends.
    if "If-None-Match" in request.headers and request.if_none_match.contains_weak(found.digest):
        return Response(status=304, headers=headers)
    response = Response(found.data or b"", content_type=found.media_type, headers=headers)
    if head:
        response.headers["Content-Length"] = str(found.size)
    return response


@bp.put("/<path:name>/manifests/<reference>")
def put_manifest(name: str, reference: str) -> Response:
    """201 with ``Location``, the digest, ``OCI-Subject`` and one ``OCI-Tag`` per ``?tag=``."""
    state = get_state()
    target = current_target()
    principal = current_caller().principal
    pushed = manifests.put_manifest(
        state.db.session(),
        state.storage,
        state.settings,
        owner_id=target.owner.id,
        owner_name=target.owner.name,
        image=target.name.image,
        reference=reference,
        body=request.stream,
        content_type=request.headers.get("Content-Type"),
        content_length=request.content_length,
        tags=request.args.getlist("tag"),
        by=principal.id if principal is not None else None,
        is_admin=principal is not None and principal.is_admin,
    )
    response = empty_response(201)
    response.headers["Location"] = f"/v2/{target.name}/manifests/{pushed.digest}"
    response.headers["Docker-Content-Digest"] = pushed.digest
    if pushed.subject is not None:
        response.headers["OCI-Subject"] = pushed.subject
    for tag in pushed.tags:
        response.headers.add("OCI-Tag", tag)
    return response


@bp.delete("/<path:name>/manifests/<reference>")
def delete_manifest(name: str, reference: str) -> Response:
    """202: a tag reference untags, a digest deletes the manifest and its tags."""
    state = get_state()
    target = current_target()
    principal = current_caller().principal
    manifests.delete_manifest(
        state.db.session(),
        owner_id=target.owner.id,
        image=target.name.image,
        reference=reference,
        owner_name=target.owner.name,
        by=principal.id if principal is not None else None,
    )
    return empty_response(202)
