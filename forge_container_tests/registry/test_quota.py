"""The quota service: what usage counts, which limit applies, and what a refusal leaves."""

from __future__ import annotations

import dataclasses
import hashlib
import io
from typing import Any

import pytest

from forge_container.digest import parse_digest
from forge_container.errors import BlobUploadUnknown
from forge_container.mediatypes import OCI_CONFIG, OCI_INDEX, OCI_MANIFEST
from forge_container.registry import blobs, manifests, mounts, quota, uploads
from forge_container.registry.quota import Limits, Override, Quota, QuotaExceeded, Usage
from forge_container.state import RegistryState
from forge_container.storage.paths import blob_path, upload_path
from forge_container_tests.helpers import upload_bytes
from forge_container_tests.manifest_fixtures import (
    LAYER_GZIP,
    config_bytes,
    descriptor,
    image_manifest,
    index_manifest,
    platform,
)

ALICE = uploads.Uploader(owner_id="u:1", owner_name="alice", image="app", principal_id="u:1")
BOB = uploads.Uploader(owner_id="u:2", owner_name="bob", image="app", principal_id="u:2")
CONFIG = config_bytes()
LAYER = b"L" * 1000


def sha(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def push(
    state: RegistryState, who: uploads.Uploader, body: bytes, reference: str = "latest"
) -> manifests.PushedManifest:
    return manifests.put_manifest(
        state.db.session(),
        state.storage,
        state.settings,
        owner_id=who.owner_id,
        owner_name=who.owner_name,
        image=who.image,
        reference=reference,
        body=io.BytesIO(body),
        content_type=None,
        by=who.principal_id,
        is_admin=who.is_admin,
    )


def image(state: RegistryState, who: uploads.Uploader, layer: bytes = LAYER, **extra: Any) -> bytes:
    """Upload a config and ``layer`` into ``who``'s image; a manifest of them."""
    upload_bytes(state, who, CONFIG)
    upload_bytes(state, who, layer)
    return image_manifest(descriptor(CONFIG, OCI_CONFIG), [descriptor(layer, LAYER_GZIP)], **extra)


def usage(state: RegistryState, owner_id: str = "u:1") -> Usage:
    return quota.usage_of(state.db.session(), owner_id)


def limit(state: RegistryState, owner_id: str, kind: Quota, value: int | None) -> None:
    quota.set_override(state.db.session(), owner_id, {kind: value})


# --- sizes ------------------------------------------------------------------------------


# --- usage ------------------------------------------------------------------------------


def test_usage_counts_each_distinct_blob_once_and_every_manifest(state: RegistryState) -> None:
    assert usage(state) == Usage(total_size=0, versions=0)
    first = image(state, ALICE)
    push(state, ALICE, first, "v1")
    assert usage(state) == Usage(len(CONFIG) + len(LAYER) + len(first), versions=1)
    # The same layer in a second image, and a second manifest on it: only the manifest adds.
    elsewhere = dataclasses.replace(ALICE, image="other")
    other = image(state, elsewhere)
    second = image_manifest(
        descriptor(CONFIG, OCI_CONFIG), [descriptor(LAYER, LAYER_GZIP)], annotations={"a": "b"}
    )
    push(state, elsewhere, other, "v1")
    push(state, ALICE, second, "v2")
    assert usage(state) == Usage(len(CONFIG) + len(LAYER) + len(first) + len(second), versions=3)


def test_a_blob_of_another_owner_counts_for_both(state: RegistryState) -> None:
    upload_bytes(state, ALICE, LAYER)
    upload_bytes(state, BOB, LAYER)
    assert usage(state, "u:1").total_size == usage(state, "u:2").total_size == len(LAYER)


def test_a_blob_still_referenced_by_a_version_counts_after_it_is_unlinked(
    state: RegistryState,
) -> None:
    push(state, ALICE, image(state, ALICE), "v1")
    before = usage(state)
    blobs.unlink_blob(state.db.session(), "u:1", "app", sha(LAYER))
    assert usage(state) == before


def test_unfinished_uploads_count_nothing(state: RegistryState) -> None:
    session = uploads.start_upload(state.db.session(), ALICE)
    uploads.append_chunk(
        state.db.session(),
        state.storage,
        state.settings,
        ALICE,
        session.id,
        io.BytesIO(LAYER),
        content_length=len(LAYER),
        content_range=None,
    )
    assert usage(state) == Usage(0, 0)


def test_owners_are_listed_by_name(state: RegistryState) -> None:
    upload_bytes(state, BOB, b"b")
    upload_bytes(state, uploads.Uploader("o:1", "Acme", "app", "u:1"), b"a")
    upload_bytes(state, ALICE, b"c")
    assert quota.owners(state.db.session()) == [("o:1", "Acme"), ("u:1", "alice"), ("u:2", "bob")]


# --- limits -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "app_config",
    [
        {
            "CONTAINER_REGISTRY_QUOTA_TOTAL_SIZE": 1000,
            "CONTAINER_REGISTRY_QUOTA_VERSIONS": 10,
            "CONTAINER_REGISTRY_QUOTA_BLOB_SIZE": 100,
        }
    ],
)
def test_overrides_replace_the_settings_one_limit_at_a_time(state: RegistryState) -> None:
    session = state.db.session()
    assert quota.limits_for(session, state.settings, "u:1") == Limits(1000, 10, 100)
    override = quota.set_override(session, "u:1", {Quota.TOTAL_SIZE: 0, Quota.VERSIONS: 3})
    assert override == Override(total_size=0, versions=3, blob_size=None)
    assert quota.limits_for(session, state.settings, "u:1") == Limits(0, 3, 100)
    quota.set_override(session, "u:1", {Quota.VERSIONS: None, Quota.BLOB_SIZE: 7})
    assert quota.get_override(session, "u:1") == Override(0, None, 7)
    assert quota.limits_for(session, state.settings, "u:1") == Limits(0, 10, 7)
    assert quota.limits_for(session, state.settings, "u:2") == Limits(1000, 10, 100)
    assert quota.reset_override(session, "u:1")
    assert not quota.reset_override(session, "u:1")
    assert quota.get_override(session, "u:1") == Override()


def test_a_negative_limit_is_refused(state: RegistryState) -> None:
    with pytest.raises(ValueError, match="cannot be negative"):
        quota.set_override(state.db.session(), "u:1", {Quota.VERSIONS: -1})
    assert quota.get_override(state.db.session(), "u:1") == Override()


@pytest.mark.parametrize("app_config", [{"CONTAINER_REGISTRY_QUOTA_BLOB_SIZE": 10}])
def test_the_settings_apply_to_owners_without_overrides(state: RegistryState) -> None:
    with pytest.raises(QuotaExceeded, match="a blob of 1000 B exceeds the limit of 10 B"):
        upload_bytes(state, ALICE, LAYER)
    limit(state, "u:1", Quota.BLOB_SIZE, 0)  # unlimited for alice
    upload_bytes(state, ALICE, LAYER)
    with pytest.raises(QuotaExceeded):
        upload_bytes(state, BOB, LAYER)


# --- what a check lets through, and what a refusal leaves ----------------------------------


def test_a_push_that_adds_nothing_passes_over_the_limits(state: RegistryState) -> None:
    body = image(state, ALICE)
    push(state, ALICE, body, "v1")
    limit(state, "u:1", Quota.TOTAL_SIZE, 1)
    limit(state, "u:1", Quota.VERSIONS, 1)
    assert upload_bytes(state, ALICE, LAYER).size == len(LAYER)  # already held
    assert push(state, ALICE, body, "again").tags == ()  # re-tags the same version
    with pytest.raises(QuotaExceeded, match="2 versions would exceed the limit of 1"):
        push(state, ALICE, image_manifest(descriptor(CONFIG, OCI_CONFIG), []))


def test_an_index_is_one_more_version(state: RegistryState) -> None:
    child = push(state, ALICE, image(state, ALICE))
    limit(state, "u:1", Quota.VERSIONS, 1)
    index = index_manifest(
        [
            {
                "mediaType": OCI_MANIFEST,
                "digest": child.digest,
                "size": child.size,
                "platform": platform("linux", "amd64"),
            }
        ],
        media_type=OCI_INDEX,
    )
    with pytest.raises(QuotaExceeded, match="2 versions would exceed the limit of 1 versions"):
        push(state, ALICE, index, "multi")
    limit(state, "u:1", Quota.VERSIONS, 2)
    push(state, ALICE, index, "multi")
    assert usage(state).versions == 2


def test_a_refused_chunked_upload_drops_its_session_and_bytes(state: RegistryState) -> None:
    limit(state, "u:1", Quota.BLOB_SIZE, 999)
    session = uploads.start_upload(state.db.session(), ALICE)
    with pytest.raises(QuotaExceeded):
        uploads.finish_upload(
            state.db.session(),
            state.storage,
            state.settings,
            ALICE,
            session.id,
            sha(LAYER),
            io.BytesIO(LAYER),
            content_length=len(LAYER),
        )
    with pytest.raises(BlobUploadUnknown):
        uploads.upload_status(state.db.session(), state.storage, ALICE, session.id)
    assert not state.storage.exists(upload_path(session.id))
    assert not state.storage.exists(blob_path(parse_digest(sha(LAYER))))


def test_a_refused_upload_leaves_the_copy_another_owner_stored(state: RegistryState) -> None:
    upload_bytes(state, BOB, LAYER)
    limit(state, "u:1", Quota.TOTAL_SIZE, 10)
    with pytest.raises(QuotaExceeded):
        upload_bytes(state, ALICE, LAYER)
    assert blobs.find_linked(state.db.session(), "u:1", "app", sha(LAYER)) is None
    body = blobs.read_blob(state.db.session(), state.storage, "u:2", "app", sha(LAYER))
    assert body.stream is not None
    with body.stream:
        assert body.stream.read() == LAYER
    assert list(state.storage.list("uploads")) == []


def test_a_refused_mount_links_nothing(state: RegistryState) -> None:
    upload_bytes(state, BOB, LAYER)
    limit(state, "u:1", Quota.TOTAL_SIZE, len(LAYER) - 1)
    with pytest.raises(QuotaExceeded, match="total size 1000 B would exceed the limit of 999 B"):
        mounts.mount_blob(
            state.db.session(),
            state.storage,
            state.settings,
            ALICE,
            sha(LAYER),
            source=("u:2", "app"),
            may_read=lambda candidate: True,
        )
    assert blobs.find_linked(state.db.session(), "u:1", "app", sha(LAYER)) is None


@pytest.mark.parametrize(
    "app_config",
    [
        {"CONTAINER_REGISTRY_QUOTA_EXEMPT_ADMINS": True},
        {"CONTAINER_REGISTRY_QUOTA_EXEMPT_ADMINS": False},
    ],
    ids=["exempt", "not-exempt"],
)
def test_an_admins_push_is_exempt_only_when_configured(
    state: RegistryState, app_config: dict[str, Any]
) -> None:
    limit(state, "u:1", Quota.BLOB_SIZE, 1)
    admin = dataclasses.replace(ALICE, principal_id="u:9", is_admin=True)
    if app_config["CONTAINER_REGISTRY_QUOTA_EXEMPT_ADMINS"]:
        upload_bytes(state, admin, LAYER)
        push(state, admin, image(state, admin))
    else:
        with pytest.raises(QuotaExceeded):
            upload_bytes(state, admin, LAYER)
    with pytest.raises(QuotaExceeded):
        upload_bytes(state, ALICE, b"not an admin")
