"""The README's start command: ``demo serve`` migrates, seeds, prints, and serves for real."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, process: subprocess.Popen[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"serve exited early with {process.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise AssertionError(f"nothing listens on port {port} after {timeout} s")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    port = free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("FORGE_DEMO_", "CONTAINER_REGISTRY_"))
    }
    env.update(
        HOST="127.0.0.1",
        PORT=str(port),
        FORGE_DEMO_INSTANCE_PATH=str(tmp_path / "instance"),
        FORGE_DEMO_ADMIN_USER="root",
        FORGE_DEMO_ADMIN_PASSWORD="correct horse",
    )
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", "forge_container.demo", "demo", "serve"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            wait_for_port(port, process)
            yield port, log
        finally:
            process.terminate()
            process.wait(timeout=30)


def fetch(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_serve_answers_v2_with_the_challenge_and_the_seeded_admin_logs_in(
    served: tuple[int, Path],
) -> None:
    port, log = served
    base = f"http://127.0.0.1:{port}"
    status, headers, body = fetch(f"{base}/v2/")
    assert status == 401
    assert headers["WWW-Authenticate"] == (
        f'Bearer realm="{base}/v2/token",service="forge-container"'
    )
    assert headers["Docker-Distribution-API-Version"] == "registry/2.0"
    assert json.loads(body)["errors"][0]["code"] == "UNAUTHORIZED"

    basic = base64.b64encode(b"root:correct horse").decode()
    status, _, body = fetch(f"{base}/v2/token", {"Authorization": f"Basic {basic}"})
    assert status == 200
    token = json.loads(body)["token"]
    status, _, _ = fetch(f"{base}/v2/", {"Authorization": f"Bearer {token}"})
    assert status == 200

    output = log.read_text()
    assert "Created site admin 'root' with password: correct horse" in output
    assert f"skopeo login --tls-verify=false 127.0.0.1:{port}" in output
    assert (Path(log.parent) / "instance" / "forge.db").exists()
