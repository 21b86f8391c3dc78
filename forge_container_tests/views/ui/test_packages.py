"""An owner's images page: who sees what, search, sort, pagination, sizes and quota."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from jinja2.filters import do_filesizeformat
from sqlalchemy import select, update

from forge_container.models import Package, PackageTag, PackageVersion, utcnow
from forge_container.state import get_state
from forge_container_tests.conftest import Forge
from forge_container_tests.views.ui.conftest import Images, sign_in, text

ROOT = "/alice/-/packages/container"


def listed(page: str) -> list[str]:
    """Image names in the listing, in order."""
    return re.findall(r'class="fc-name" href="[^"]+">([^<]+)</a>', page)


def pushed_days_ago(app: Flask, owner_id: str, image: str, days: int) -> None:
    when = utcnow() - timedelta(days=days)
    with app.app_context():
        session = get_state(app).db.session()
        package_id = session.scalar(
            select(Package.id).where(Package.owner_id == owner_id, Package.name == image)
        )
        session.execute(
            update(PackageVersion)
            .where(PackageVersion.package_id == package_id)
            .values(created_at=when)
        )
        session.execute(
            update(PackageTag).where(PackageTag.package_id == package_id).values(updated_at=when)
        )
        session.commit()


@pytest.fixture
def alice(forge: Forge, images: Images) -> Any:
    """alice's images: three public ones, one under her private repository ``vault``."""
    alice = forge.user("alice")
    forge.user("bob")
    forge.repo("alice", "vault", private=True)
    images.push("alice", "web", "v1", layer=b"w" * 3000, by=alice.id)
    images.push("alice", "api", "v1", layer=b"a" * 1000, by=alice.id)
    images.push("alice", "tools/cli", "1.0", layer=b"c" * 500, by=alice.id)
    images.push("alice", "vault", "secret", layer=b"s" * 100, by=alice.id)
    return alice


def test_anonymous_sees_the_public_images_by_name(alice: Any, client: FlaskClient) -> None:
    response = client.get(ROOT)
    page = text(response)
    assert response.status_code == 200
    assert listed(page) == ["alice/api", "alice/tools/cli", "alice/web"]
    assert "3 images" in page
    assert 'href="/alice/-/packages/container/tools/cli"' in page
    assert "vault" not in page
    assert "Cleanup rules" not in page and "Quota" not in page


def test_the_owner_sees_her_private_images_quota_and_rules_link(
    alice: Any, client: FlaskClient
) -> None:
    sign_in(client, "alice")
    page = text(client.get(ROOT))
    assert listed(page) == ["alice/api", "alice/tools/cli", "alice/vault", "alice/web"]
    assert 'id="fc-quota"' in page and "4 versions" in page
    assert 'href="/alice/-/packages/container/-/settings"' in page


def test_sizes_count_each_blob_once(
    alice: Any, app: Flask, images: Images, client: FlaskClient
) -> None:
    images.push("alice", "web", "v2", arch="arm64", layer=b"w" * 3000)  # the same layer
    with app.app_context():
        sizes = (
            get_state(app)
            .db.session.scalars(
                select(PackageVersion.size).join(Package).where(Package.name == "web")
            )
            .all()
        )
    page = text(client.get(ROOT))
    web = re.search(
        r"alice/web</a></td>\s*<td>(\d+)</td>\s*<td>(\d+)</td>\s*<td[^>]*>([^<]+)<", page
    )
    assert web is not None
    assert web.group(1, 2) == ("2", "2")
    assert web.group(3) == do_filesizeformat(sum(sizes) - 3000, binary=True)
    assert "KiB in total" in page


def test_search_sort_and_pages(alice: Any, app: Flask, forge: Forge, client: FlaskClient) -> None:
    owner = forge.owner("alice").id
    pushed_days_ago(app, owner, "api", 3)
    pushed_days_ago(app, owner, "tools/cli", 1)
    pushed_days_ago(app, owner, "web", 2)
    assert listed(text(client.get(ROOT + "?q=I"))) == ["alice/api", "alice/tools/cli"]
    assert listed(text(client.get(ROOT + "?q=tools/"))) == ["alice/tools/cli"]
    assert "No image matches “zzz”." in text(client.get(ROOT + "?q=zzz"))
    by_push = listed(text(client.get(ROOT + "?sort=pushed")))
    assert by_push == ["alice/tools/cli", "alice/web", "alice/api"]
    assert listed(text(client.get(ROOT + "?sort=bogus"))) == sorted(by_push)


@pytest.mark.parametrize("app_config", [{"CONTAINER_REGISTRY_UI_PAGE_SIZE": 2}])
def test_pagination_keeps_the_search_and_sort(alice: Any, client: FlaskClient) -> None:
    first = text(client.get(ROOT + "?sort=name"))
    assert listed(first) == ["alice/api", "alice/tools/cli"]
    assert "Page 1 of 2" in first
    assert 'href="/alice/-/packages/container?sort=name&amp;page=2" rel="next"' in first
    second = text(client.get(ROOT + "?sort=name&page=2"))
    assert listed(second) == ["alice/web"]
    assert listed(text(client.get(ROOT + "?page=99"))) == ["alice/web"]
    assert listed(text(client.get(ROOT + "?page=-1"))) == ["alice/api", "alice/tools/cli"]


def test_unknown_and_private_owners_are_not_found(
    forge: Forge, images: Images, client: FlaskClient
) -> None:
    forge.user("carol", public=False)
    forge.user("dave")
    images.push("carol", "app", "v1")
    assert client.get("/nobody/-/packages/container").status_code == 404
    assert client.get("/carol/-/packages/container").status_code == 404
    sign_in(client, "dave")
    assert client.get("/carol/-/packages/container").status_code == 404
    assert client.get("/carol/-/packages/container/app").status_code == 404


def test_a_private_orgs_member_sees_its_empty_page(forge: Forge, client: FlaskClient) -> None:
    forge.user("founder")
    forge.user("member")
    forge.user("stranger")
    forge.org("hidden", owner="founder", public=False)
    forge.member("hidden", "member", "read")
    sign_in(client, "stranger")
    assert client.get("/hidden/-/packages/container").status_code == 404
    member = client.application.test_client()
    sign_in(member, "member")
    response = member.get("/hidden/-/packages/container")
    assert response.status_code == 200
    assert "No container images yet." in text(response)
