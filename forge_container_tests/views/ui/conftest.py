"""Images pushed through the manifests service, and a signed-in browser session."""

from __future__ import annotations

import io
import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from forge_container.digest import digest_of
from forge_container.mediatypes import OCI_CONFIG, OCI_INDEX, OCI_MANIFEST
from forge_container.registry import manifests
from forge_container.state import get_state
from forge_container_tests.conftest import Forge
from forge_container_tests.manifest_fixtures import (
    LAYER_GZIP,
    config_bytes,
    descriptor,
    image_manifest,
    index_manifest,
    platform,
    seed_blob,
)


class Images:
    """Push images, indexes and referrers as a client would leave them."""

    def __init__(self, app: Flask, forge: Forge) -> None:
        self.app = app
        self.forge = forge

    def _put(
        self, owner: str, image: str, reference: str, data: bytes, media_type: str, by: str | None
    ) -> str:
        state = get_state(self.app)
        found = self.forge.owner(owner)
        with self.app.app_context():
            pushed = manifests.put_manifest(
                state.db.session(),
                state.storage,
                state.settings,
                owner_id=found.id,
                owner_name=found.name,
                image=image,
                reference=reference,
                body=io.BytesIO(data),
                content_type=media_type,
                by=by,
            )
        return pushed.digest

    def push(
        self,
        owner: str,
        image: str,
        tag: str | None = None,
        *,
        arch: str = "amd64",
        layer: bytes = b"layer",
        labels: dict[str, str] | None = None,
        annotations: dict[str, str] | None = None,
        history: tuple[str, ...] = ("/bin/sh -c #(nop) ADD file:abc in /",),
        by: str | None = None,
        subject: str | None = None,
        artifact_type: str | None = None,
    ) -> str:
        """An image manifest (tagged ``tag``, else by digest); its digest."""
        owner_id = self.forge.owner(owner).id
        config = config_bytes(
            arch=arch,
            config={"Labels": labels or {}},
            history=[{"created_by": step} for step in history],
        )
        seed_blob(self.app, owner_id, image, config)
        seed_blob(self.app, owner_id, image, layer)
        fields: dict[str, Any] = {}
        if annotations:
            fields["annotations"] = annotations
        if subject:
            fields["subject"] = {"mediaType": OCI_MANIFEST, "digest": subject, "size": 1}
        if artifact_type:
            fields["artifactType"] = artifact_type
        data = image_manifest(
            descriptor(config, OCI_CONFIG), [descriptor(layer, LAYER_GZIP)], **fields
        )
        reference = tag or str(digest_of(data))
        return self._put(owner, image, reference, data, OCI_MANIFEST, by)

    def index(self, owner: str, image: str, tag: str, children: list[tuple[str, str]]) -> str:
        """An index of ``(digest, arch)`` children already pushed; its digest."""
        state = get_state(self.app)
        entries = []
        for digest, arch in children:
            with self.app.app_context():
                size = manifests.get_manifest(
                    state.db.session(),
                    state.storage,
                    owner_id=self.forge.owner(owner).id,
                    image=image,
                    reference=digest,
                ).size
            entries.append(
                {"mediaType": OCI_MANIFEST, "digest": digest, "size": size}
                | {"platform": platform("linux", arch)}
            )
        data = index_manifest(entries)
        return self._put(owner, image, tag, data, OCI_INDEX, None)


@pytest.fixture
def images(app: Flask, forge: Forge) -> Images:
    return Images(app, forge)


def csrf_of(page: str) -> str:
    """The CSRF token of the package page's own form (not the host layout's)."""
    match = re.search(r'name="csrf_token" value="([^"]+)"', page[page.index('<div class="fc">') :])
    assert match is not None, page
    return match.group(1)


def sign_in(client: FlaskClient, name: str) -> None:
    """Sign in to the demo forge with the ``Forge`` default password."""
    login = client.get("/login").get_data(as_text=True)
    token = re.findall(r'name="csrf_token" value="([^"]+)"', login)[-1]
    response = client.post(
        "/login", data={"csrf_token": token, "username": name, "password": f"pw-{name}"}
    )
    assert response.status_code == 302


def text(response: Any) -> str:
    body: str = response.get_data(as_text=True)
    return body
