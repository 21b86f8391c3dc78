"""What the contract cannot see: the filesystem driver's directories, files and root."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from forge_container.config import load_settings
from forge_container.digest import digest_of
from forge_container.storage import (
    FilesystemDriver,
    InvalidPath,
    PathNotFound,
    StorageError,
    make_driver,
)
from forge_container.storage.paths import blob_path, upload_path


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def fs(root: Path) -> FilesystemDriver:
    return FilesystemDriver(str(root))


def _all_entries(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_creates_the_root_and_its_directories(tmp_path: Path) -> None:
    root = tmp_path / "a" / "b" / "store"
    driver = FilesystemDriver(str(root))
    assert (root / "blobs").is_dir()
    assert (root / "uploads").is_dir()
    assert driver.root == str(root)
    driver.check()


def test_reopening_keeps_the_content(root: Path, fs: FilesystemDriver) -> None:
    path = blob_path(digest_of(b"kept"))
    fs.write_bytes(path, b"kept")
    assert FilesystemDriver(str(root)).read_bytes(path) == b"kept"


def test_root_is_resolved(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    driver = FilesystemDriver(str(tmp_path / "link"))
    assert driver.root == str(real)
    path = upload_path("u")
    driver.write_bytes(path, b"x")
    assert (real / "uploads" / "u" / "data").read_bytes() == b"x"


def test_a_root_that_is_a_file_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "store"
    root.write_bytes(b"not a directory")
    with pytest.raises(StorageError, match="cannot create the storage root"):
        FilesystemDriver(str(root))


def test_make_driver_builds_a_filesystem_driver(tmp_path: Path) -> None:
    settings = load_settings(
        {
            "CONTAINER_REGISTRY_TOKEN_SECRET": "s" * 32,
            "CONTAINER_REGISTRY_STORAGE_PATH": str(tmp_path / "configured"),
        },
        instance_path=str(tmp_path / "instance"),
    )
    driver = make_driver(settings)
    assert isinstance(driver, FilesystemDriver)
    assert driver.root == str(tmp_path / "configured")
    assert (tmp_path / "configured" / "blobs").is_dir()


def test_on_disk_layout(root: Path, fs: FilesystemDriver) -> None:
    data = b"layer"
    digest = digest_of(data)
    fs.append(upload_path("u1"), [data])
    assert _all_entries(root) == ["blobs", "uploads", "uploads/u1", "uploads/u1/data"]
    fs.commit(upload_path("u1"), blob_path(digest))
    assert _all_entries(root) == [
        "blobs",
        "blobs/sha256",
        f"blobs/sha256/{digest.hex[:2]}",
        f"blobs/sha256/{digest.hex[:2]}/{digest.hex}",
        "uploads",
    ]
    assert (root / "blobs" / "sha256" / digest.hex[:2] / digest.hex).read_bytes() == data


def test_commit_and_write_bytes_leave_no_scratch_files(root: Path, fs: FilesystemDriver) -> None:
    for i in range(5):
        data = f"content {i}".encode()
        fs.append(upload_path(f"u{i}"), [data])
        fs.commit(upload_path(f"u{i}"), blob_path(digest_of(data)))
        fs.write_bytes(upload_path(f"w{i}"), data)
        fs.write_bytes(upload_path(f"w{i}"), data + b"!")
    names = [p.name for p in root.rglob("*")]
    assert len(names) > 10
    assert [n for n in names if n.startswith(".")] == []


def test_commit_to_an_existing_destination_keeps_the_first_file(
    root: Path, fs: FilesystemDriver
) -> None:
    data = b"same"
    target = blob_path(digest_of(data))
    fs.write_bytes(target, data)
    inode = os.stat(root / target).st_ino
    fs.append(upload_path("dup"), [data])
    fs.commit(upload_path("dup"), target)
    assert os.stat(root / target).st_ino == inode
    assert not (root / "uploads" / "dup").exists()


def test_write_bytes_is_an_atomic_replace(root: Path, fs: FilesystemDriver) -> None:
    path = upload_path("w")
    fs.write_bytes(path, b"old")
    with open(root / path, "rb") as reader:
        fs.write_bytes(path, b"new")
        assert reader.read() == b"old"
    assert fs.read_bytes(path) == b"new"


def test_write_bytes_failure_removes_its_scratch_file(root: Path, fs: FilesystemDriver) -> None:
    (root / "uploads" / "w" / "data" / "occupied").mkdir(parents=True)
    with pytest.raises(StorageError):
        fs.write_bytes(upload_path("w"), b"data")
    assert sorted(p.name for p in (root / "uploads" / "w").iterdir()) == ["data"]


def test_new_files_follow_the_umask(root: Path, fs: FilesystemDriver) -> None:
    umask = os.umask(0o022)
    try:
        fs.write_bytes(upload_path("w"), b"x")
        fs.append(upload_path("a"), [b"x"])
    finally:
        os.umask(umask)
    assert (root / "uploads" / "w" / "data").stat().st_mode & 0o777 == 0o644
    assert (root / "uploads" / "a" / "data").stat().st_mode & 0o777 == 0o644


def test_delete_removes_empty_directories_up_to_the_top_level(
    root: Path, fs: FilesystemDriver
) -> None:
    blob = blob_path(digest_of(b"gone"))
    fs.write_bytes(blob, b"gone")
    fs.append(upload_path("u"), [b"partial"])
    assert fs.delete(blob)
    assert fs.delete(upload_path("u"))
    assert _all_entries(root) == ["blobs", "uploads"]


def test_delete_keeps_directories_in_use(root: Path, fs: FilesystemDriver) -> None:
    fs.write_bytes(upload_path("u"), b"data")
    (root / "uploads" / "u" / "hashstate").write_bytes(b"state")
    assert fs.delete(upload_path("u"))
    assert _all_entries(root) == ["blobs", "uploads", "uploads/u", "uploads/u/hashstate"]


def test_directories_are_not_files(root: Path, fs: FilesystemDriver) -> None:
    fs.write_bytes(upload_path("u"), b"data")
    assert not fs.exists("uploads/u")
    with pytest.raises(PathNotFound):
        fs.stat("uploads/u")
    with pytest.raises(PathNotFound):
        fs.read_bytes("uploads/u")
    with pytest.raises(PathNotFound):
        fs.commit("uploads/u", blob_path(digest_of(b"data")))
    assert fs.delete("uploads/u") is False
    assert (root / "uploads" / "u" / "data").read_bytes() == b"data"


def test_symlinks_cannot_escape_the_root(tmp_path: Path, root: Path, fs: FilesystemDriver) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"secret")
    (root / "uploads" / "evil").symlink_to(outside)
    (root / "uploads" / "link").mkdir()
    (root / "uploads" / "link" / "data").symlink_to(outside / "secret")
    for path in ("uploads/evil/secret", upload_path("link")):
        with pytest.raises(InvalidPath):
            fs.read_bytes(path)
        with pytest.raises(InvalidPath):
            fs.local_path(path)
    with pytest.raises(InvalidPath):
        fs.write_bytes("uploads/evil/new", b"x")
    with pytest.raises(InvalidPath):
        fs.append(upload_path("evil"), [b"x"])
    with pytest.raises(InvalidPath):
        fs.delete(upload_path("link"))
    with pytest.raises(InvalidPath):
        fs.list("uploads/evil")
    assert sorted(p.name for p in outside.iterdir()) == ["secret"]
    assert (outside / "secret").read_bytes() == b"secret"


def test_local_path_and_open_read_are_real_files(root: Path, fs: FilesystemDriver) -> None:
    path = blob_path(digest_of(b"sendfile me"))
    fs.write_bytes(path, b"sendfile me")
    assert fs.local_path(path) == str(root / path)
    with fs.open_read(path, 4) as f:
        assert os.fstat(f.fileno()).st_size == len(b"sendfile me")
        assert f.read() == b"file me"
    with pytest.raises(PathNotFound):
        fs.local_path(upload_path("absent"))


def test_open_read_refuses_negative_offsets(fs: FilesystemDriver) -> None:
    path = upload_path("u")
    fs.write_bytes(path, b"data")
    with pytest.raises(ValueError, match="negative"):
        fs.open_read(path, -1)


def test_list_skips_scratch_files(root: Path, fs: FilesystemDriver) -> None:
    fs.write_bytes(upload_path("u"), b"data")
    (root / "uploads" / "u" / ".tmp-leftover").write_bytes(b"scratch")
    (root / "uploads" / ".hidden").mkdir()
    (root / "uploads" / ".hidden" / "data").write_bytes(b"scratch")
    assert list(fs.list("uploads")) == [upload_path("u")]


def test_check_fails_when_the_root_became_a_file(root: Path, fs: FilesystemDriver) -> None:
    shutil.rmtree(root)
    root.write_bytes(b"not a directory")
    with pytest.raises(StorageError):
        fs.check()
    with pytest.raises(StorageError):
        fs.write_bytes(upload_path("u"), b"x")


def test_check_fails_when_a_directory_is_a_file(root: Path, fs: FilesystemDriver) -> None:
    (root / "blobs").rmdir()
    (root / "blobs").write_bytes(b"")
    with pytest.raises(StorageError, match="blobs"):
        fs.check()


def test_a_vanished_root_is_not_recreated(root: Path, fs: FilesystemDriver) -> None:
    shutil.rmtree(root)
    with pytest.raises(StorageError):
        fs.check()
    with pytest.raises(StorageError, match="missing"):
        fs.append(upload_path("u"), [b"x"])
    assert not root.exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_check_fails_on_a_read_only_root(root: Path, fs: FilesystemDriver) -> None:
    blobs = root / "blobs"
    blobs.chmod(0o555)
    try:
        with pytest.raises(StorageError, match="not writable"):
            fs.check()
    finally:
        blobs.chmod(0o755)
    fs.check()
