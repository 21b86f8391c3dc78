"""Cross-repository mounts: which images are asked, in which order, and what gets linked."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from forge_container.registry import blobs, mounts
from forge_container.registry.uploader import Uploader
from forge_container.state import RegistryState
from forge_container_tests.helpers import upload_bytes

ALICE = Uploader(owner_id="u:1", owner_name="alice", image="app", principal_id="u:1")


def sha(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def linked(state: RegistryState, digest: str) -> bool:
    return blobs.find_linked(state.db.session(), "u:1", "app", digest) is not None


def seed_images(state: RegistryState, data: bytes, *owners: tuple[str, str]) -> str:
    """``data`` uploaded into each ``(owner id, image)``; its digest."""
    for owner_id, image in owners:
        upload_bytes(state, Uploader(owner_id, owner_id.upper(), image, owner_id), data)
    return sha(data)


def mount(
    state: RegistryState,
    digest: str,
    may_read: Callable[[mounts.MountCandidate], bool],
    source: tuple[str, str] | None = None,
) -> blobs.BlobInfo | None:
    """Mount ``digest`` into Alice's ``app``."""
    return mounts.mount_blob(
        state.db.session(),
        state.storage,
        state.settings,
        ALICE,
        digest,
        source=source,
        may_read=may_read,
    )


class Asked:
    """A ``may_read`` that records the candidates and answers ``answer``."""

    def __init__(self, answer: bool) -> None:
        self.answer = answer
        self.candidates: list[mounts.MountCandidate] = []

    def __call__(self, candidate: mounts.MountCandidate) -> bool:
        self.candidates.append(candidate)
        return self.answer


def test_mount_asks_about_candidates_the_callers_own_first(state: RegistryState) -> None:
    digest = seed_images(state, b"layer", ("o:2", "x"), ("u:1", "old"), ("o:3", "y"))
    nobody = Asked(False)
    assert mount(state, digest, nobody) is None
    assert not linked(state, digest)
    assert nobody.candidates[0] == mounts.MountCandidate("u:1", "U:1", "old")
    assert {c.owner_id for c in nobody.candidates[1:]} == {"o:2", "o:3"}


def test_mount_links_the_first_readable_candidate(state: RegistryState) -> None:
    digest = seed_images(state, b"layer", ("o:2", "x"), ("o:3", "y"))
    result = mount(state, digest, lambda c: c.owner_id == "o:3")
    assert result == blobs.BlobInfo(digest, 5)
    assert linked(state, digest)


def test_mount_from_a_source_looks_only_there(state: RegistryState) -> None:
    digest = seed_images(state, b"layer", ("o:2", "x"))
    anyone = Asked(True)
    for source in (("o:2", "other"), ("o:9", "x")):
        assert mount(state, digest, anyone, source) is None
    assert anyone.candidates == []
    assert mount(state, digest, anyone, ("o:2", "x")) is not None


def test_mount_searches_a_bounded_number_of_images(state: RegistryState) -> None:
    owners = [(f"o:{i}", "img") for i in range(mounts.MOUNT_CANDIDATES + 5)]
    digest = seed_images(state, b"popular", *owners)
    nobody = Asked(False)
    mount(state, digest, nobody)
    assert len(nobody.candidates) == mounts.MOUNT_CANDIDATES


def test_a_blob_whose_bytes_are_gone_is_not_mounted(state: RegistryState) -> None:
    digest = seed_images(state, b"layer", ("o:2", "x"))
    for path in list(state.storage.list("blobs")):
        state.storage.delete(path)
    assert mount(state, digest, lambda c: True) is None
