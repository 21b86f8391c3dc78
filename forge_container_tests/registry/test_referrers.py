"""The referrers service: descriptors of the versions whose subject is a digest."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.orm import Session

from forge_container.digest import digest_of
from forge_container.errors import DigestInvalid, PaginationNumberInvalid
from forge_container.mediatypes import OCI_INDEX, OCI_MANIFEST
from forge_container.models import Package, PackageBlob, PackageFile, PackageVersion
from forge_container.names import ImageName
from forge_container.registry import referrers
from forge_container.registry.referrers import Referrer, ReferrersPage

OWNER = "o:1"
NAME = ImageName("acme", "app")
SUBJECT = digest_of(b"the subject manifest")
SIGNATURE = "application/vnd.dev.cosign.signature"
SBOM = "application/spdx+json"


@pytest.fixture
def package(session: Session) -> Package:
    package = Package(owner_id=OWNER, owner_name="ACME", name=NAME.image)
    session.add(package)
    session.commit()
    return package


def push(
    session: Session,
    package: Package,
    body: bytes,
    *,
    subject: str | None = str(SUBJECT),
    artifact_type: str | None = SIGNATURE,
    media_type: str = OCI_MANIFEST,
    metadata: dict[str, Any] | None = None,
    with_file: bool = True,
) -> str:
    """A version as the manifests service writes it: its manifest is a blob and a file."""
    digest = str(digest_of(body))
    version = PackageVersion(
        package_id=package.id,
        digest=digest,
        media_type=media_type,
        artifact_type=artifact_type,
        subject_digest=subject,
        metadata_json=metadata or {},
    )
    session.add(version)
    if with_file:
        blob = PackageBlob(digest=digest, size=len(body))
        session.add(blob)
        session.flush()
        session.add(PackageFile(version_id=version.id, blob_id=blob.id, role="manifest"))
    session.commit()
    return digest


def test_descriptors_of_the_referrers_in_digest_order(session: Session, package: Package) -> None:
    bodies = [f"referrer {i}".encode() for i in range(4)]
    digests = [
        push(session, package, body, metadata={"annotations": {"n": str(i)}})
        for i, body in enumerate(bodies)
    ]
    push(session, package, b"unrelated", subject=None)
    push(session, package, b"other subject", subject=str(digest_of(b"x")))
    page = referrers.list_referrers(session, OWNER, NAME, SUBJECT)
    assert page.more is False
    expected = sorted(
        (
            Referrer(
                media_type=OCI_MANIFEST,
                digest=digest,
                size=len(body),
                artifact_type=SIGNATURE,
                annotations={"n": str(i)},
            )
            for i, (digest, body) in enumerate(zip(digests, bodies, strict=True))
        ),
        key=lambda r: r.digest,
    )
    assert page.referrers == expected


def test_filter_by_artifact_type(session: Session, package: Package) -> None:
    signature = push(session, package, b"sig")
    sbom = push(session, package, b"sbom", artifact_type=SBOM)
    push(session, package, b"index", artifact_type=None, media_type=OCI_INDEX)

    def listed(*types: str) -> list[str]:
        page = referrers.list_referrers(session, OWNER, NAME, SUBJECT, artifact_types=types)
        return [r.digest for r in page.referrers]

    assert listed(SBOM) == [sbom]
    assert listed(SIGNATURE) == [signature]
    assert sorted(listed(SBOM, SIGNATURE)) == sorted([sbom, signature])
    assert listed("application/unknown") == []
    assert listed("application/\0") == []
    assert listed("application/\0", SBOM) == [sbom]
    assert len(listed()) == 3


def test_an_index_without_artifact_type_has_none(session: Session, package: Package) -> None:
    push(session, package, b"index", artifact_type=None, media_type=OCI_INDEX)
    (referrer,) = referrers.list_referrers(session, OWNER, NAME, SUBJECT).referrers
    assert (referrer.media_type, referrer.artifact_type) == (OCI_INDEX, None)


def test_pages_by_digest(session: Session, package: Package) -> None:
    digests = sorted(push(session, package, f"r{i}".encode()) for i in range(5))
    seen: list[str] = []
    last = None
    while True:
        page = referrers.list_referrers(session, OWNER, NAME, SUBJECT, n=2, last=last)
        seen += [r.digest for r in page.referrers]
        assert len(page.referrers) <= 2
        if not page.more:
            break
        last = page.referrers[-1].digest
    assert seen == digests


def test_nothing_refers_to_an_unknown_subject(session: Session, package: Package) -> None:
    push(session, package, b"sig")
    unknown = digest_of(b"never pushed")
    assert referrers.list_referrers(session, OWNER, NAME, unknown) == ReferrersPage([], False)


def test_an_image_nobody_pushed_has_no_referrers(session: Session) -> None:
    page = referrers.list_referrers(session, OWNER, ImageName("acme", "nothing"), SUBJECT)
    assert page == ReferrersPage([], False)


def test_referrers_of_other_images_are_not_listed(session: Session, package: Package) -> None:
    other = Package(owner_id=OWNER, owner_name="ACME", name="other")
    session.add(other)
    session.commit()
    push(session, other, b"sig of the same subject elsewhere")
    assert referrers.list_referrers(session, OWNER, NAME, SUBJECT).referrers == []


def test_a_version_without_its_manifest_file_is_left_out(
    session: Session, package: Package
) -> None:
    push(session, package, b"half written", with_file=False)
    assert referrers.list_referrers(session, OWNER, NAME, SUBJECT).referrers == []


def test_only_string_annotations_are_kept(session: Session, package: Package) -> None:
    push(session, package, b"a", metadata={"annotations": {"ok": "yes", "bad": 1}})
    push(session, package, b"b", metadata={"annotations": ["not", "a", "map"]})
    found = referrers.list_referrers(session, OWNER, NAME, SUBJECT).referrers
    assert sorted(r.annotations.get("ok", "") for r in found) == ["", "yes"]
    assert all("bad" not in r.annotations for r in found)


@pytest.mark.parametrize(
    "value", ["sha256:abc", "md5:" + "0" * 32, "sha256:" + "A" * 64, "nodigest", ""]
)
def test_parse_subject_refuses_bad_digests(value: str) -> None:
    with pytest.raises(DigestInvalid):
        referrers.parse_subject(value)


def test_a_bad_last_is_a_bad_digest(session: Session, package: Package) -> None:
    with pytest.raises(DigestInvalid):
        referrers.list_referrers(session, OWNER, NAME, SUBJECT, last="sha256:\0")


def test_parse_page_size() -> None:
    assert referrers.parse_page_size(None) == referrers.MAX_PAGE
    assert referrers.parse_page_size("7") == 7
    assert referrers.parse_page_size("999999") == referrers.MAX_PAGE
    with pytest.raises(PaginationNumberInvalid):
        referrers.parse_page_size("-3")
