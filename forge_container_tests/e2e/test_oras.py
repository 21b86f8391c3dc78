"""oras-py (PyPI) pushes and pulls artifacts on a live gunicorn server; referrers list them."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import oras.oci  # type: ignore[import-untyped]
import oras.provider  # type: ignore[import-untyped]
import pytest

from forge_container_tests.e2e.conftest import Server
from forge_container_tests.e2e.layouts import OCI_INDEX, OCI_MANIFEST, seeded_bytes

DATA_TYPE = "application/vnd.example.data.v1"
CONFIG_TYPE = "application/vnd.example.config.v1+json"
SBOM_CONFIG_TYPE = "application/vnd.example.sbom.config.v1+json"
SIGNATURE_TYPE = "application/vnd.example.signature.v1"
EMPTY_TYPE = "application/vnd.oci.empty.v1+json"
MIB = 1024 * 1024
#: The guard drains unauthenticated bodies up to this size before its 401.
DRAIN_LIMIT = 4 * MIB


@pytest.fixture(autouse=True)
def no_docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """oras-py reads ``~/.docker/config.json``: give it an empty home."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("DOCKER_CONFIG", raising=False)


def client(server: Server, backend: str = "token") -> Any:
    """An oras-py registry client with alice's password."""
    registry = oras.provider.Registry(hostname=server.host, insecure=True, auth_backend=backend)
    registry.auth.set_basic_auth("alice", server.site.passwords["alice"])
    return registry


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def bearer(server: Server, image: str, actions: str = "pull,push") -> dict[str, str]:
    return {"Authorization": "Bearer " + server.token("alice", [f"repository:{image}:{actions}"])}


@pytest.mark.parametrize("chunked", [False, True], ids=["monolithic", "chunked"])
def test_an_artifact_round_trips_byte_for_byte(
    live_registry_on: Server, tmp_path: Path, chunked: bool
) -> None:
    live_registry = live_registry_on
    image = f"alice/artifact-{'chunked' if chunked else 'monolithic'}"
    # 1 MiB chunks: on S3 (5 MiB parts) they wait in a tail object until a part is full.
    data = seeded_bytes(41, 6 * MIB + 12345)
    config = b'{"tool": "e2e", "version": 1}'
    files = tmp_path / "push"
    registry = client(live_registry)

    pushed = registry.push(
        f"{live_registry.host}/{image}:v1",
        files=[f"{write(files / 'data.bin', data)}:{DATA_TYPE}"],
        manifest_config=f"{write(files / 'config.json', config)}:{CONFIG_TYPE}",
        disable_path_validation=True,
        do_chunked=chunked,
        chunk_size=MIB,
    )
    assert pushed.status_code == 201
    digest = pushed.headers["Docker-Content-Digest"]

    manifest = registry.get_manifest(f"{live_registry.host}/{image}:v1")
    assert manifest["config"] == {
        "mediaType": CONFIG_TYPE,
        "digest": sha256(config),
        "size": len(config),
    }
    (layer,) = manifest["layers"]
    assert (layer["mediaType"], layer["digest"], layer["size"]) == (
        DATA_TYPE,
        sha256(data),
        len(data),
    )
    raw = live_registry.request(
        "GET", f"/v2/{image}/manifests/v1", headers={"Accept": OCI_MANIFEST}
    )
    assert raw.status == 200
    assert sha256(raw.body) == digest
    assert raw.headers["docker-content-digest"] == digest

    out = tmp_path / "pull"
    pulled = registry.pull(f"{live_registry.host}/{image}:v1", outdir=str(out))
    assert pulled == [str(out / "data.bin")]
    assert (out / "data.bin").read_bytes() == data
    blob = live_registry.request("GET", f"/v2/{image}/blobs/{sha256(config)}")
    assert blob.body == config


def test_artifacts_with_a_subject_are_listed_as_its_referrers(
    live_registry: Server, tmp_path: Path
) -> None:
    image = "alice/signed"
    registry = client(live_registry)
    host = live_registry.host
    base = registry.push(
        f"{host}/{image}:v1",
        files=[f"{write(tmp_path / 'app.bin', seeded_bytes(42, 5000))}:{DATA_TYPE}"],
        disable_path_validation=True,
    )
    assert base.status_code == 201
    head = live_registry.request("HEAD", f"/v2/{image}/manifests/v1")
    subject = oras.oci.Subject(
        mediaType=OCI_MANIFEST,
        digest=head.headers["docker-content-digest"],
        size=int(head.headers["content-length"]),
    )

    # oras-py sets the subject; the artifact type falls back to the config's media type.
    sbom_file = write(tmp_path / "sbom.json", b'{"packages": []}')
    sbom_config = write(tmp_path / "sbom-config.json", b"{}")
    sbom = registry.push(
        f"{host}/{image}:sbom",
        files=[f"{sbom_file}:application/spdx+json"],
        manifest_config=f"{sbom_config}:{SBOM_CONFIG_TYPE}",
        subject=subject,
        disable_path_validation=True,
    )
    assert sbom.status_code == 201
    assert sbom.headers["OCI-Subject"] == subject.digest

    # oras-py cannot set artifactType: build that manifest here, its blobs pushed by oras-py.
    signature = seeded_bytes(43, 512)
    container = registry.get_container(f"{host}/{image}:unused")
    for path, media_type in [
        (write(tmp_path / "sig.bin", signature), SIGNATURE_TYPE),
        (write(tmp_path / "empty.json", b"{}"), EMPTY_TYPE),
    ]:
        uploaded = registry.upload_blob(
            str(path), container, oras.oci.NewLayer(str(path), media_type)
        )
        assert uploaded.status_code in (200, 201)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": SIGNATURE_TYPE,
        "config": {"mediaType": EMPTY_TYPE, "digest": sha256(b"{}"), "size": 2},
        "layers": [
            {"mediaType": SIGNATURE_TYPE, "digest": sha256(signature), "size": len(signature)}
        ],
        "subject": {"mediaType": subject.mediaType, "digest": subject.digest, "size": subject.size},
        "annotations": {"org.opencontainers.image.created": "2024-01-02T03:04:05Z"},
    }
    body = json.dumps(manifest).encode()
    put = live_registry.request(
        "PUT",
        f"/v2/{image}/manifests/{sha256(body)}",
        headers={**bearer(live_registry, image), "Content-Type": OCI_MANIFEST},
        body=body,
    )
    assert put.status == 201, put
    assert put.headers["oci-subject"] == subject.digest

    listed = live_registry.request("GET", f"/v2/{image}/referrers/{subject.digest}")
    assert listed.status == 200, listed
    assert listed.headers["content-type"].startswith(OCI_INDEX)
    index = listed.json()
    assert index["mediaType"] == OCI_INDEX
    referrers = {entry["digest"]: entry for entry in index["manifests"]}
    assert set(referrers) == {sbom.headers["Docker-Content-Digest"], sha256(body)}
    assert referrers[sha256(body)] == {
        "mediaType": OCI_MANIFEST,
        "digest": sha256(body),
        "size": len(body),
        "artifactType": SIGNATURE_TYPE,
        "annotations": manifest["annotations"],
    }
    assert referrers[sbom.headers["Docker-Content-Digest"]]["artifactType"] == SBOM_CONFIG_TYPE

    filtered = live_registry.request(
        "GET", f"/v2/{image}/referrers/{subject.digest}?artifactType={SIGNATURE_TYPE}"
    )
    assert filtered.status == 200
    assert filtered.headers["oci-filters-applied"] == "artifactType"
    assert [entry["digest"] for entry in filtered.json()["manifests"]] == [sha256(body)]

    unknown = live_registry.request("GET", f"/v2/{image}/referrers/{sha256(b'nothing')}")
    assert unknown.status == 200
    assert unknown.json()["manifests"] == []

    fetched = registry.get_manifest(f"{host}/{image}@{sha256(body)}")
    assert fetched == manifest


def test_bodies_sent_without_credentials_first_keep_the_connection(
    live_registry: Server, tmp_path: Path
) -> None:
    """oras-py's basic backend sends every request, body and all, anonymously first."""
    image = "alice/private/oras"
    registry = client(live_registry, backend="basic")
    data = seeded_bytes(44, DRAIN_LIMIT)
    offset = live_registry.log_size()

    pushed = registry.push(
        f"{live_registry.host}/{image}:v1",
        files=[f"{write(tmp_path / 'data.bin', data)}:{DATA_TYPE}"],
        disable_path_validation=True,
    )
    assert pushed.status_code == 201
    pools = registry.session.get_adapter(live_registry.url).poolmanager.pools
    (pool,) = [pools[key] for key in pools.keys()]  # noqa: SIM118 (it cannot iterate)
    assert pool.num_connections == 1
    assert pool.num_requests >= 10

    log = live_registry.log_until(offset, f'"PUT /v2/{image}/manifests/v1 HTTP/1.1" ')
    put = re.escape(f'"PUT /v2/{image}/blobs/uploads/')
    assert re.search(put + r'[^"]*" 401 .*\n.*' + put + r'[^"]*" 201 ', log), log

    out = tmp_path / "pull"
    registry.pull(f"{live_registry.host}/{image}:v1", outdir=str(out))
    assert (out / "data.bin").read_bytes() == data
