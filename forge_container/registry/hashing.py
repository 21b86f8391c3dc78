"""Hashes whose state survives between requests, so an upload's chunks may land anywhere.

:mod:`hashlib` objects cannot be exported; ``rehashes`` (RustCrypto behind a small Python
API) can. A saved state is tagged with :func:`state_format` (library, version and
algorithm): a state from another version or algorithm is refused by :meth:`ResumableHash.restore`,
and the caller falls back to re-hashing the stored bytes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from importlib.metadata import version
from typing import Any, Protocol, cast

import rehashes  # type: ignore[import-untyped]

from forge_container.digest import ALGORITHMS, Digest, InvalidDigest


class _Hasher(Protocol):
    def update(self, data: bytes, /) -> None: ...

    def finalize(self) -> str: ...

    def serialize(self) -> bytes: ...


class _HasherClass(Protocol):
    def __call__(self) -> _Hasher: ...

    def deserialize(self, data: bytes, /) -> _Hasher: ...


#: ``SHA256_CTX`` and ``SHA512_CTX`` of OpenSSL's ``<openssl/sha.h>`` (x86-64 and arm64):
#: (context size, digest size, symbol prefix).
_OPENSSL_SHA = {"sha256": (112, 32, "SHA256"), "sha512": (216, 64, "SHA512")}


def _load_libcrypto() -> Any | None:
    """OpenSSL's libcrypto with the SHA-2 functions, or ``None``."""
    name = ctypes.util.find_library("crypto")
    if name is None:
        return None
    try:
        lib = ctypes.CDLL(name)
        version_num = lib.OpenSSL_version_num
        version_num.restype = ctypes.c_ulong
        for _, _, prefix in _OPENSSL_SHA.values():
            init, update, final = (
                getattr(lib, f"{prefix}_{op}") for op in ("Init", "Update", "Final")
            )
            init.argtypes = [ctypes.c_void_p]
            update.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
            final.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
    except (OSError, AttributeError):
        return None
    return lib


class _OpenSSLHasher:
    """One OpenSSL SHA-2 context; its raw bytes are the saved state."""

    def __init__(self, lib: Any, algorithm: str, state: bytes | None = None) -> None:
        size, self._digest_size, prefix = _OPENSSL_SHA[algorithm]
        self._update = getattr(lib, f"{prefix}_Update")
        self._final = getattr(lib, f"{prefix}_Final")
        if state is None:
            self._ctx = ctypes.create_string_buffer(size)
            if getattr(lib, f"{prefix}_Init")(self._ctx) != 1:
                raise ValueError("OpenSSL could not start a hash")
        elif len(state) != size:
            raise ValueError("not a saved hash state")
        else:
            self._ctx = ctypes.create_string_buffer(state, size)

    def update(self, data: bytes, /) -> None:
        self._update(self._ctx, data, len(data))  # ctypes releases the GIL meanwhile

    def finalize(self) -> str:
        ctx = ctypes.create_string_buffer(self._ctx.raw, len(self._ctx))  # keep ours running
        out = ctypes.create_string_buffer(self._digest_size)
        self._final(out, ctx)
        return out.raw.hex()

    def serialize(self) -> bytes:
        return self._ctx.raw


def _openssl_class(lib: Any, algorithm: str) -> _HasherClass:
    class Hasher(_OpenSSLHasher):
        def __init__(self, state: bytes | None = None) -> None:
            super().__init__(lib, algorithm, state)

        @classmethod
        def deserialize(cls, data: bytes, /) -> Hasher:
            return cls(data)

    return cast(_HasherClass, Hasher)


def _implementation() -> tuple[str, dict[str, _HasherClass]]:
    """``(format prefix, classes)``: OpenSSL's contexts when usable, else ``rehashes``."""
    lib = _load_libcrypto()
    if lib is not None:
        # The struct layout is OpenSSL's ABI on this platform: tag the state with both.
        tag = f"openssl-{lib.OpenSSL_version_num():x}-{sys.platform}-{sys.byteorder}"
        return tag, {alg: _openssl_class(lib, alg) for alg in _OPENSSL_SHA}
    return f"rehashes-{version('rehashes')}", {
        "sha256": cast(_HasherClass, rehashes.PySha256),
        "sha512": cast(_HasherClass, rehashes.PySha512),
    }


_FORMAT, _CLASSES = _implementation()
assert set(_CLASSES) == set(ALGORITHMS)


def state_format(algorithm: str) -> str:
    """The tag stored beside a saved state, e.g. ``openssl-30000110-linux-little:sha256``."""
    return f"{_FORMAT}:{algorithm}"


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
