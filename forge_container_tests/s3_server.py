"""Placeholder: the fixtures of this plugin are being written."""

from __future__ import annotations

import pytest

from forge_container.storage import StorageDriver


@pytest.fixture
def s3_driver() -> StorageDriver:
    pytest.skip("driver not built yet")
