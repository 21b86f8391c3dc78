"""Small helpers the tests share (fixtures live in conftest.py)."""

from __future__ import annotations

import base64
import hashlib
import io
import time
from typing import Any

from flask.testing import FlaskClient
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from redis import Redis
from werkzeug.test import TestResponse

from forge_container.digest import digest_of
from forge_container.registry import uploads
from forge_container.registry.blobs import BlobInfo
from forge_container.state import RegistryState


def forget_keys(redis: Redis, prefix: str) -> None:
    """Delete every Redis key under ``prefix`` (a test's own prefix)."""
    for key in redis.scan_iter(match=f"{prefix}*"):
        redis.delete(key)


def basic(username: str, secret: str) -> dict[str, str]:
    """An ``Authorization: Basic`` header."""
    raw = base64.b64encode(f"{username}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def error_codes(response: TestResponse) -> list[str]:
    """The OCI error codes of a response, asserting the body has the spec's shape."""
    body: Any = response.get_json()
    assert isinstance(body, dict) and isinstance(body.get("errors"), list), response.data
    for entry in body["errors"]:
        assert set(entry) <= {"code", "message", "detail"}
    return [entry["code"] for entry in body["errors"]]


def challenge_params(header: str) -> dict[str, str]:
    """``Bearer realm="x",service="y"`` as a dict (every value is quoted)."""
    scheme, _, rest = header.partition(" ")
    assert scheme == "Bearer", header
    params: dict[str, str] = {}
    for part in rest.split('",'):
        key, _, value = part.partition("=")
        assert value.startswith('"'), header
        params[key.strip()] = value.strip('"')
    return params


def signed_in_the_past(
    secret: str, salt: str, *, seconds: int, extra: dict[str, Any] | None = None
) -> str:
    """A token for the default service signed ``seconds`` ago, as an old client would hold."""

    class PastSigner(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - seconds

    serializer = URLSafeTimedSerializer([secret], salt=salt, signer=PastSigner)
    token = serializer.dumps({"aud": "forge-container", "jti": "j", "access": [], **(extra or {})})
    assert isinstance(token, str)
    return token


def push_blob(
    client: FlaskClient, data: bytes, *, image: str = "alice/app", headers: dict[str, str]
) -> str:
    """Upload ``data`` into ``image`` in one ``POST ?digest=`` (asserting 201); its digest."""
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    response = client.post(
        f"/v2/{image}/blobs/uploads/?digest={digest}", data=data, headers=headers, buffered=True
    )
    assert response.status_code == 201, response.data
    return digest


def upload_bytes(state: RegistryState, who: uploads.Uploader, data: bytes) -> BlobInfo:
    """Store ``data`` in ``who``'s image with one monolithic upload, through the service."""
    return uploads.upload_blob(
        state.db.session(),
        state.storage,
        state.settings,
        who,
        str(digest_of(data)),
        io.BytesIO(data),
        content_length=len(data),
    )
