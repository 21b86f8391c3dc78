"""Resumable hashes: a state saved in one process continues in another, or is refused."""

from __future__ import annotations

import ctypes.util
import hashlib

import pytest

from forge_container.digest import InvalidDigest
from forge_container.registry import hashing
from forge_container.registry.hashing import ResumableHash, state_format


@pytest.mark.parametrize("algorithm", ["sha256", "sha512"])
def test_a_saved_state_continues_where_it_stopped(algorithm: str) -> None:
    first = ResumableHash(algorithm)
    first.update(b"hello ")
    state = first.state()
    resumed = ResumableHash.restore(algorithm, state, state_format(algorithm))
    assert resumed is not None
    resumed.update(b"world")
    assert (
        str(resumed.digest()) == f"{algorithm}:{hashlib.new(algorithm, b'hello world').hexdigest()}"
    )


def test_the_digest_can_be_taken_midway() -> None:
    running = ResumableHash("sha256")
    running.update(b"ab")
    assert running.digest().hex == hashlib.sha256(b"ab").hexdigest()
    running.update(b"c")
    assert running.digest().hex == hashlib.sha256(b"abc").hexdigest()


def test_the_format_names_library_version_and_algorithm() -> None:
    assert ResumableHash("sha512").format == state_format("sha512")
    assert state_format("sha256").startswith(("openssl-", "rehashes-"))
    assert state_format("sha256").endswith(":sha256")


@pytest.mark.parametrize(
    ("state", "fmt"),
    [
        (None, state_format("sha256")),
        (ResumableHash("sha256").state(), None),
        (ResumableHash("sha256").state(), "rehashes-0.0.1:sha256"),
        (ResumableHash("sha256").state(), state_format("sha512")),
        (b"garbage", state_format("sha256")),
        (ResumableHash("sha512").state(), state_format("sha256")),
    ],
)
def test_a_missing_or_foreign_state_is_refused(state: bytes | None, fmt: str | None) -> None:
    assert ResumableHash.restore("sha256", state, fmt) is None


def test_an_unknown_algorithm() -> None:
    with pytest.raises(InvalidDigest):
        ResumableHash("md5")
    assert ResumableHash.restore("md5", b"x", "rehashes-0.3.0:md5") is None


@pytest.mark.parametrize("algorithm", ["sha256", "sha512"])
def test_a_state_saved_mid_block_continues_over_many_pieces(algorithm: str) -> None:
    data = bytes(range(256)) * 4099  # not a multiple of any block size
    running = ResumableHash(algorithm)
    for start in range(0, len(data), 77_777):
        running.update(data[start : start + 77_777])
        restored = ResumableHash.restore(algorithm, running.state(), state_format(algorithm))
        assert restored is not None
        running = restored
    assert running.digest().hex == hashlib.new(algorithm, data).hexdigest()


def test_without_libcrypto_rehashes_takes_over(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: None)
    prefix, classes = hashing._implementation()
    assert prefix.startswith("rehashes-")
    hasher = classes["sha256"]()
    hasher.update(b"abc")
    resumed = classes["sha256"].deserialize(hasher.serialize())
    resumed.update(b"def")
    assert resumed.finalize() == hashlib.sha256(b"abcdef").hexdigest()
