"""Hashes whose state survives between requests, so an upload's chunks may land anywhere.

:mod:`hashlib` objects cannot be exported; ``rehashes`` (RustCrypto behind a small Python
API) can. A saved state is tagged with :func:`state_format` (library, version and
algorithm): a state from another version or algorithm is refused by :meth:`ResumableHash.restore`,
and the caller falls back to re-hashing the stored bytes.
"""

from __future__ import annotations

from importlib.metadata import version
from typing import Protocol, cast

import rehashes  # type: ignore[import-untyped]

from forge_container.digest import ALGORITHMS, Digest, InvalidDigest

_LIBRARY = "rehashes"
_VERSION = version(_LIBRARY)


class _Hasher(Protocol):
    def update(self, data: bytes, /) -> None: ...

    def finalize(self) -> str: ...

    def serialize(self) -> bytes: ...


class _HasherClass(Protocol):
    def __call__(self) -> _Hasher: ...

    def deserialize(self, data: bytes, /) -> _Hasher: ...


_CLASSES: dict[str, _HasherClass] = {
    "sha256": cast(_HasherClass, rehashes.PySha256),
    "sha512": cast(_HasherClass, rehashes.PySha512),
}
assert set(_CLASSES) == set(ALGORITHMS)


def state_format(algorithm: str) -> str:
    """The tag stored beside a saved state, e.g. ``rehashes-0.3.0:sha256``."""
    return f"{_LIBRARY}-{_VERSION}:{algorithm}"


class ResumableHash:
    """A running digest of one algorithm that can be saved and restored."""

    def __init__(self, algorithm: str, hasher: _Hasher | None = None) -> None:
        try:
            cls = _CLASSES[algorithm]
        except KeyError:
            raise InvalidDigest(f"unsupported digest algorithm {algorithm!r}") from None
        self.algorithm = algorithm
        self._hasher = hasher if hasher is not None else cls()

    @classmethod
    def restore(cls, algorithm: str, state: bytes | None, fmt: str | None) -> ResumableHash | None:
        """The hash saved as ``state``; ``None`` when it is missing or from another format."""
        if state is None or fmt != state_format(algorithm) or algorithm not in _CLASSES:
            return None
        try:
            return cls(algorithm, _CLASSES[algorithm].deserialize(state))
        except ValueError:
            return None

    @property
    def format(self) -> str:
        return state_format(self.algorithm)

    def update(self, data: bytes) -> None:
        self._hasher.update(data)

    def state(self) -> bytes:
        """The serialized state, for :meth:`restore` in another process."""
        return self._hasher.serialize()

    def digest(self) -> Digest:
        """The digest of everything fed so far (the hash can still be updated)."""
        return Digest(self.algorithm, self._hasher.finalize())
