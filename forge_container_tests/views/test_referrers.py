"""``GET /v2/<name>/referrers/<digest>``: an OCI index of the manifests that refer to it."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest
from flask import Flask
from flask.testing import FlaskClient

from forge_container.digest import digest_of
from forge_container.mediatypes import OCI_INDEX, OCI_MANIFEST
from forge_container.models import Package, PackageBlob, PackageFile, PackageVersion
from forge_container.state import get_state
from forge_container_tests.helpers import basic, error_codes

SUBJECT = str(digest_of(b"the image"))
SIGNATURE = "application/vnd.dev.cosign.signature"
SBOM = "application/spdx+json"
URL = f"/v2/alice/app/referrers/{SUBJECT}"


def add_referrer(
    app: Flask,
    image: str,
    body: bytes,
    *,
    artifact_type: str | None = SIGNATURE,
    media_type: str = OCI_MANIFEST,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A manifest with ``subject`` SUBJECT, stored as the manifests service stores it; its
    expected descriptor."""
    state = get_state(app)
    owner_name, _, name = image.partition("/")
    digest = str(digest_of(body))
    with app.app_context():
        session = state.db.session()
        owner = state.host.get_owner(owner_name)
        assert owner is not None
        package = session.query(Package).filter_by(owner_id=owner.id, name=name).one_or_none()
        if package is None:
            package = Package(owner_id=owner.id, owner_name=owner.name, name=name)
        metadata = {"annotations": annotations} if annotations else {}
        version = PackageVersion(
            package=package,
            digest=digest,
            media_type=media_type,
            artifact_type=artifact_type,
            subject_digest=SUBJECT,
            metadata_json=metadata,
        )
        blob = PackageBlob(digest=digest, size=len(body))
        session.add_all([package, version, blob])
        session.flush()
        session.add(PackageFile(version_id=version.id, blob_id=blob.id, role="manifest"))
        session.commit()
    descriptor: dict[str, Any] = {"mediaType": media_type, "digest": digest, "size": len(body)}
    if artifact_type:
        descriptor["artifactType"] = artifact_type
    if annotations:
        descriptor["annotations"] = annotations
    return descriptor


@pytest.fixture
def world(forge: Any) -> None:
    forge.user("alice")
    forge.user("carol", public=False)


def index(response: Any) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.data
    assert response.headers["Content-Type"] == OCI_INDEX
    body = response.get_json(force=True)
    assert body["schemaVersion"] == 2 and body["mediaType"] == OCI_INDEX
    manifests: list[dict[str, Any]] = body["manifests"]
    return manifests


@pytest.mark.usefixtures("world")
def test_an_index_of_descriptors(app: Flask, client: FlaskClient) -> None:
    signature = add_referrer(app, "alice/app", b"sig", annotations={"created": "today"})
    sbom = add_referrer(app, "alice/app", b"sbom", artifact_type=SBOM)
    nested = add_referrer(app, "alice/app", b"an index", artifact_type=None, media_type=OCI_INDEX)
    response = client.get(URL)
    expected = sorted([signature, sbom, nested], key=lambda d: str(d["digest"]))
    assert index(response) == expected
    assert "OCI-Filters-Applied" not in response.headers
    assert "Link" not in response.headers


@pytest.mark.usefixtures("world")
def test_filtered_by_artifact_type(app: Flask, client: FlaskClient) -> None:
    add_referrer(app, "alice/app", b"sig")
    sbom = add_referrer(app, "alice/app", b"sbom", artifact_type=SBOM)
    response = client.get(f"{URL}?{urlencode({'artifactType': SBOM})}")
    assert index(response) == [sbom]
    assert response.headers["OCI-Filters-Applied"] == "artifactType"
    empty = client.get(f"{URL}?artifactType=application/none")
    assert index(empty) == []
    assert empty.headers["OCI-Filters-Applied"] == "artifactType"


@pytest.mark.usefixtures("world")
def test_an_unknown_subject_has_an_empty_index(app: Flask, client: FlaskClient) -> None:
    add_referrer(app, "alice/app", b"sig")
    assert index(client.get(f"/v2/alice/app/referrers/{digest_of(b'other')}")) == []
    assert index(client.get(f"/v2/alice/never-pushed/referrers/{SUBJECT}")) == []


@pytest.mark.usefixtures("world")
def test_large_lists_are_paged_with_link(app: Flask, client: FlaskClient) -> None:
    digests = sorted(
        add_referrer(app, "alice/app", f"sig {i}".encode(), artifact_type=SBOM)["digest"]
        for i in range(5)
    )
    seen: list[str] = []
    url = f"{URL}?{urlencode({'n': 2, 'artifactType': SBOM})}"
    for _ in range(5):
        response = client.get(url)
        seen += [d["digest"] for d in index(response)]
        link = response.headers.get("Link")
        if link is None:
            break
        assert link.endswith('>; rel="next"')
        url = link[1 : link.index(">")]
        assert url.startswith(f"/v2/alice/app/referrers/{SUBJECT}?n=2&last=sha256%3A")
        assert "artifactType=application%2Fspdx%2Bjson" in url
    assert seen == digests


@pytest.mark.usefixtures("world")
@pytest.mark.parametrize("digest", ["sha256:abc", "md5:" + "0" * 32, "latest"])
def test_an_invalid_digest_is_digest_invalid(client: FlaskClient, digest: str) -> None:
    response = client.get(f"/v2/alice/app/referrers/{digest}")
    assert response.status_code == 400
    assert error_codes(response) == ["DIGEST_INVALID"]


@pytest.mark.usefixtures("world")
def test_private_images_need_pull(app: Flask, client: FlaskClient) -> None:
    sig = add_referrer(app, "carol/app", b"sig")
    url = f"/v2/carol/app/referrers/{SUBJECT}"
    response = client.get(url)
    assert response.status_code == 401
    assert error_codes(response) == ["UNAUTHORIZED"]
    assert index(client.get(url, headers=basic("carol", "pw-carol"))) == [sig]


@pytest.mark.usefixtures("world")
def test_an_unknown_owner_is_an_unknown_name(client: FlaskClient) -> None:
    response = client.get(f"/v2/nobody/app/referrers/{SUBJECT}", headers=basic("alice", "pw-alice"))
    assert response.status_code == 404
    assert error_codes(response) == ["NAME_UNKNOWN"]
