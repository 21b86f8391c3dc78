"""What the UI learns from configs and manifests: platforms, labels, history, sizes."""

from __future__ import annotations

import json

from forge_container.mediatypes import DOCKER_CONFIG, OCI_CONFIG, OCI_EMPTY, OCI_MANIFEST
from forge_container.registry.metadata import (
    ANNOTATIONS_LIMIT,
    CONFIG_READ_LIMIT,
    HELM_CONFIG,
    IndexChild,
    Layer,
    config_metadata,
    image_metadata,
    index_metadata,
    platform_string,
)
from forge_container_tests.manifest_fixtures import GITEA_CONFIG

LABELS = {
    "org.opencontainers.image.authors": "Gitea",
    "org.opencontainers.image.licenses": "MIT",
    "org.opencontainers.image.url": "https://gitea.com/gitea",
    "org.opencontainers.image.source": "https://gitea.com/gitea/gitea",
    "org.opencontainers.image.documentation": "https://docs.gitea.com",
    "org.opencontainers.image.description": "description",
}


def test_gitea_vector_lower_case_keys_labels_and_nop_history() -> None:
    config = {
        "config": {"labels": LABELS},
        "history": [{"created_by": "do it 1"}, {"created_by": "dummy #(nop) do it 2"}],
        "os": "linux",
        "architecture": "amd64",
    }
    meta = config_metadata(OCI_CONFIG, json.dumps(config).encode())
    assert meta["platform"] == "linux/amd64"
    assert meta["labels"] == LABELS
    assert meta["history"] == ["do it 1", "do it 2"]
    assert meta["authors"] == "Gitea"
    assert meta["licenses"] == "MIT"
    assert meta["url"] == "https://gitea.com/gitea"
    assert meta["source"] == "https://gitea.com/gitea/gitea"
    assert meta["documentation"] == "https://docs.gitea.com"
    assert meta["description"] == "description"


def test_gitea_vector_unknown_media_type_with_an_empty_body() -> None:
    assert config_metadata("anything-unknown", b"") == {"platform": "unknown/unknown"}


def test_gitea_integration_config_gives_platform_and_two_history_steps() -> None:
    meta = config_metadata(DOCKER_CONFIG, GITEA_CONFIG)
    assert meta["platform"] == "linux/amd64"
    assert meta["created"] == "2022-01-01T00:00:00.000000000Z"
    assert meta["history"] == [
        "COPY file:0e7589b0c800daaf6fa460d2677101e4676dd9491980210cb345480e513f3602 in /true",
        'CMD ["/true"]',
    ]


def test_docker_capitalised_labels_and_variant() -> None:
    config = {
        "os": "linux",
        "architecture": "arm",
        "variant": "v7",
        "author": "me",
        "config": {"Labels": {"org.opencontainers.image.revision": "abc123", "n": 1}},
    }
    meta = config_metadata(DOCKER_CONFIG, json.dumps(config).encode())
    assert meta["platform"] == "linux/arm/v7"
    assert meta["author"] == "me"
    assert meta["revision"] == "abc123"
    assert meta["labels"] == {"org.opencontainers.image.revision": "abc123"}


def test_unusable_configs_fall_back_to_an_unknown_platform() -> None:
    unknown = {"platform": "unknown/unknown"}
    assert config_metadata(OCI_EMPTY, b"{}") == unknown
    assert config_metadata(OCI_CONFIG, b"not json") == unknown
    assert config_metadata(OCI_CONFIG, b"[1, 2]") == unknown
    assert config_metadata(OCI_CONFIG, None) == unknown
    assert config_metadata(OCI_CONFIG, b"[" * 100_000) == unknown
    assert config_metadata("application/vnd.example+json", b'{"a": 1}') == unknown
    too_big = json.dumps({"os": "linux", "architecture": "amd64", "x": "y" * CONFIG_READ_LIMIT})
    assert config_metadata(OCI_CONFIG, too_big.encode()) == unknown


def test_a_config_without_platform_fields_is_unknown_unknown() -> None:
    assert config_metadata(OCI_CONFIG, b'{"rootfs": {}}')["platform"] == "unknown/unknown"


def test_an_image_config_under_another_media_type_is_still_read() -> None:
    data = json.dumps({"os": "windows", "architecture": "amd64"}).encode()
    assert config_metadata("application/octet-stream", data)["platform"] == "windows/amd64"


def test_links_are_kept_only_when_they_are_http() -> None:
    labels = {
        "org.opencontainers.image.source": "javascript:alert(1)",
        "org.opencontainers.image.url": "http://example.org",
    }
    config = {"os": "linux", "architecture": "amd64", "config": {"Labels": labels}}
    meta = config_metadata(OCI_CONFIG, json.dumps(config).encode())
    assert "source" not in meta
    assert meta["url"] == "http://example.org"


def test_helm_chart_config() -> None:
    chart = {
        "name": "chart",
        "version": "1.2.3",
        "description": "a chart",
        "home": "https://example.org",
        "sources": ["https://example.org/src"],
        "maintainers": [{"name": "a"}, {"name": "b"}],
    }
    meta = config_metadata(HELM_CONFIG, json.dumps(chart).encode())
    assert meta == {
        "platform": "unknown/unknown",
        "type": "helm",
        "title": "chart",
        "version": "1.2.3",
        "description": "a chart",
        "url": "https://example.org",
        "source": "https://example.org/src",
        "authors": "a, b",
    }


def test_manifest_annotations_override_labels_and_layers_are_listed() -> None:
    config = config_metadata(
        OCI_CONFIG,
        json.dumps(
            {
                "os": "linux",
                "architecture": "amd64",
                "config": {"Labels": {"org.opencontainers.image.description": "from label"}},
            }
        ).encode(),
    )
    meta = image_metadata(
        config,
        annotations={"org.opencontainers.image.description": "from annotation", "k": "v"},
        layers=[Layer("sha256:" + "a" * 64, 10, "tar"), Layer("sha256:" + "b" * 64, 5, "x", False)],
        artifact_type=OCI_CONFIG,
        size=123,
    )
    assert meta["kind"] == "image"
    assert meta["description"] == "from annotation"
    assert meta["annotations"] == {
        "org.opencontainers.image.description": "from annotation",
        "k": "v",
    }
    assert meta["layers"] == [
        {"digest": "sha256:" + "a" * 64, "size": 10, "media_type": "tar"},
        {"digest": "sha256:" + "b" * 64, "size": 5, "media_type": "x", "stored": False},
    ]
    assert meta["size"] == 123
    assert meta["platform"] == "linux/amd64"


def test_large_annotations_keep_only_oci_keys_unless_a_referrer() -> None:
    annotations = {f"k{i}": "v" * 1000 for i in range(ANNOTATIONS_LIMIT // 1000 + 1)}
    annotations["org.opencontainers.image.title"] = "t"
    meta = image_metadata({}, annotations=annotations, layers=[], artifact_type=None, size=0)
    assert meta["annotations"] == {"org.opencontainers.image.title": "t"}
    assert meta["annotations_truncated"] is True
    whole = image_metadata(
        {}, annotations=annotations, layers=[], artifact_type=None, size=0, referrer=True
    )
    assert whole["annotations"] == annotations
    assert "annotations_truncated" not in whole


def test_index_lists_platforms_with_their_sizes() -> None:
    children = [
        IndexChild("sha256:1", OCI_MANIFEST, {"os": "linux", "architecture": "arm64"}, {}, 10, {}),
        IndexChild("sha256:2", OCI_MANIFEST, None, {}, 20, {"platform": "linux/s390x"}),
        IndexChild(
            "sha256:3",
            OCI_MANIFEST,
            {"os": "unknown", "architecture": "unknown"},
            {"vnd.docker.reference.type": "attestation-manifest"},
            30,
            {},
        ),
        IndexChild("sha256:4", OCI_MANIFEST, None, {}, 40, {}),
    ]
    meta = index_metadata(children, annotations={}, artifact_type=None, size=104)
    assert meta["kind"] == "index"
    assert meta["manifests"] == [
        {"digest": "sha256:1", "media_type": OCI_MANIFEST, "platform": "linux/arm64", "size": 10},
        {"digest": "sha256:2", "media_type": OCI_MANIFEST, "platform": "linux/s390x", "size": 20},
        {
            "digest": "sha256:3",
            "media_type": OCI_MANIFEST,
            "platform": "unknown/unknown",
            "size": 30,
            "attestation": True,
        },
        {
            "digest": "sha256:4",
            "media_type": OCI_MANIFEST,
            "platform": "unknown/unknown",
            "size": 40,
        },
    ]
    assert meta["size"] == 104


def test_platform_string() -> None:
    assert platform_string({"os": "linux", "architecture": "arm64", "variant": "v8"}) == (
        "linux/arm64/v8"
    )
    assert platform_string({"os": "linux"}) == "unknown/unknown"
    assert platform_string({"os": 1, "architecture": "x"}) == "unknown/unknown"
