"""``demo serve`` runs the registry's cleanup jobs periodically, with no Redis or cron."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask

import forge_container
from forge_container.demo.serve import PeriodicCleanup


def wait_for(condition: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


def test_it_runs_at_once_then_every_interval(tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    runner = PeriodicCleanup(0.2, [sys.executable, "-c", f"open({str(marks)!r}, 'a').write('x')"])

    runner.start()
    try:
        wait_for(lambda: marks.exists() and len(marks.read_text()) >= 3)
    finally:
        runner.stop(timeout=30)

    assert runner.runs >= 3


def test_a_failed_run_is_reported_and_the_next_one_comes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    runner = PeriodicCleanup(0.1, [sys.executable, "-c", "raise SystemExit(3)"])

    runner.start()
    try:
        wait_for(lambda: runner.runs >= 2)
    finally:
        runner.stop(timeout=30)

    assert "The periodic cleanup failed (3); next try later." in capsys.readouterr().err


def test_it_runs_flask_container_cleanup_on_the_demo(
    app: Flask,
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("FORGE_DEMO_DATABASE_URL", database_url)
    monkeypatch.setenv("FORGE_DEMO_SECRET_KEY", app.config["SECRET_KEY"])
    monkeypatch.setenv(
        "CONTAINER_REGISTRY_STORAGE_PATH", app.config["CONTAINER_REGISTRY_STORAGE_PATH"]
    )
    runner = PeriodicCleanup(3600)

    runner.start()
    try:
        wait_for(lambda: runner.runs >= 1, timeout=60)
    finally:
        runner.stop(timeout=30)

    out, err = capfd.readouterr()
    assert "Garbage collection: 0 untagged manifests" in out, err
    assert "Running the registry's cleanup jobs every 3600 s." in err


def test_demo_serve_runs_the_cleanup_jobs_as_soon_as_it_serves(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("FORGE_DEMO_", "CONTAINER_REGISTRY_"))
    }
    root = str(Path(forge_container.__file__).resolve().parents[1])
    env.update(
        HOST="127.0.0.1",
        PORT=str(port),
        FORGE_DEMO_INSTANCE_PATH=str(tmp_path / "instance"),
        PYTHONPATH=os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")])),
    )
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", "forge_container.demo", "demo", "serve"],
            env=env,
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(
            lambda: "Garbage collection:" in log.read_text() or process.poll() is not None,
            timeout=90,
        )
    finally:
        process.terminate()
        process.wait(timeout=30)

    text = log.read_text()
    assert "Running the registry's cleanup jobs every 3600 s." in text
    assert "Expired uploads: 0 sessions, 0 orphan files; freed 0 B." in text
