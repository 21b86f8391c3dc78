"""``driver``: one fresh, empty store per test, for every storage driver in turn."""

from __future__ import annotations

from pathlib import Path

import pytest

from forge_container.storage import FilesystemDriver, StorageDriver

#: Every driver the contract suite runs against; each but the filesystem comes from a
#: fixture named ``<name>_driver`` (see ``forge_container_tests/s3_server.py`` and
#: ``forge_container_tests/database_storage.py``).
DRIVER_NAMES = ("filesystem", "s3", "database")


@pytest.fixture(params=DRIVER_NAMES)
def driver(request: pytest.FixtureRequest, tmp_path: Path) -> StorageDriver:
    if request.param == "filesystem":
        return FilesystemDriver(str(tmp_path / "store"))
    store: StorageDriver = request.getfixturevalue(f"{request.param}_driver")
    return store
