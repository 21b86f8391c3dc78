"""The catalog service: byte order, pages, filtering after the query, the scan bound."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from forge_container.errors import NameInvalid, PaginationNumberInvalid
from forge_container.mediatypes import OCI_MANIFEST
from forge_container.models import Package, PackageVersion
from forge_container.names import ImageName
from forge_container.registry import catalog


def seed(session: Session, *names: str, versions: int = 1, owner_id: str | None = None) -> None:
    """Images ``<owner>/<image>`` (the owner as the forge spells it), each with versions."""
    for full in names:
        owner, _, image = full.partition("/")
        package = Package(owner_id=owner_id or f"id:{owner.lower()}", owner_name=owner, name=image)
        session.add(package)
        for number in range(versions):
            session.add(
                PackageVersion(
                    package=package, digest=f"sha256:{number:064x}", media_type=OCI_MANIFEST
                )
            )
    session.commit()


def everyone(name: ImageName, owner_id: str) -> bool:
    return True


def test_full_names_in_byte_order(session: Session) -> None:
    seed(session, "acme/tool/cli", "acme/tool-x", "a_b/x", "ACME/tool", "a-b/x", "ab/x", "a/x")
    page = catalog.list_repositories(session, everyone, n=100)
    assert page.repositories == [
        "a-b/x",
        "a/x",
        "a_b/x",
        "ab/x",
        "acme/tool",
        "acme/tool-x",
        "acme/tool/cli",
    ]
    assert page.more is False


def test_pages_follow_last(session: Session) -> None:
    seed(session, "o/a", "o/b", "o/c", "o/d", "o/e")
    first = catalog.list_repositories(session, everyone, n=2)
    assert (first.repositories, first.more, first.resume_after) == (["o/a", "o/b"], True, None)
    second = catalog.list_repositories(session, everyone, n=2, last="o/b")
    assert second.repositories == ["o/c", "o/d"] and second.more
    third = catalog.list_repositories(session, everyone, n=2, last="o/d")
    assert (third.repositories, third.more) == (["o/e"], False)
    # A page that ends exactly at the end of the list has no next page.
    assert catalog.list_repositories(session, everyone, n=3, last="o/b").more is False


def test_last_need_not_be_an_image(session: Session) -> None:
    seed(session, "o/a", "o/c")
    assert catalog.list_repositories(session, everyone, n=10, last="o/b").repositories == ["o/c"]
    assert catalog.list_repositories(session, everyone, n=10, last="p").repositories == []


def test_n_zero_is_an_empty_page(session: Session) -> None:
    seed(session, "o/a")
    assert catalog.list_repositories(session, everyone, n=0) == catalog.CatalogPage([], False)


def test_images_without_manifests_are_not_listed(session: Session) -> None:
    seed(session, "o/pushed")
    seed(session, "o/only-blobs", versions=0)
    assert catalog.list_repositories(session, everyone, n=10).repositories == ["o/pushed"]


def test_the_filter_sees_names_and_owner_ids(session: Session) -> None:
    seed(session, "Pub/a", "pub/b")
    seed(session, "stale/c", owner_id="gone")
    seen: list[tuple[str, str]] = []

    def record(name: ImageName, owner_id: str) -> bool:
        seen.append((str(name), owner_id))
        return owner_id != "gone"

    page = catalog.list_repositories(session, record, n=10)
    assert page.repositories == ["pub/a", "pub/b"]
    assert seen == [("pub/a", "id:pub"), ("pub/b", "id:pub"), ("stale/c", "gone")]


def test_filtered_pages_are_filled_from_later_rows(session: Session) -> None:
    seed(session, *(f"o/{i:03d}" for i in range(40)))

    def every_tenth(name: ImageName, owner_id: str) -> bool:
        return name.image.endswith("0")

    first = catalog.list_repositories(session, every_tenth, n=3)
    assert first.repositories == ["o/000", "o/010", "o/020"] and first.more
    rest = catalog.list_repositories(session, every_tenth, n=3, last="o/020")
    assert rest.repositories == ["o/030"] and not rest.more


def test_the_scan_stops_after_a_bounded_number_of_rows(session: Session) -> None:
    hidden = catalog.MIN_SCAN + 20
    seed(session, *(f"hidden/{i:04d}" for i in range(hidden)))
    seed(session, "public/app")

    def public(name: ImageName, owner_id: str) -> bool:
        return name.owner == "public"

    page = catalog.list_repositories(session, public, n=1)
    assert page.repositories == [] and page.more
    # The cursor is a package id, not the name of an image the caller cannot read.
    assert page.resume_after is not None
    rest = catalog.list_repositories(session, public, n=1, after=page.resume_after)
    assert rest == catalog.CatalogPage(["public/app"], more=False)


def test_a_cursor_to_a_deleted_image_falls_back_to_last(session: Session) -> None:
    seed(session, "o/a", "o/b")
    page = catalog.list_repositories(session, everyone, n=5, last="o/a", after=10_000)
    assert page.repositories == ["o/b"]


def test_parse_page_size() -> None:
    assert catalog.parse_page_size(None, 100) == 100
    assert catalog.parse_page_size("", 100) == 100
    assert catalog.parse_page_size("0", 100) == 0
    assert catalog.parse_page_size("100", 100) == 100
    for bad in ("101", "-1", "1.5", "ten", " 5"):
        with pytest.raises(PaginationNumberInvalid):
            catalog.parse_page_size(bad, 100)


def test_parse_cursor() -> None:
    assert catalog.parse_cursor(None) is None
    assert catalog.parse_cursor("42") == 42
    for bad in ("x", "-1", "9" * 19):
        with pytest.raises(PaginationNumberInvalid):
            catalog.parse_cursor(bad)


@pytest.mark.parametrize("last", ["o/\0", "o/" + "a" * 600])
def test_a_last_no_name_can_have_is_refused(session: Session, last: str) -> None:
    with pytest.raises(NameInvalid):
        catalog.list_repositories(session, everyone, n=1, last=last)
