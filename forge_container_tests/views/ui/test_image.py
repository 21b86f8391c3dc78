"""One image's page: tags, digests, platforms and sizes, metadata, history, referrers."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from flask.testing import FlaskClient
from jinja2.filters import do_filesizeformat
from sqlalchemy import select

from forge_container.models import Package, PackageVersion
from forge_container.state import get_state
from forge_container_tests.conftest import Forge
from forge_container_tests.views.ui.conftest import Images, sign_in, text

PAGE = "/alice/-/packages/container/app"
COSIGN = "application/vnd.dev.cosign.artifact.sig.v1+json"
SPDX = "application/spdx+json"


def tag_names(page: str) -> list[str]:
    return re.findall(r'class="fc-tag" href="[^"]+">([^<]+)</a>', page)


def version_size(app: Flask, digest: str) -> int:
    with app.app_context():
        size = get_state(app).db.session.scalar(
            select(PackageVersion.size).where(PackageVersion.digest == digest)
        )
    assert size is not None
    return size


@pytest.fixture
def app_image(forge: Forge, images: Images) -> dict[str, str]:
    """alice/app: ``v1`` (amd64, labelled, signed), ``latest`` (an index of amd64 and
    arm64, with an SBOM on arm64), and one untagged manifest."""
    alice = forge.user("alice")
    forge.user("bob")
    repository = forge.repo("alice", "app")
    amd = images.push(
        "alice",
        "app",
        "v1",
        layer=b"amd64 layer" * 100,
        labels={
            "org.opencontainers.image.source": "http://localhost/alice/app.git",
            "org.opencontainers.image.revision": "0123abcd",
            "com.example.team": "platform",
        },
        annotations={"org.opencontainers.image.description": "The app, in a box"},
        history=("/bin/sh -c #(nop) ADD file:1234 in / ", "/bin/sh -c apk add curl"),
        by=alice.id,
    )
    arm = images.push("alice", "app", arch="arm64", layer=b"arm64 layer" * 50, by=alice.id)
    index = images.index("alice", "app", "latest", [(amd, "amd64"), (arm, "arm64")])
    signature = images.push("alice", "app", subject=amd, artifact_type=COSIGN, layer=b"sig")
    sbom = images.push("alice", "app", subject=arm, artifact_type=SPDX, layer=b"sbom")
    loose = images.push("alice", "app", arch="s390x", layer=b"old build", by=alice.id)
    return {
        "amd": amd,
        "arm": arm,
        "index": index,
        "signature": signature,
        "sbom": sbom,
        "loose": loose,
        "repository": repository,
    }


def test_tags_with_digests_platforms_sizes_and_pushers(
    app_image: dict[str, str], app: Flask, client: FlaskClient
) -> None:
    response = client.get(PAGE)
    page = text(response)
    assert response.status_code == 200
    assert tag_names(page) == ["latest", "v1"]  # last push first
    assert app_image["index"][:19] in page and app_image["amd"][:19] in page
    table = page[page.index('id="fc-tag-table"') : page.index("</table>")]
    latest = table[table.index(">latest<") : table.index(">v1<")]
    for arch, key in (("linux/amd64", "amd"), ("linux/arm64", "arm")):
        assert arch in latest
        assert do_filesizeformat(version_size(app, app_image[key]), binary=True) in latest
    assert "by alice" in table
    assert "1 referrer" in table  # v1 is signed
    # The index is selected by default: its platforms, each with layers and history.
    assert "Tag latest" in page
    assert "multi-platform index" in page
    assert page.count('class="fc-platform"') == 2
    assert "apk add curl" in page and "ADD file:1234 in /" in page
    assert "docker pull localhost/alice/app:latest" in page


def test_a_version_in_detail(app_image: dict[str, str], client: FlaskClient) -> None:
    page = text(client.get(PAGE + "?tag=v1"))
    assert "Tag v1" in page
    assert "The app, in a box" in page
    assert '<code>com.example.team</code></th><td class="fc-break">platform</td>' in page
    assert "<code>org.opencontainers.image.description</code>" in page
    # source and revision point into the forge: the repository and its commit
    assert '<dt>Source</dt><dd><a href="/alice/app">alice/app</a></dd>' in page
    assert '<a href="/alice/app/commit/0123abcd"><code>0123abcd</code></a>' in page
    assert 'Repository <a href="/alice/app">alice/app</a>' in page
    assert app_image["signature"][:19] in page
    assert '<span class="fc-badge fc-badge-ref">signature</span>' in page
    assert COSIGN in page


def test_referrers_are_grouped_under_their_platform(
    app_image: dict[str, str], client: FlaskClient
) -> None:
    page = text(client.get(PAGE))
    referrers = page[page.index('id="fc-referrers"') :]
    assert "For linux/amd64" in referrers and "For linux/arm64" in referrers
    assert referrers.index("For linux/amd64") < referrers.index("signature")
    assert referrers.index("For linux/arm64") < referrers.index(">SBOM<")
    assert SPDX in referrers


def test_untagged_versions_and_opening_one_by_digest(
    app_image: dict[str, str], client: FlaskClient
) -> None:
    page = text(client.get(PAGE))
    untagged = page[page.index('id="fc-untagged"') : page.index('class="fc-version"')]
    # Index children and referrers are not listed as untagged: only the loose build is.
    assert app_image["loose"][:19] in untagged
    for key in ("amd", "arm", "signature", "sbom"):
        assert app_image[key][:19] not in untagged
    detail = text(client.get(PAGE + "?digest=" + app_image["loose"]))
    assert f"Version {app_image['loose'][:19]}" in detail
    assert "linux/s390x" in detail
    assert f"docker pull localhost/alice/app@{app_image['loose']}" in detail


def test_unknown_tags_and_digests_are_not_found(
    app_image: dict[str, str], client: FlaskClient
) -> None:
    assert client.get(PAGE + "?tag=nope").status_code == 404
    assert client.get(PAGE + "?tag=bad%20tag").status_code == 404
    assert client.get(PAGE + "?digest=sha256:" + "0" * 64).status_code == 404
    assert client.get(PAGE + "?digest=sha256:zz%00").status_code == 404
    assert client.get("/alice/-/packages/container/nothing").status_code == 404
    assert client.get("/alice/-/packages/container/Bad_Name").status_code == 404


@pytest.mark.parametrize("app_config", [{"CONTAINER_REGISTRY_UI_PAGE_SIZE": 2}])
def test_tags_sort_and_paginate(forge: Forge, images: Images, client: FlaskClient) -> None:
    forge.user("alice")
    for tag in ("b", "a", "c"):
        images.push("alice", "app", tag, layer=tag.encode())
    first = text(client.get(PAGE))
    assert tag_names(first) == ["c", "a"]
    assert "Page 1 of 2" in first
    assert tag_names(text(client.get(PAGE + "?page=2"))) == ["b"]
    assert tag_names(text(client.get(PAGE + "?sort=name"))) == ["a", "b"]
    assert tag_names(text(client.get(PAGE + "?sort=name&page=2"))) == ["c"]


@pytest.mark.parametrize(
    "app_config", [{"CONTAINER_REGISTRY_REGISTRY_HOST": "registry.example.org"}]
)
def test_the_pull_command_names_the_configured_host(
    forge: Forge, images: Images, client: FlaskClient
) -> None:
    forge.user("alice")
    images.push("alice", "app", "v1")
    assert "docker pull registry.example.org/alice/app:v1" in text(client.get(PAGE))


def test_private_images_are_invisible(forge: Forge, images: Images, client: FlaskClient) -> None:
    forge.user("alice")
    forge.user("bob")
    forge.repo("alice", "vault", private=True)
    images.push("alice", "vault/db", "v1")
    assert client.get("/alice/-/packages/container/vault/db").status_code == 404
    sign_in(client, "bob")
    assert client.get("/alice/-/packages/container/vault/db").status_code == 404
    owner = client.application.test_client()
    sign_in(owner, "alice")
    assert owner.get("/alice/-/packages/container/vault/db").status_code == 200


def test_readers_see_no_delete_buttons(app_image: dict[str, str], client: FlaskClient) -> None:
    anonymous = text(client.get(PAGE))
    assert "/-/delete" not in anonymous
    sign_in(client, "bob")
    assert "/-/delete" not in text(client.get(PAGE))
    owner = client.application.test_client()
    sign_in(owner, "alice")
    page = text(owner.get(PAGE))
    assert "/alice/-/packages/container/app/-/delete?tag=v1" in page
    assert "Delete version" in page


def test_the_image_is_linked_to_its_repository(
    app_image: dict[str, str], app: Flask, client: FlaskClient
) -> None:
    client.get(PAGE)
    with app.app_context():
        linked = get_state(app).db.session.scalar(select(Package.repository_id))
    assert linked == app_image["repository"]


def test_an_external_source_stays_an_external_link(
    forge: Forge, images: Images, client: FlaskClient
) -> None:
    forge.user("alice")
    images.push(
        "alice",
        "app",
        "v1",
        labels={
            "org.opencontainers.image.source": "https://elsewhere.example/alice/app",
            "org.opencontainers.image.revision": "abc",
        },
    )
    page = text(client.get(PAGE))
    assert (
        '<a href="https://elsewhere.example/alice/app" rel="nofollow noopener noreferrer">'
        "https://elsewhere.example/alice/app</a>" in page
    )
    assert '<code class="fc-break">abc</code>' in page
    assert "/commit/" not in page
