"""One contract suite for every storage driver, plus the path mapper they all rely on."""

from __future__ import annotations

import hashlib
import random
import time
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from forge_container.config import load_settings
from forge_container.digest import Digest, digest_of, hasher_digest, new_hasher
from forge_container.storage import (
    CHUNK_SIZE,
    InvalidPath,
    PathNotFound,
    StorageDriver,
    StorageError,
    make_driver,
)
from forge_container.storage.paths import (
    BLOBS,
    UPLOADS,
    blob_path,
    digest_from_blob_path,
    upload_id_from_path,
    upload_path,
)


def _fake_digest(hex_prefix: str, fill: str = "0") -> Digest:
    """A well-formed sha256 digest; drivers never check content against it."""
    return Digest("sha256", hex_prefix + fill * (64 - len(hex_prefix)))


def _listing(driver: StorageDriver, prefix: str) -> list[str]:
    return sorted(driver.list(prefix))


# The path mapper.


def test_blob_path_layout() -> None:
    digest = digest_of(b"hello")
    assert blob_path(digest) == f"blobs/sha256/{digest.hex[:2]}/{digest.hex}"
    big = digest_of(b"hello", "sha512")
    assert blob_path(big) == f"blobs/sha512/{big.hex[:2]}/{big.hex}"


def test_upload_path_layout() -> None:
    assert upload_path("Ab_9-z") == "uploads/Ab_9-z/data"
    assert upload_path("a" * 64) == f"uploads/{'a' * 64}/data"


@pytest.mark.parametrize(
    "upload_id", ["", "a" * 65, "..", ".", "a/b", "a\\b", "a\0", "a.b", "a b", "/abs", "é"]
)
def test_upload_path_refuses_bad_ids(upload_id: str) -> None:
    with pytest.raises(InvalidPath):
        upload_path(upload_id)


def test_paths_parse_back() -> None:
    digest = digest_of(b"x", "sha512")
    assert digest_from_blob_path(blob_path(digest)) == digest
    assert upload_id_from_path(upload_path("u-1")) == "u-1"


@pytest.mark.parametrize(
    "path",
    [
        "uploads/u/data",
        "blobs/sha256/00/" + "1" * 64,
        "blobs/sha256/" + "1" * 64,
        "blobs/md5/d4/d41d8cd98f00b204e9800998ecf8427e",
        "blobs/sha256/11/" + "1" * 64 + "/data",
        "../blobs/sha256/11/" + "1" * 64,
    ],
)
def test_digest_from_blob_path_refuses_other_paths(path: str) -> None:
    with pytest.raises(InvalidPath):
        digest_from_blob_path(path)


@pytest.mark.parametrize(
    "path", ["uploads/u", "uploads/u/other", "blobs/u/data", "uploads/a.b/data"]
)
def test_upload_id_from_path_refuses_other_paths(path: str) -> None:
    with pytest.raises(InvalidPath):
        upload_id_from_path(path)


# The driver registry.


def test_make_driver_refuses_unknown_backend(tmp_path: Path) -> None:
    settings = load_settings(
        {"CONTAINER_REGISTRY_TOKEN_SECRET": "s" * 32}, instance_path=str(tmp_path)
    )
    with pytest.raises(ValueError, match=r"CONTAINER_REGISTRY_STORAGE_BACKEND.*'nope'"):
        make_driver(replace(settings, storage_backend="nope"))


# The contract.


def test_implements_the_protocol(driver: StorageDriver) -> None:
    assert isinstance(driver, StorageDriver)


def test_check_passes_on_a_fresh_store(driver: StorageDriver) -> None:
    driver.check()
    assert _listing(driver, "") == []


def test_write_read_stat_exists(driver: StorageDriver) -> None:
    path = blob_path(digest_of(b"manifest"))
    assert not driver.exists(path)
    driver.write_bytes(path, b"manifest")
    assert driver.exists(path)
    assert driver.read_bytes(path) == b"manifest"
    assert driver.stat(path) == len(b"manifest")


def test_write_bytes_replaces(driver: StorageDriver) -> None:
    path = upload_path("u1")
    driver.write_bytes(path, b"old content")
    driver.write_bytes(path, b"new")
    assert driver.read_bytes(path) == b"new"
    assert driver.stat(path) == 3


def test_empty_file(driver: StorageDriver) -> None:
    path = blob_path(digest_of(b""))
    driver.write_bytes(path, b"")
    assert driver.exists(path)
    assert driver.stat(path) == 0
    assert driver.read_bytes(path) == b""


def test_missing_paths(driver: StorageDriver) -> None:
    path = blob_path(digest_of(b"absent"))
    assert not driver.exists(path)
    with pytest.raises(PathNotFound):
        driver.stat(path)
    with pytest.raises(PathNotFound):
        driver.read_bytes(path)
    with pytest.raises(PathNotFound):
        driver.open_read(path)
    with pytest.raises(PathNotFound):
        driver.commit(upload_path("absent"), path)
    assert not driver.exists(path)
    assert driver.delete(path) is False
    assert _listing(driver, "blobs/sha256/00") == []


def test_path_not_found_is_a_storage_error() -> None:
    assert issubclass(PathNotFound, StorageError)
    assert issubclass(InvalidPath, StorageError)
    assert PathNotFound("blobs/x").path == "blobs/x"


@pytest.mark.parametrize("offset", [0, 1, CHUNK_SIZE, CHUNK_SIZE + 5, 2 * CHUNK_SIZE + 7])
def test_open_read_at_offset(driver: StorageDriver, offset: int) -> None:
    data = bytes(range(256)) * (2 * CHUNK_SIZE // 256) + b"tail..."
    path = blob_path(digest_of(data))
    driver.write_bytes(path, data)
    with driver.open_read(path, offset) as f:
        pieces = iter(lambda: f.read(CHUNK_SIZE), b"")
        assert b"".join(pieces) == data[offset:]


def test_append_streams_many_chunks(driver: StorageDriver) -> None:
    path = upload_path("many")
    chunks = [bytes([i % 251]) * (i * 37 % 5000) for i in range(600)]
    expected = b"".join(chunks)
    assert driver.append(path, iter(chunks)) == len(expected)
    assert driver.append(path, (c for c in [b"", b"more", b""])) == len(expected) + 4
    assert driver.stat(path) == len(expected) + 4
    hasher = new_hasher()
    with driver.open_read(path) as f:
        for piece in iter(lambda: f.read(CHUNK_SIZE), b""):
            hasher.update(piece)
    assert hasher_digest(hasher) == digest_of(expected + b"more")


def test_append_creates_with_no_chunks(driver: StorageDriver) -> None:
    path = upload_path("empty")
    assert driver.append(path, []) == 0
    assert driver.exists(path)
    assert driver.stat(path) == 0


def test_append_keeps_memory_flat(driver: StorageDriver) -> None:
    chunk = b"\xab" * CHUNK_SIZE
    count = 48

    def body() -> Iterator[bytes]:
        for _ in range(count):
            yield chunk

    tracemalloc.start()
    try:
        size = driver.append(upload_path("big"), body())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert size == count * CHUNK_SIZE
    assert peak < 16 * CHUNK_SIZE, f"append held {peak} bytes for a {size}-byte body"


def test_append_failure_keeps_previous_size(driver: StorageDriver) -> None:
    path = upload_path("broken")
    driver.append(path, [b"first ", b"chunk"])

    def body() -> Iterator[bytes]:
        yield b"x" * 1000
        yield b"y" * CHUNK_SIZE
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError, match="client went away"):
        driver.append(path, body())
    assert driver.stat(path) == len(b"first chunk")
    assert driver.read_bytes(path) == b"first chunk"
    assert driver.append(path, [b"!"]) == len(b"first chunk!")


def test_commit_moves_the_upload(driver: StorageDriver) -> None:
    data = b"layer bytes " * 10_000
    upload = upload_path("u-commit")
    driver.append(upload, [data[:5000], data[5000:]])
    target = blob_path(digest_of(data))
    driver.commit(upload, target)
    assert driver.read_bytes(target) == data
    assert driver.stat(target) == len(data)
    assert not driver.exists(upload)
    assert _listing(driver, UPLOADS) == []
    assert _listing(driver, BLOBS) == [target]


def test_commit_to_an_existing_destination_drops_the_upload(driver: StorageDriver) -> None:
    data = b"same content"
    target = blob_path(digest_of(data))
    first, second = upload_path("first"), upload_path("second")
    driver.append(first, [data])
    driver.commit(first, target)
    driver.append(second, [data])
    driver.commit(second, target)
    assert driver.read_bytes(target) == data
    assert not driver.exists(second)
    assert _listing(driver, UPLOADS) == []
    assert _listing(driver, BLOBS) == [target]


def test_commit_of_a_missing_upload(driver: StorageDriver) -> None:
    target = blob_path(digest_of(b"never uploaded"))
    with pytest.raises(PathNotFound):
        driver.commit(upload_path("ghost"), target)
    assert not driver.exists(target)


def test_delete_and_cleanup(driver: StorageDriver) -> None:
    one, two = blob_path(_fake_digest("ab", "1")), blob_path(_fake_digest("ab", "2"))
    upload = upload_path("u-del")
    driver.write_bytes(one, b"1")
    driver.write_bytes(two, b"2")
    driver.append(upload, [b"partial"])
    assert driver.delete(one) is True
    assert not driver.exists(one)
    assert driver.read_bytes(two) == b"2"
    assert driver.delete(one) is False
    assert driver.delete(two) is True
    assert driver.delete(upload) is True
    assert _listing(driver, "") == []
    # The top-level directories survive: the store still works.
    driver.check()
    driver.write_bytes(one, b"again")
    assert driver.read_bytes(one) == b"again"


def test_list(driver: StorageDriver) -> None:
    blobs = [
        blob_path(digest_of(b"a")),
        blob_path(digest_of(b"b")),
        blob_path(digest_of(b"a", "sha512")),
    ]
    uploads = [upload_path("u1"), upload_path("u-2"), upload_path("u_3")]
    for path in blobs + uploads:
        driver.write_bytes(path, path.encode())
    assert _listing(driver, BLOBS) == sorted(blobs)
    assert _listing(driver, "blobs/sha256") == sorted(blobs[:2])
    assert _listing(driver, UPLOADS) == sorted(uploads)
    assert _listing(driver, "uploads/u1") == [upload_path("u1")]
    assert _listing(driver, "") == sorted(blobs + uploads)
    assert _listing(driver, "blobs/sha384") == []
    assert [digest_from_blob_path(p) for p in _listing(driver, "blobs/sha512")] == [
        digest_of(b"a", "sha512")
    ]
    assert sorted(upload_id_from_path(p) for p in driver.list(UPLOADS)) == ["u-2", "u1", "u_3"]


def test_local_path(driver: StorageDriver) -> None:
    path = blob_path(digest_of(b"served"))
    driver.write_bytes(path, b"served")
    local = driver.local_path(path)
    if local is None:
        return  # a remote driver: callers stream or redirect instead
    assert Path(local).read_bytes() == b"served"
    with pytest.raises(PathNotFound):
        driver.local_path(blob_path(digest_of(b"absent")))


_BAD_PATHS = [
    "",
    "/etc/passwd",
    "../escape",
    "blobs/../../escape",
    "blobs/..",
    "..",
    ".",
    "blobs/./x",
    "blobs//x",
    "blobs/",
    "blobs\\..\\..\\escape",
    "blobs/x\0y",
    "uploads/.tmp-scratch",
]

_OPS: dict[str, Callable[[StorageDriver, str], object]] = {
    "stat": lambda d, p: d.stat(p),
    "exists": lambda d, p: d.exists(p),
    "open_read": lambda d, p: d.open_read(p),
    "read_bytes": lambda d, p: d.read_bytes(p),
    "write_bytes": lambda d, p: d.write_bytes(p, b"escaped"),
    "append": lambda d, p: d.append(p, [b"escaped"]),
    "commit_from": lambda d, p: d.commit(p, blob_path(digest_of(b"escaped"))),
    "commit_to": lambda d, p: d.commit(upload_path("u"), p),
    "delete": lambda d, p: d.delete(p),
    "local_path": lambda d, p: d.local_path(p),
    "list": lambda d, p: list(d.list(p)),
}


@pytest.mark.parametrize(
    ("op", "path"),
    # ``list("")`` is valid: it lists the whole store.
    [(op, path) for op in sorted(_OPS) for path in _BAD_PATHS if (op, path) != ("list", "")],
)
def test_escape_attempts_are_refused(
    driver: StorageDriver, tmp_path: Path, op: str, path: str
) -> None:
    driver.append(upload_path("u"), [b"escaped"])
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(InvalidPath):
        _OPS[op](driver, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert driver.exists(upload_path("u"))
    assert not driver.exists(blob_path(digest_of(b"escaped")))


def test_list_refuses_escapes_before_iterating(driver: StorageDriver) -> None:
    with pytest.raises(InvalidPath):
        driver.list("../")


def test_large_blob_round_trip(driver: StorageDriver) -> None:
    hasher = hashlib.sha256()
    chunks = [bytes([i]) * (CHUNK_SIZE + i) for i in range(5)]
    for c in chunks:
        hasher.update(c)
    upload = upload_path("large")
    size = driver.append(upload, iter(chunks))
    target = blob_path(Digest("sha256", hasher.hexdigest()))
    driver.commit(upload, target)
    assert driver.stat(target) == size
    check = hashlib.sha256()
    with driver.open_read(target) as f:
        for piece in iter(lambda: f.read(CHUNK_SIZE), b""):
            check.update(piece)
    assert check.hexdigest() == hasher.hexdigest()


def test_modified_tells_when_a_file_was_written(driver: StorageDriver) -> None:
    path = upload_path("modified-probe")
    before = time.time()
    driver.append(path, [b"x"])
    assert before - 5 <= driver.modified(path) <= time.time() + 5
    with pytest.raises(PathNotFound):
        driver.modified(upload_path("absent"))


def test_chunk_minimum_and_redirects_are_declared(driver: StorageDriver) -> None:
    assert driver.min_chunk_length >= 0
    digest = digest_of(b"redirect me")
    driver.write_bytes(blob_path(digest), b"redirect me")
    url = driver.redirect_url(blob_path(digest), expires=60)
    assert url is None or url.startswith(("http://", "https://"))


# Uploads that grow over several calls (object stores send them in parts of 5 MiB or more).

MIB = 1 << 20


def _noise(size: int, seed: int) -> bytes:
    """``size`` bytes that differ everywhere, so misplaced pieces show."""
    return random.Random(seed).randbytes(size)


def _read_all(driver: StorageDriver, path: str, offset: int = 0) -> bytes:
    with driver.open_read(path, offset) as f:
        return b"".join(iter(lambda: f.read(CHUNK_SIZE), b""))


def _pieces(data: bytes, size: int) -> Iterator[bytes]:
    return (data[i : i + size] for i in range(0, len(data), size))


def test_appends_of_uneven_sizes_add_up(driver: StorageDriver) -> None:
    path = upload_path("uneven")
    calls = [3 * MIB, 3 * MIB, 1, 6 * MIB + 5, 0, 2 * MIB + 7]
    data = _noise(sum(calls), 1)
    offset = 0
    for size in calls:
        assert driver.append(path, _pieces(data[offset : offset + size], 777_777)) == offset + size
        offset += size
        assert driver.stat(path) == offset
    assert _read_all(driver, path) == data
    target = blob_path(digest_of(data))
    driver.commit(path, target)
    assert driver.stat(target) == len(data)
    assert _read_all(driver, target, 5 * MIB - 3) == data[5 * MIB - 3 :]
    assert _listing(driver, UPLOADS) == []


def test_a_failed_append_of_many_bytes_keeps_the_earlier_ones(driver: StorageDriver) -> None:
    path = upload_path("broken-big")
    first = _noise(3 * MIB, 2)
    driver.append(path, [first])

    def body() -> Iterator[bytes]:
        yield from _pieces(_noise(11 * MIB, 3), MIB)
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        driver.append(path, body())
    assert driver.stat(path) == len(first)
    rest = _noise(6 * MIB, 4)
    assert driver.append(path, [rest]) == len(first) + len(rest)
    target = blob_path(digest_of(first + rest))
    driver.commit(path, target)
    assert _read_all(driver, target) == first + rest


@pytest.mark.parametrize("sizes", [(1000, 24), (6 * MIB + 1, 3), (6 * MIB, 5 * MIB + 1)])
def test_reading_an_upload_then_appending_more(
    driver: StorageDriver, sizes: tuple[int, int]
) -> None:
    """What re-hashing a session whose hash state is missing does, before its last chunk."""
    path = upload_path("reread")
    first, more = _noise(sizes[0], 5), _noise(sizes[1], 6)
    driver.append(path, [first])
    assert _read_all(driver, path) == first
    assert _read_all(driver, path, len(first) - 1) == first[-1:]
    assert driver.stat(path) == len(first)
    assert driver.append(path, [more]) == len(first) + len(more)
    assert _read_all(driver, path) == first + more
    target = blob_path(digest_of(first + more))
    driver.commit(path, target)
    assert _read_all(driver, target) == first + more
    assert _listing(driver, UPLOADS) == []


@pytest.mark.parametrize("size", [3, 5 * MIB + 3])
def test_appending_to_a_written_file(driver: StorageDriver, size: int) -> None:
    path = upload_path("written")
    first = _noise(size, 7)
    driver.write_bytes(path, first)
    assert driver.append(path, []) == size
    assert driver.append(path, [b"more"]) == size + 4
    assert _read_all(driver, path) == first + b"more"
    driver.write_bytes(path, b"replaced")
    assert driver.read_bytes(path) == b"replaced"
    assert driver.stat(path) == len(b"replaced")


def test_reading_at_the_end_gives_nothing(driver: StorageDriver) -> None:
    blob = blob_path(digest_of(b"four"))
    driver.write_bytes(blob, b"four")
    assert _read_all(driver, blob, 4) == b""
    upload = upload_path("at-end")
    driver.append(upload, [b"four"])
    assert _read_all(driver, upload, 4) == b""


def test_deleting_an_upload_in_progress(driver: StorageDriver) -> None:
    path = upload_path("doomed")
    driver.append(path, [_noise(5 * MIB + 9, 8)])
    driver.append(path, [b"tail"])
    assert driver.delete(path) is True
    assert not driver.exists(path)
    assert driver.delete(path) is False
    assert _listing(driver, "") == []
    assert driver.append(path, [b"fresh"]) == 5
    assert driver.read_bytes(path) == b"fresh"


def test_committing_an_empty_upload(driver: StorageDriver) -> None:
    path = upload_path("empty-commit")
    driver.append(path, [])
    target = blob_path(digest_of(b""))
    driver.commit(path, target)
    assert driver.stat(target) == 0
    assert driver.read_bytes(target) == b""
    assert _listing(driver, "") == [target]
