"""nginx in front of two gunicorn nodes, with the documented config, sends blobs itself.

The app runs with ``CONTAINER_REGISTRY_BLOB_OFFLOAD = "x-accel-redirect"``; nginx runs the
server block of ``docs/examples/nginx.conf`` with only the addresses and paths replaced, so the
documented config is the tested one. Proof that nginx sent the bytes: gunicorn's access log
shows the blob GET with an empty body, while the client got every byte.
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.client
import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import NamedTuple

import pytest

from forge_container_tests.e2e import layouts
from forge_container_tests.e2e.conftest import (
    Server,
    Site,
    basic_auth,
    create_site,
    free_port,
    running,
    watching,
)

DOCUMENTED_CONFIG = Path(__file__).resolve().parents[2] / "docs" / "examples" / "nginx.conf"
PREFIX = "/_container_blobs/"

# What the test wraps around the documented server block: nginx in the foreground as one
# process (so it runs as whoever runs the tests), every file in the test's directory.
MAIN_CONFIG = """\
daemon off;
master_process off;
worker_processes 1;
pid {root}/nginx.pid;
events {{ worker_connections 256; }}
http {{
    access_log {root}/access.log;
    client_body_temp_path {root}/client_body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    default_type application/octet-stream;
    sendfile on;

{server}
}}
"""


@dataclasses.dataclass(frozen=True)
class OffloadingSite(Site):
    """A :class:`Site` whose servers hand whole-blob downloads to nginx."""

    def environment(self) -> dict[str, str]:
        return {
            **super().environment(),
            "CONTAINER_REGISTRY_BLOB_OFFLOAD": "x-accel-redirect",
            "CONTAINER_REGISTRY_BLOB_OFFLOAD_PREFIX": PREFIX,
            "CONTAINER_REGISTRY_PROXY_COUNT": "1",
        }


def render(documented: str, *, port: int, nodes: tuple[Server, Server], storage: Path) -> str:
    """The documented server block with the test's addresses and paths, nothing else changed."""
    replacements = {
        "listen 443 ssl;": f"listen 127.0.0.1:{port};",
        "server 10.0.0.11:8000;": f"server {nodes[0].host};",
        "server 10.0.0.12:8000;": f"server {nodes[1].host};",
        "alias /srv/forge/registry/blobs/;": f"alias {storage.resolve()}/blobs/;",
    }
    text = documented
    for old, new in replacements.items():
        assert text.count(old) == 1, f"the documented config no longer holds {old!r}"
        text = text.replace(old, new)
    # No TLS in the test: the certificate lines go.
    lines = text.splitlines()
    kept = [line for line in lines if not line.strip().startswith("ssl_certificate")]
    assert len(lines) - len(kept) == 2, "the documented config should name a certificate and key"
    return "\n".join(kept)


def nginx_binary() -> str:
    path = shutil.which("nginx") or (
        "/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None
    )
    if path is None:
        pytest.skip(
            "nginx is not installed (apt-get install nginx-light; .ci/ensure-tools does as root)"
        )
    return path


@contextmanager
def nginx(site: Site, nodes: tuple[Server, Server], root: Path) -> Iterator[Server]:
    """nginx on a free port in front of ``nodes``, as a :class:`Server` of ``site``."""
    binary = nginx_binary()
    root.mkdir()
    port = free_port()
    server_block = render(
        DOCUMENTED_CONFIG.read_text(), port=port, nodes=nodes, storage=site.storage_path
    )
    config = root / "nginx.conf"
    config.write_text(MAIN_CONFIG.format(root=root, server=server_block))
    log = root / "error.log"
    checked = subprocess.run(
        [binary, "-t", "-p", str(root), "-c", str(config), "-e", str(log)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert checked.returncode == 0, checked.stderr
    with log.open("ab") as out:
        process = subprocess.Popen(
            [binary, "-p", str(root), "-c", str(config), "-e", str(log)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    front = Server(site=site, process=process, port=port, log=log)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, f"nginx exited:\n{front.log_tail()}"
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert time.monotonic() < deadline, f"nginx does not listen:\n{front.log_tail()}"
            time.sleep(0.1)
        yield front
    finally:
        front.stop()


class Deployment(NamedTuple):
    """nginx (``front``) in front of two app nodes sharing one site.

    A tuple of servers, so a failing test's report shows the logs of all three.
    """

    front: Server
    first: Server
    second: Server

    @property
    def nodes(self) -> tuple[Server, Server]:
        return self.first, self.second

    def log_sizes(self) -> list[int]:
        return [node.log_size() for node in self.nodes]

    def app_answers(
        self, sizes: list[int], method: str, path: str, count: int
    ) -> list[tuple[int, str]]:
        """``(status, body bytes)`` of the nodes' answers to ``method`` on the paths matching
        the regular expression ``path`` since ``sizes``, once there are ``count`` of them
        (gunicorn logs a request after its answer went out)."""
        pattern = re.compile(rf'"{method} {path} HTTP/1\.[01]" (\d{{3}}) (\S+)')
        deadline = time.monotonic() + 30
        while True:
            log = "".join(
                node.log_since(size) for node, size in zip(self.nodes, sizes, strict=True)
            )
            found = [(int(status), size) for status, size in pattern.findall(log)]
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.1)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    nginx_binary()  # skip before building anything
    root = tmp_path_factory.mktemp("nginx-site")
    with create_site(root) as plain, ExitStack() as stack:
        site = OffloadingSite(**{f.name: getattr(plain, f.name) for f in dataclasses.fields(plain)})
        nodes = (
            stack.enter_context(running(site, root / "node-1.log", workers=1, threads=4)),
            stack.enter_context(running(site, root / "node-2.log", workers=1, threads=4)),
        )
        front = stack.enter_context(nginx(site, nodes, root / "nginx"))
        yield Deployment(front, *nodes)


@pytest.fixture
def live(deployment: Deployment) -> Iterator[Deployment]:
    """The deployment; the test fails if a node answers a 5xx or logs a traceback meanwhile."""
    with watching(*deployment.nodes):
        yield deployment


def fetch(
    front: Server, method: str, path: str, headers: dict[str, str]
) -> tuple[int, list[tuple[str, str]], bytes]:
    """One request through nginx; the headers as sent, repeated ones included."""
    connection = http.client.HTTPConnection(front.host, timeout=120)
    try:
        connection.request(method, path, headers=headers)
        response = connection.getresponse()
        return response.status, response.getheaders(), response.read()
    finally:
        connection.close()


def values(headers: list[tuple[str, str]], name: str) -> list[str]:
    return [value for key, value in headers if key.lower() == name.lower()]


def alice(front: Server) -> dict[str, str]:
    return basic_auth("alice", front.site.passwords["alice"])


def push_blob(front: Server, image: str, data: bytes) -> str:
    """A monolithic upload through nginx; the digest."""
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    reply = front.request(
        "POST",
        f"/v2/{image}/blobs/uploads/?digest={digest}",
        headers={**alice(front), "Content-Type": "application/octet-stream"},
        body=data,
    )
    assert reply.status == 201, reply
    return digest


def test_nginx_sends_whole_blobs_with_the_registry_headers(live: Deployment) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    digest = push_blob(live.front, "alice/offload", data)
    path = f"/v2/alice/offload/blobs/{digest}"
    sizes = live.log_sizes()

    status, headers, body = fetch(live.front, "GET", path, alice(live.front))

    assert status == 200
    assert "sha256:" + hashlib.sha256(body).hexdigest() == digest
    assert values(headers, "Content-Length") == [str(len(data))]
    assert values(headers, "Docker-Content-Digest") == [digest]
    assert values(headers, "ETag") == [f'"{digest}"']
    assert values(headers, "Content-Type") == ["application/octet-stream"]
    assert values(headers, "Accept-Ranges") == ["bytes"]
    assert values(headers, "Cache-Control") == ["max-age=31536000"]
    assert values(headers, "X-Accel-Redirect") == []
    # The app answered 200 with an empty body; nginx sent the bytes.
    assert live.app_answers(sizes, "GET", re.escape(path), 1) == [(200, "0")]


def test_ranges_head_and_304_are_answered_by_the_app(live: Deployment) -> None:
    data = os.urandom(100_000)
    digest = push_blob(live.front, "alice/ranges", data)
    path = f"/v2/alice/ranges/blobs/{digest}"
    sizes = live.log_sizes()

    status, headers, body = fetch(
        live.front, "GET", path, {**alice(live.front), "Range": "bytes=10-99"}
    )
    assert (status, body) == (206, data[10:100])
    assert values(headers, "Content-Range") == [f"bytes 10-99/{len(data)}"]
    status, headers, body = fetch(live.front, "HEAD", path, alice(live.front))
    assert (status, body) == (200, b"")
    assert values(headers, "Content-Length") == [str(len(data))]
    assert values(headers, "Docker-Content-Digest") == [digest]
    status, headers, body = fetch(
        live.front, "GET", path, {**alice(live.front), "If-None-Match": f'"{digest}"'}
    )
    assert (status, body) == (304, b"")

    answers = live.app_answers(sizes, "GET", re.escape(path), 2)
    assert sorted(answers) == [(206, "90"), (304, "0")]


def test_the_internal_location_is_not_reachable_from_outside(live: Deployment) -> None:
    digest = push_blob(live.front, "alice/hidden", b"not for you")
    hexdigest = digest.removeprefix("sha256:")
    status, _, body = fetch(
        live.front, "GET", f"{PREFIX}sha256/{hexdigest[:2]}/{hexdigest}", alice(live.front)
    )
    assert status == 404
    assert b"not for you" not in body


def test_access_is_decided_before_nginx_sends_anything(live: Deployment) -> None:
    digest = push_blob(live.front, "alice/private/app", b"private bytes")
    path = f"/v2/alice/private/app/blobs/{digest}"
    status, headers, body = fetch(live.front, "GET", path, {})
    assert status == 401
    assert b"private bytes" not in body
    assert values(headers, "WWW-Authenticate")
    status, _, body = fetch(live.front, "GET", path, alice(live.front))
    assert (status, body) == (200, b"private bytes")


def test_skopeo_pushes_and_pulls_an_image_through_nginx(live: Deployment, tmp_path: Path) -> None:
    skopeo = shutil.which("skopeo")
    if skopeo is None:
        pytest.fail("the end-to-end tests need skopeo: apt-get install skopeo")
    source = layouts.single_image(
        tmp_path / "src", "v1", seed=21, sizes=((4096, 50_000), (1_500_000,))
    )
    home = tmp_path / "home"
    (home / "run").mkdir(parents=True)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "XDG_RUNTIME_DIR": str(home / "run"),
        "REGISTRY_AUTH_FILE": str(home / "auth.json"),
    }
    creds = f"alice:{live.front.site.passwords['alice']}"
    ref = f"docker://{live.front.host}/alice/through-nginx:v1"

    def copy(*args: str) -> None:
        result = subprocess.run(
            [skopeo, "--command-timeout", "300s", "copy", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert result.returncode == 0, result.stderr

    copy("--dest-tls-verify=false", f"--dest-creds={creds}", f"oci:{source.root}:v1", ref)
    sizes = live.log_sizes()
    copy("--src-tls-verify=false", f"--src-creds={creds}", ref, f"oci:{tmp_path / 'pulled'}:v1")
    pulled = layouts.Layout(tmp_path / "pulled")
    assert pulled.digests("v1") == source.digests("v1")
    pulled.verify("v1")
    # Every blob skopeo pulled left the app as an empty 200: nginx sent the bytes.
    blobs = len(source.digests("v1")) - 1  # every digest but the manifest's
    blob_gets = live.app_answers(sizes, "GET", r"/v2/alice/through-nginx/blobs/\S+", blobs)
    assert len(blob_gets) == blobs
    assert set(blob_gets) == {(200, "0")}
