"""Fill in the request's record for the access log and the metrics: the route and what it
names as the request starts, the principal and the resolved image as it ends."""

from __future__ import annotations

from flask import g, request

from forge_container.access_log import RequestRecord
from forge_container.state import get_state
from forge_container.views.middleware import BLOB_UPLOAD_ENDPOINTS, RECORD_KEY
from forge_container.views.responses import client_address


def _record() -> RequestRecord | None:
    record = request.environ.get(RECORD_KEY)
    return record if isinstance(record, RequestRecord) else None


def start_record() -> None:
    """Before any other hook: the endpoint, the image and reference, the client address."""
    record = _record()
    if record is None:
        return
    record.endpoint = request.endpoint
    record.address = client_address(request, get_state().settings.proxy_count)
    args = request.view_args or {}
    name = args.get("name")
    record.image = name if isinstance(name, str) else None
    reference = args.get("digest") or args.get("reference")
    if reference is None and request.endpoint in BLOB_UPLOAD_ENDPOINTS:
        reference = request.args.get("digest")
    record.reference = reference if isinstance(reference, str) else None


def finish_record(error: BaseException | None = None) -> None:
    """On teardown: who the guard identified, and the image as it resolved it."""
    record = _record()
    context = g.get("_forge_container")
    if record is None or context is None:
        return
    caller = getattr(context, "caller", None)
    principal = getattr(caller, "principal", None)
    if principal is not None:
        record.principal = principal.name
        record.principal_id = principal.id
    target = getattr(context, "target", None)
    if target is not None:
        record.image = str(target.name)
