"""The health check and the metrics, at their configured paths outside ``/v2``.

Neither is a registry request: no guard, no rate limit, no access log line. The metrics
answer ``404`` to a request without the scraper's bearer token, so their path is not
advertised; the health check needs no credentials and names only what failed.
"""

from __future__ import annotations

import hmac

from flask import Flask, Response, abort, jsonify, request

from forge_container.registry import health
from forge_container.state import get_state

HEALTH_ENDPOINT = "forge_container_health"
METRICS_ENDPOINT = "forge_container_metrics"


def register_operations(app: Flask) -> None:
    """Add the health check and the metrics when they are enabled."""
    operations = get_state(app).settings.operations
    if operations.health_enabled:
        app.add_url_rule(
            operations.health_path, HEALTH_ENDPOINT, health_check, methods=["GET", "HEAD"]
        )
    if operations.metrics_enabled:
        app.add_url_rule(operations.metrics_path, METRICS_ENDPOINT, metrics, methods=["GET"])


def health_check() -> Response:
    """``200 {"status": "ok", "checks": {...}}``, or ``503`` with ``"failing": [...]``."""
    state = get_state()
    checks = health.check_all(state.db.session(), state.storage, state.redis)
    failing = sorted(name for name, result in checks.items() if result != health.OK)
    body: dict[str, object] = {"status": "fail" if failing else "ok", "checks": checks}
    if failing:
        body["failing"] = failing
    response = jsonify(body)
    response.status_code = 503 if failing else 200
    response.headers["Cache-Control"] = "no-store"
    return response


def metrics() -> Response:
    """The Prometheus text exposition, for the bearer of the metrics token only."""
    state = get_state()
    token = state.settings.operations.metrics_token
    if state.metrics is None or token is None or not _bearer_matches(token):
        abort(404)
    sessions = health.open_upload_sessions(state.db.session())
    payload, content_type = state.metrics.exposition(upload_sessions=sessions)
    response = Response(payload, content_type=content_type)
    response.headers["Cache-Control"] = "no-store"
    return response


def _bearer_matches(token: str) -> bool:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(value.strip().encode(), token.encode())
