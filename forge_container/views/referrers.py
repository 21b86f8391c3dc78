"""``GET /v2/<name>/referrers/<digest>``: the manifests that refer to a subject, as an index."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from flask import Response, json, request

from forge_container.mediatypes import OCI_INDEX
from forge_container.registry import referrers
from forge_container.registry.referrers import Referrer
from forge_container.state import get_state
from forge_container.views import bp
from forge_container.views.guard import current_target


@bp.get("/<path:name>/referrers/<digest>")
def list_referrers(name: str, digest: str) -> Response:
    target = current_target()
    subject = referrers.parse_subject(digest)
    artifact_types = [t for t in request.args.getlist("artifactType") if t]
    n = referrers.parse_page_size(request.args.get("n"))
    page = referrers.list_referrers(
        get_state().db.session(),
        target.owner.id,
        target.name,
        subject,
        artifact_types=artifact_types,
        n=n,
        last=request.args.get("last") or None,
    )
    body = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [_descriptor(r) for r in page.referrers],
    }
    response = Response(json.dumps(body), mimetype=OCI_INDEX)
    if artifact_types:
        response.headers["OCI-Filters-Applied"] = "artifactType"
    if page.more:
        query = [("n", str(n)), ("last", page.referrers[-1].digest)]
        query += [("artifactType", t) for t in artifact_types]
        url = f"/v2/{target.name}/referrers/{subject}?{urlencode(query)}"
        response.headers["Link"] = f'<{url}>; rel="next"'
    return response


def _descriptor(referrer: Referrer) -> dict[str, Any]:
    descriptor: dict[str, Any] = {
        "mediaType": referrer.media_type,
        "digest": referrer.digest,
        "size": referrer.size,
    }
    if referrer.artifact_type:
        descriptor["artifactType"] = referrer.artifact_type
    if referrer.annotations:
        descriptor["annotations"] = referrer.annotations
    return descriptor
