from __future__ import annotations

import hashlib

import pytest

from forge_container.digest import (
    Digest,
    InvalidDigest,
    digest_of,
    hasher_digest,
    new_hasher,
    parse_digest,
)

SHA256_EMPTY = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
SHA512_ABC = hashlib.sha512(b"abc").hexdigest()


@pytest.mark.parametrize(
    ("value", "algorithm", "hex_"),
    [
        (f"sha256:{SHA256_EMPTY}", "sha256", SHA256_EMPTY),
        (f"sha512:{SHA512_ABC}", "sha512", SHA512_ABC),
    ],
)
def test_parse_valid(value: str, algorithm: str, hex_: str) -> None:
    digest = parse_digest(value)
    assert digest == Digest(algorithm, hex_)
    assert digest.algorithm == algorithm
    assert digest.hex == hex_
    assert str(digest) == value


@pytest.mark.parametrize(
    "value",
    [
        "",
        SHA256_EMPTY,
        f"sha256{SHA256_EMPTY}",
        "sha256:",
        ":" + SHA256_EMPTY,
        f"sha256:{SHA256_EMPTY.upper()}",
        f"SHA256:{SHA256_EMPTY}",
        f"sha256:{SHA256_EMPTY[:-1]}",
        f"sha256:{SHA256_EMPTY}0",
        f"sha256:{SHA256_EMPTY[:-1]}g",
        f"sha256:{SHA256_EMPTY}\n",
        f" sha256:{SHA256_EMPTY}",
        f"sha256:{SHA512_ABC}",
        f"sha512:{SHA256_EMPTY}",
        f"sha384:{hashlib.sha384(b'').hexdigest()}",
        "md5:d41d8cd98f00b204e9800998ecf8427e",
        f"sha256+b64u:{SHA256_EMPTY}",
        f"sha256:{SHA256_EMPTY}:{SHA256_EMPTY}",
        f"sha256:../../{SHA256_EMPTY[6:]}",
    ],
)
def test_parse_invalid(value: str) -> None:
    with pytest.raises(InvalidDigest):
        parse_digest(value)


def test_invalid_digest_is_a_value_error() -> None:
    assert issubclass(InvalidDigest, ValueError)


def test_constructor_validates() -> None:
    with pytest.raises(InvalidDigest):
        Digest("sha256", "ab")
    with pytest.raises(InvalidDigest):
        Digest("sha1", "da39a3ee5e6b4b0d3255bfef95601890afd80709")


def test_digest_is_frozen_and_hashable() -> None:
    digest = parse_digest(f"sha256:{SHA256_EMPTY}")
    with pytest.raises(AttributeError):
        digest.hex = "0" * 64  # type: ignore[misc]
    assert {digest, parse_digest(str(digest))} == {digest}


def test_digest_of_defaults_to_sha256() -> None:
    assert digest_of(b"") == Digest("sha256", SHA256_EMPTY)
    assert str(digest_of(b"hello")) == "sha256:" + hashlib.sha256(b"hello").hexdigest()


def test_digest_of_sha512() -> None:
    assert digest_of(b"abc", "sha512") == Digest("sha512", SHA512_ABC)


def test_digest_of_unknown_algorithm() -> None:
    with pytest.raises(InvalidDigest):
        digest_of(b"abc", "md5")


def test_new_hasher_streams_to_the_same_digest() -> None:
    data = bytes(range(256)) * 1000
    hasher = new_hasher()
    for start in range(0, len(data), 4096):
        hasher.update(data[start : start + 4096])
    assert hasher.name == "sha256"
    assert hasher.hexdigest() == hashlib.sha256(data).hexdigest()
    assert hasher_digest(hasher) == digest_of(data)


def test_new_hasher_sha512() -> None:
    hasher = new_hasher("sha512")
    hasher.update(b"abc")
    assert hasher_digest(hasher) == Digest("sha512", SHA512_ABC)


@pytest.mark.parametrize("algorithm", ["md5", "sha1", "SHA256", ""])
def test_new_hasher_refuses_unsupported(algorithm: str) -> None:
    with pytest.raises(InvalidDigest):
        new_hasher(algorithm)
