"""What the pages call a referrer's artifact type, and how a version's platforms read."""

from __future__ import annotations

import pytest

from forge_container.registry.browse import page_bounds
from forge_container.registry.version_detail import Platform, artifact_kind, platforms


@pytest.mark.parametrize(
    ("artifact_type", "kind"),
    [
        ("application/vnd.dev.cosign.artifact.sig.v1+json", "signature"),
        ("application/vnd.cncf.notary.signature", "signature"),
        ("application/spdx+json", "SBOM"),
        ("application/vnd.cyclonedx+json", "SBOM"),
        ("application/vnd.example.sbom.v1+json", "SBOM"),
        ("application/vnd.in-toto+json", "attestation"),
        ("application/vnd.dev.sigstore.bundle.v0.3+json", "sigstore bundle"),
        ("application/vnd.example.thing", "artifact"),
        (None, "artifact"),
    ],
)
def test_artifact_kinds(artifact_type: str | None, kind: str) -> None:
    assert artifact_kind(artifact_type) == kind


def test_an_index_lists_its_children_and_an_image_itself() -> None:
    index = {
        "kind": "index",
        "manifests": [
            {"digest": "sha256:a", "platform": "linux/amd64", "size": 10},
            {"digest": "sha256:b", "platform": "unknown/unknown", "size": 2, "attestation": True},
            "not an entry",
        ],
    }
    assert platforms(index) == (
        Platform("linux/amd64", "sha256:a", 10),
        Platform("unknown/unknown", "sha256:b", 2, attestation=True),
    )
    assert platforms({"platform": "linux/arm64/v8", "size": 7}) == (
        Platform("linux/arm64/v8", "", 7),
    )
    assert platforms(None) == (Platform("unknown/unknown", "", 0),)


@pytest.mark.parametrize(
    ("total", "page", "expected"),
    [(0, 1, (1, 1, 0)), (5, 2, (2, 3, 2)), (5, 9, (3, 3, 4)), (5, 0, (1, 3, 0))],
)
def test_pages_are_clamped(total: int, page: int, expected: tuple[int, int, int]) -> None:
    assert page_bounds(total, page, 2) == expected
