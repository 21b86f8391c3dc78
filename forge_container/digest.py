"""Content digests: the spec's ``algorithm:encoded`` grammar and hashing helpers (pure)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Protocol

#: The algorithms the registry accepts, with the length of their lower-case hex encoding.
ALGORITHMS: dict[str, int] = {"sha256": 64, "sha512": 128}
DEFAULT_ALGORITHM = "sha256"

_HEX_RE = re.compile(r"[0-9a-f]+")


class InvalidDigest(ValueError):
    """A digest outside the grammar, or with an algorithm the registry does not support."""


class Hasher(Protocol):
    """The part of a :mod:`hashlib` object the registry uses."""

    @property
    def name(self) -> str: ...

    def update(self, data: bytes, /) -> None: ...

    def hexdigest(self) -> str: ...


@dataclass(frozen=True)
class Digest:
    """A validated content digest; ``str()`` gives ``<algorithm>:<hex>``."""

    algorithm: str
    hex: str

    def __post_init__(self) -> None:
        length = ALGORITHMS.get(self.algorithm)
        if length is None:
            raise InvalidDigest(f"unsupported digest algorithm {self.algorithm!r}")
        if len(self.hex) != length or _HEX_RE.fullmatch(self.hex) is None:
            raise InvalidDigest(
                f"a {self.algorithm} digest is {length} lower-case hex digits, got {self.hex!r}"
            )

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"


def parse_digest(value: str) -> Digest:
    """Parse ``sha256:<64 hex>`` or ``sha512:<128 hex>``, or raise :class:`InvalidDigest`."""
    algorithm, sep, encoded = value.partition(":")
    if not sep:
        raise InvalidDigest(f"digest {value!r} is not of the form <algorithm>:<hex>")
    return Digest(algorithm, encoded)


def new_hasher(algorithm: str = DEFAULT_ALGORITHM) -> Hasher:
    """A fresh :mod:`hashlib` object for a supported ``algorithm``."""
    if algorithm not in ALGORITHMS:
        raise InvalidDigest(f"unsupported digest algorithm {algorithm!r}")
    return hashlib.new(algorithm)


def hasher_digest(hasher: Hasher) -> Digest:
    """The :class:`Digest` of everything fed to ``hasher`` so far."""
    return Digest(hasher.name, hasher.hexdigest())


def digest_of(data: bytes, algorithm: str = DEFAULT_ALGORITHM) -> Digest:
    """The digest of ``data``."""
    hasher = new_hasher(algorithm)
    hasher.update(data)
    return hasher_digest(hasher)
