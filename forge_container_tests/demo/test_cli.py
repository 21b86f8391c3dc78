"""``flask demo ...``: the demo forge's commands, their output and their errors."""

from __future__ import annotations

import sys
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner

from forge_container import schema
from forge_container.demo import DemoHost, serve
from forge_container.host import Access
from forge_container_tests.conftest import Forge


def run(runner: FlaskCliRunner, *args: str, code: int = 0) -> str:
    result = runner.invoke(args=["demo", *args])
    assert result.exit_code == code, result.output
    return result.output


def test_init_is_idempotent(runner: FlaskCliRunner, app: Flask) -> None:
    for _ in range(2):
        output = run(runner, "init")
        assert "Created any missing demo forge tables (forge_*) in " in output
        assert "Applied the container registry's migrations" in output
    with app.app_context():
        assert schema.current() is not None


def test_create_user(runner: FlaskCliRunner, app: Flask) -> None:
    assert run(runner, "create-user", "alice", "--password", "s3cret") == (
        "Created user alice (public).\n"
    )
    assert "Created site admin root (private)." in run(
        runner, "create-user", "root", "--password", "x", "--admin", "--private"
    )
    with app.app_context():
        principal = DemoHost().authenticate("alice", "s3cret")
        root = DemoHost().get_owner("root")
    assert principal is not None and not principal.is_admin
    assert root is not None and not root.is_public
    assert "already taken" in run(runner, "create-user", "ALICE", "--password", "x", code=1)
    assert "invalid user name" in run(runner, "create-user", "a/b", "--password", "x", code=1)
    assert "must not be empty" in run(runner, "create-user", "bob", "--password", "", code=1)


def test_create_org_and_members(runner: FlaskCliRunner, app: Flask) -> None:
    run(runner, "create-user", "alice", "--password", "x")
    run(runner, "create-user", "bob", "--password", "x")
    assert "no user named 'nobody'" in run(
        runner, "create-org", "acme", "--owner", "nobody", code=1
    )
    output = run(runner, "create-org", "acme", "--owner", "alice", "--private")
    assert output == (
        "Created organisation acme (private); alice is in its Owners team (role admin).\n"
    )
    assert "already taken" in run(runner, "create-org", "Alice", "--owner", "alice", code=1)
    output = run(runner, "add-member", "acme", "bob", "--team", "Devs", "--role", "write")
    assert output == "Added bob to team 'Devs' of acme (role write).\n"
    assert "already a member" in run(
        runner, "add-member", "acme", "bob", "--team", "devs", "--role", "write", code=1
    )
    assert "has role write, not read" in run(
        runner, "add-member", "acme", "alice", "--team", "devs", "--role", "read", code=1
    )
    assert "Invalid value for '--role'" in run(
        runner, "add-member", "acme", "bob", "--team", "x", "--role", "owner", code=2
    )
    assert "no organisation named 'nope'" in run(
        runner, "add-member", "nope", "bob", "--team", "x", "--role", "read", code=1
    )
    assert "no user named 'eve'" in run(
        runner, "add-member", "acme", "eve", "--team", "x", "--role", "read", code=1
    )
    host = DemoHost()
    with app.app_context():
        owner = host.get_owner("acme")
        alice = host.authenticate("alice", "x")
        bob = host.authenticate("bob", "x")
        assert owner is not None and not owner.is_public
        assert host.access(alice, owner, "img") == Access.ADMIN
        assert host.access(bob, owner, "img") == Access.WRITE
        assert host.access(None, owner, "img") == Access.NONE


def test_repositories_and_collaborators(runner: FlaskCliRunner, forge: Forge, app: Flask) -> None:
    forge.user("alice")
    forge.user("bob")
    assert run(runner, "create-repo", "alice/web", "--private") == (
        "Created private repository alice/web.\n"
    )
    assert "already exists" in run(runner, "create-repo", "Alice/WEB", code=1)
    assert "expected OWNER/NAME" in run(runner, "create-repo", "web", code=1)
    assert "no user or organisation named 'zed'" in run(runner, "create-repo", "zed/web", code=1)
    output = run(runner, "add-collaborator", "alice/web", "bob", "--role", "read")
    assert output == "Added bob to alice/web as a collaborator (role read).\n"
    assert "already a collaborator of alice/web (role read)" in run(
        runner, "add-collaborator", "alice/web", "bob", "--role", "write", code=1
    )
    assert "no repository alice/api" in run(
        runner, "add-collaborator", "alice/api", "bob", "--role", "read", code=1
    )
    assert "Invalid value for '--role'" in run(
        runner, "add-collaborator", "alice/web", "bob", "--role", "boss", code=2
    )
    with app.app_context():
        host = DemoHost()
        owner = host.get_owner("alice")
        assert owner is not None
        assert host.access(host.authenticate("bob", "pw-bob"), owner, "web/x") == Access.READ
        assert host.access(None, owner, "web/x") == Access.NONE


def test_tokens(runner: FlaskCliRunner, forge: Forge, app: Flask) -> None:
    forge.user("alice")
    output = run(
        runner, "create-token", "alice", "--scopes", "write:package", "--name", "ci",
        "--expires-days", "7",
    )  # fmt: skip
    lines = output.splitlines()
    assert lines[0].startswith(
        "Created token 'ci' for alice (scopes: read:package, write:package; expires "
    )
    assert lines[0].endswith("Copy it now, it is not shown again:")
    secret = lines[1]
    assert secret.startswith("fcp_") and len(lines) == 2
    with app.app_context():
        principal = DemoHost().authenticate("alice", secret)
    assert principal is not None and principal.scopes == frozenset(
        {"read:package", "write:package"}
    )

    output = run(runner, "create-token", "alice", "--scopes", "read:package")
    assert "'token-2'" in output and "never expires" in output
    assert "already has a token named 'CI'" in run(
        runner, "create-token", "alice", "--scopes", "read:package", "--name", "CI", code=1
    )
    assert "unknown scope admin:repo" in run(
        runner, "create-token", "alice", "--scopes", "read:package,admin:repo", code=1
    )
    assert "needs scopes" in run(runner, "create-token", "alice", "--scopes", ",", code=1)
    assert "no user named 'bob'" in run(
        runner, "create-token", "bob", "--scopes", "read:package", code=1
    )
    assert "Invalid value for '--expires-days'" in run(
        runner, "create-token", "alice", "--scopes", "read:package", "--expires-days", "0", code=2
    )

    assert run(runner, "revoke-token", "alice", "ci") == "Revoked token 'ci' of alice.\n"
    assert "no unrevoked token named 'ci'" in run(runner, "revoke-token", "alice", "ci", code=1)
    with app.app_context():
        assert DemoHost().authenticate("alice", secret) is None
    assert "'ci'" in run(
        runner, "create-token", "alice", "--scopes", "read:package", "--name", "ci"
    )


# --- serve ---------------------------------------------------------------------------


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    calls: list[tuple[Any, ...]] = []
    monkeypatch.setattr(serve, "run_server", lambda app, host, port: calls.append((host, port)))
    for variable in ("HOST", "PORT", "FORGE_DEMO_ADMIN_USER", "FORGE_DEMO_ADMIN_PASSWORD"):
        monkeypatch.delenv(variable, raising=False)
    return calls


def test_serve_seeds_on_first_run(
    runner: FlaskCliRunner, app: Flask, served: list[tuple[Any, ...]]
) -> None:
    output = run(runner, "serve")
    assert "Applied the container registry's migrations" in output
    password = output.split("Created site admin 'admin' with password: ")[1].split()[0]
    assert "Created organisation 'demo' owned by 'admin'." in output
    assert f"skopeo login --tls-verify=false 127.0.0.1:5000 -u admin -p {password}" in output
    assert "docker login 127.0.0.1:5000" in output
    assert "docker://127.0.0.1:5000/demo/hello:latest" in output
    assert served == [("127.0.0.1", 5000)]
    with app.app_context():
        host = DemoHost()
        admin = host.authenticate("admin", password)
        demo = host.get_owner("demo")
        assert admin is not None and admin.is_admin and demo is not None
        assert host.access(admin, demo, "hello") == Access.ADMIN

    output = run(runner, "serve")
    assert "its password was printed on the first run" in output
    assert "-u admin -p PASSWORD" in output


def test_serve_takes_address_and_admin_from_the_environment(
    runner: FlaskCliRunner,
    app: Flask,
    served: list[tuple[Any, ...]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HOST", "0.0.0.0")
    monkeypatch.setenv("PORT", "8080")
    monkeypatch.setenv("FORGE_DEMO_ADMIN_USER", "boss")
    monkeypatch.setenv("FORGE_DEMO_ADMIN_PASSWORD", "first pass")
    output = run(runner, "serve")
    assert "-u boss -p 'first pass'" in output and "127.0.0.1:8080/demo/hello" in output
    monkeypatch.setenv("FORGE_DEMO_ADMIN_PASSWORD", "second")
    output = run(runner, "serve")
    assert "Reset the password of 'boss' from FORGE_DEMO_ADMIN_PASSWORD." in output
    assert served == [("0.0.0.0", 8080)] * 2
    with app.app_context():
        assert DemoHost().authenticate("boss", "first pass") is None
        assert DemoHost().authenticate("boss", "second") is not None
    monkeypatch.setenv("PORT", "http")
    assert "PORT must be a TCP port number" in run(runner, "serve", code=1)


def test_run_server_uses_gunicorn_gthread(app: Flask) -> None:
    from gunicorn.app.base import BaseApplication  # type: ignore[import-untyped]

    server = serve._gunicorn(BaseApplication, "127.0.0.1:5001")
    assert server.cfg.workers == 2
    assert server.cfg.threads == 8
    assert server.cfg.worker_class_str == "gthread"
    assert server.cfg.bind == ["127.0.0.1:5001"]
    assert serve.public_bind("::1") == "[::1]"


def test_run_server_falls_back_to_werkzeug(
    app: Flask, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls: list[tuple[Any, ...]] = []
    monkeypatch.setitem(sys.modules, "gunicorn.app.base", None)
    monkeypatch.setattr(
        "werkzeug.serving.run_simple", lambda *args, **kwargs: calls.append((args, kwargs))
    )
    serve.run_server(app, "127.0.0.1", 5002)
    assert calls == [(("127.0.0.1", 5002, app), {"threaded": True})]
    assert "gunicorn is not installed" in capsys.readouterr().err
