"""``flask container usage`` and ``flask container quota show|set|reset``."""

from __future__ import annotations

import hashlib
import io
import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner

from forge_container.registry import quota, uploads
from forge_container.registry.quota import Override
from forge_container.state import get_state


@pytest.fixture
def owners(forge: Any) -> dict[str, str]:
    """alice and bob (users), acme (an organisation): their ids by name."""
    forge.user("alice")
    forge.user("bob")
    forge.org("acme", "alice")
    return {name: forge.owner(name).id for name in ("alice", "bob", "acme")}


def store(app: Flask, owner_id: str, owner_name: str, data: bytes, image: str = "app") -> None:
    """Upload ``data`` into ``owner/image``."""
    state = get_state(app)
    who = uploads.Uploader(owner_id, owner_name, image, owner_id)
    with app.app_context():
        uploads.upload_blob(
            state.db.session(),
            state.storage,
            state.settings,
            who,
            f"sha256:{hashlib.sha256(data).hexdigest()}",
            io.BytesIO(data),
            content_length=len(data),
        )


def override(app: Flask, owner_id: str) -> Override:
    with app.app_context():
        return quota.get_override(get_state(app).db.session(), owner_id)


def invoke(runner: FlaskCliRunner, *args: str) -> Any:
    return runner.invoke(args=["container", *args])


def table(output: str) -> list[list[str]]:
    """The usage table's rows, split on runs of two or more spaces."""
    return [re.split(r"\s{2,}", line.strip()) for line in output.strip().splitlines()]


def test_usage_without_images(runner: FlaskCliRunner) -> None:
    result = invoke(runner, "usage")
    assert result.exit_code == 0, result.output
    assert result.output == "No owner has images yet.\n"


@pytest.mark.parametrize(
    "app_config",
    [{"CONTAINER_REGISTRY_QUOTA_VERSIONS": 10, "CONTAINER_REGISTRY_QUOTA_BLOB_SIZE": 0}],
)
def test_usage_lists_every_owner_against_its_limits(
    app: Flask, runner: FlaskCliRunner, owners: dict[str, str]
) -> None:
    store(app, owners["acme"], "acme", b"a" * 3 * 1024 * 1024)
    store(app, owners["bob"], "bob", b"b" * 100)
    store(app, owners["bob"], "bob", b"b" * 100, image="copy")  # the same blob: counted once
    with app.app_context():
        session = get_state(app).db.session()
        quota.set_override(session, owners["acme"], {quota.Quota.TOTAL_SIZE: 4 * 1024 * 1024})
        quota.set_override(session, owners["bob"], {quota.Quota.BLOB_SIZE: 1024**3})
    result = invoke(runner, "usage")
    assert result.exit_code == 0, result.output
    assert table(result.output) == [
        ["OWNER", "SIZE", "SIZE LIMIT", "USED", "VERSIONS", "VERSION LIMIT", "USED", "BLOB LIMIT"],
        ["acme", "3.0 MiB", "4.0 MiB", "75%", "0", "10", "0%", "unlimited"],
        ["bob", "100 B", "unlimited", "-", "0", "10", "0%", "1.0 GiB"],
    ]


def test_usage_of_one_owner_by_name(
    app: Flask, runner: FlaskCliRunner, owners: dict[str, str]
) -> None:
    store(app, owners["bob"], "bob", b"b" * 2048)
    result = invoke(runner, "usage", "alice")  # no images yet: zeros
    assert result.exit_code == 0, result.output
    assert table(result.output)[1:] == [
        ["alice", "0 B", "unlimited", "-", "0", "unlimited", "-", "unlimited"]
    ]
    assert table(invoke(runner, "usage", "BOB").output)[1][:2] == ["bob", "2.0 KiB"]


def test_an_unknown_owner_is_an_error(runner: FlaskCliRunner, owners: dict[str, str]) -> None:
    for args in (("usage", "nobody"), ("quota", "show", "nobody"), ("quota", "reset", "nobody")):
        result = invoke(runner, *args)
        assert result.exit_code == 1
        assert "no user or organisation named 'nobody'" in result.output


@pytest.mark.parametrize("app_config", [{"CONTAINER_REGISTRY_QUOTA_BLOB_SIZE": 512 * 1024**2}])
def test_quota_set_show_and_reset(
    app: Flask, runner: FlaskCliRunner, owners: dict[str, str]
) -> None:
    store(app, owners["acme"], "acme", b"x" * 1024 * 1024)
    result = invoke(runner, "quota", "set", "acme", "--total-size", "4MiB", "--versions", "100")
    assert result.exit_code == 0, result.output
    assert override(app, owners["acme"]) == Override(4 * 1024**2, 100, None)
    assert result.output.splitlines() == [
        f"Quota of acme (org {owners['acme']}):",
        "  total size  4.0 MiB (override)         in use: 1.0 MiB (25%)",
        "  versions    100 (override)             in use: 0 (0%)",
        "  blob size   512.0 MiB (default)",
        "Site admins are exempt (CONTAINER_REGISTRY_QUOTA_EXEMPT_ADMINS).",
    ]
    # Only the options given change; 'unlimited' is 0, 'default' follows the setting again.
    invoke(runner, "quota", "set", "acme", "--blob-size", "unlimited", "--versions", "default")
    assert override(app, owners["acme"]) == Override(4 * 1024**2, None, 0)
    shown = invoke(runner, "quota", "show", "acme").output
    assert "  blob size   unlimited (override)" in shown
    assert "  versions    unlimited (default)" in shown
    reset = invoke(runner, "quota", "reset", "acme")
    assert reset.exit_code == 0, reset.output
    assert override(app, owners["acme"]) == Override()
    assert "  total size  unlimited (default)" in reset.output
    again = invoke(runner, "quota", "reset", "acme")
    assert again.output.startswith("acme had no overrides.\n")


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (("--versions", "5", "--total-size", "10G"), "unknown unit 'G'"),
        (("--versions", "5", "--blob-size", "lots"), "is not a size"),
        (("--total-size", "1GiB", "--versions", "1.5"), "is not a whole number"),
        (("--versions", "-3"), "is not a whole number"),
        ((), "give at least one of"),
    ],
)
def test_quota_set_refuses_bad_values_and_saves_nothing(
    app: Flask, runner: FlaskCliRunner, owners: dict[str, str], args: tuple[str, ...], error: str
) -> None:
    result = invoke(runner, "quota", "set", "alice", *args)
    assert result.exit_code == 2
    assert error in result.output
    assert override(app, owners["alice"]) == Override()
