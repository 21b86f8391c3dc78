"""Live registries for the end-to-end tests: gunicorn serving the demo forge, real clients.

A :class:`Site` is a database of its own (a SQLite file, or a fresh PostgreSQL database with
``FORGE_TEST_DATABASE=postgresql``), an instance path and a storage path, seeded with users
in-process. A :class:`Server` is one gunicorn process serving a site; several may share one.
The log of every server goes to a file; a failing test shows its tail, and every test using
``live_registry`` fails if the server answered a 5xx or logged a traceback meanwhile.
"""

from __future__ import annotations

import base64
import dataclasses
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Generator, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
from redis import Redis
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

import forge_container
from forge_container import schema
from forge_container.demo import accounts, create_app, db
from forge_container_tests.conftest import POSTGRES_URL
from forge_container_tests.helpers import forget_keys
from forge_container_tests.s3_server import S3Server, new_prefix

REPO_ROOT = Path(forge_container.__file__).resolve().parents[1]
BIG_MARKER = "big: moves hundreds of MiB (256 MiB layer, 1 GiB blob); -m 'not big' skips them"
#: A server error in gunicorn's access log (the status follows the quoted request line).
SERVER_ERROR = re.compile(r'" 5\d\d |Traceback \(most recent call last\)')


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", BIG_MARKER)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Attach the tail of the servers' logs to the report of a failing test."""
    report: pytest.TestReport = yield
    if report.failed:
        for value in getattr(item, "funcargs", {}).values():
            servers = value if isinstance(value, list | tuple) else [value]
            for server in servers:
                if isinstance(server, Server):
                    report.sections.append((f"gunicorn log {server.host}", server.log_tail()))
    return report


# -- databases and sites ------------------------------------------------------------------------


@contextmanager
def fresh_database(directory: Path) -> Iterator[str]:
    """A database of its own: a SQLite file in ``directory``, or a new PostgreSQL database."""
    if os.environ.get("FORGE_TEST_DATABASE", "sqlite") != "postgresql":
        yield f"sqlite:///{directory / 'forge.db'}"
        return
    base = make_url(os.environ.get("FORGE_TEST_POSTGRES_URL") or POSTGRES_URL)
    name = f"fc_e2e_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield base.set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@dataclass(frozen=True)
class Site:
    """What the servers of one site share: database, paths, secret, and the seeded accounts.

    The account: ``alice``, who owns the images (her repository ``alice/private`` is private,
    so are the images under it); ``passwords`` has her password, ``tokens`` her personal
    access tokens ``write`` (``write:package``) and ``read`` (``read:package``).
    """

    database_url: str
    instance_path: Path
    storage_path: Path
    secret_key: str
    passwords: Mapping[str, str]
    tokens: Mapping[str, str]
    #: ``CONTAINER_REGISTRY_*`` keys of another storage backend (the S3 ones, say).
    storage_config: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def environment(self) -> dict[str, str]:
        """The environment a server of this site runs with (no other demo/registry keys)."""
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("FORGE_DEMO_", "CONTAINER_REGISTRY_"))
        }
        env.update(
            FORGE_DEMO_DATABASE_URL=self.database_url,
            FORGE_DEMO_INSTANCE_PATH=str(self.instance_path),
            FORGE_DEMO_SECRET_KEY=self.secret_key,
            CONTAINER_REGISTRY_STORAGE_PATH=str(self.storage_path),
            PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")])),
        )
        env.update(self.storage_config)
        return env


def _seed(site: Site) -> dict[str, str]:
    """Create the tables and accounts in-process, let go of every connection; the PATs."""
    with pytest.MonkeyPatch.context() as patch:
        for variable in list(os.environ):
            if variable.startswith(("FORGE_DEMO_", "CONTAINER_REGISTRY_")):
                patch.delenv(variable)
        patch.setenv("FORGE_DEMO_INSTANCE_PATH", str(site.instance_path))
        app = create_app(
            {
                "SQLALCHEMY_DATABASE_URI": site.database_url,
                "SECRET_KEY": site.secret_key,
                "FORGE_DEMO_PASSWORD_METHOD": "pbkdf2:sha256:1000",
                "CONTAINER_REGISTRY_STORAGE_PATH": str(site.storage_path),
            }
        )
    with app.app_context():
        db.create_all()
        schema.upgrade()
        for name, password in site.passwords.items():
            accounts.create_user(name, password)
        accounts.create_repo("alice", "private", private=True)
        tokens = {
            "write": accounts.create_token("alice", ["write:package"], name="e2e-write")[1],
            "read": accounts.create_token("alice", ["read:package"], name="e2e-read")[1],
        }
        db.session.remove()
        for engine in db.engines.values():
            engine.dispose()
    return tokens


@contextmanager
def redis_config(redis_url: str) -> Iterator[dict[str, str]]:
    """Config that gives a site Redis under a key prefix of its own; the keys its servers
    wrote are deleted at the end."""
    prefix = f"fc-e2e-{uuid.uuid4().hex}:"
    yield {"CONTAINER_REGISTRY_REDIS_URL": redis_url, "CONTAINER_REGISTRY_REDIS_KEY_PREFIX": prefix}
    client = Redis.from_url(redis_url)
    try:
        forget_keys(client, prefix)
    finally:
        client.close()


@contextmanager
def create_site(root: Path, storage_config: Mapping[str, Any] | None = None) -> Iterator[Site]:
    """A seeded site under ``root``; its database and stored blobs are removed at the end.

    ``storage_config`` (``CONTAINER_REGISTRY_*`` keys) stores blobs elsewhere than
    ``<root>/storage``.
    """
    root.mkdir(parents=True, exist_ok=True)
    with fresh_database(root) as url:
        site = Site(
            database_url=url,
            instance_path=root / "instance",
            storage_path=root / "storage",
            secret_key=uuid.uuid4().hex + uuid.uuid4().hex,
            passwords={"alice": "alice-e2e-password"},
            tokens={},
            storage_config={key: str(value) for key, value in (storage_config or {}).items()},
        )
        site = dataclasses.replace(site, tokens=_seed(site))
        try:
            yield site
        finally:
            shutil.rmtree(site.storage_path, ignore_errors=True)
            Path(root / "forge.db").unlink(missing_ok=True)


# -- servers ------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class Reply:
    """An HTTP response, read in full."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def send(
    url: str,
    method: str = "GET",
    *,
    headers: Mapping[str, str] | None = None,
    body: bytes | Iterable[bytes] = b"",
    length: int | None = None,
    timeout: float = 120,
) -> Reply:
    """One request on a new connection; an iterable body is streamed with ``length``."""
    assert isinstance(body, bytes) or length is not None, "a streamed body needs its length"
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.netloc, timeout=timeout)
    try:
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        connection.putrequest(method, path, skip_accept_encoding=True)
        all_headers = dict(headers or {})
        if isinstance(body, bytes):
            length = len(body)
        if length is not None:
            all_headers.setdefault("Content-Length", str(length))
        for name, value in all_headers.items():
            connection.putheader(name, value)
        connection.endheaders()
        for piece in [body] if isinstance(body, bytes) else body:
            if piece:
                connection.send(piece)
        response = connection.getresponse()
        return Reply(
            response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        )
    finally:
        connection.close()


def basic_auth(username: str, secret: str) -> dict[str, str]:
    raw = base64.b64encode(f"{username}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


@dataclass
class Server:
    """One gunicorn process serving a :class:`Site`."""

    site: Site
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def request(self, method: str, path: str, **kwargs: Any) -> Reply:
        return send(self.url + path, method, **kwargs)

    def token(self, user: str, scopes: Iterable[str] = (), secret: str | None = None) -> str:
        """A bearer token from ``/v2/token`` for ``user`` (password unless ``secret``)."""
        query = urlencode([("service", "forge-container"), *(("scope", s) for s in scopes)])
        reply = self.request(
            "GET",
            f"/v2/token?{query}",
            headers=basic_auth(user, secret or self.site.passwords[user]),
        )
        assert reply.status == 200, reply
        token: str = reply.json()["token"]
        return token

    def worker_pids(self) -> list[int]:
        """The gunicorn workers: the children of the master process."""
        children = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # The command name may hold spaces and parentheses: fields follow the last ')'.
            if int(stat.rsplit(")", 1)[1].split()[1]) == self.process.pid:
                children.append(int(entry.name))
        return sorted(children)

    def log_size(self) -> int:
        return self.log.stat().st_size

    def log_since(self, offset: int) -> str:
        """The log written after ``offset`` (see :meth:`log_size`)."""
        with self.log.open("rb") as handle:
            handle.seek(offset)
            return handle.read().decode(errors="replace")

    def log_until(self, offset: int, line: str, timeout: float = 30) -> str:
        """The log written after ``offset``, once it holds ``line`` (or ``timeout`` passed).

        gunicorn logs a request after its answer went out, so a client may be done before
        the log shows its last request.
        """
        deadline = time.monotonic() + timeout
        while line not in (log := self.log_since(offset)) and time.monotonic() < deadline:
            time.sleep(0.05)
        return log

    def errors_since(self, offset: int) -> list[str]:
        """Log lines after ``offset`` that show a 5xx answer or a traceback."""
        return [line for line in self.log_since(offset).splitlines() if SERVER_ERROR.search(line)]

    def log_tail(self, lines: int = 80) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def _wait_until_serving(server: Server, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise AssertionError(
                f"gunicorn exited with {server.process.returncode}:\n{server.log_tail()}"
            )
        try:
            if server.request("GET", "/v2/", timeout=5).status == 401:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"gunicorn on {server.host} does not answer:\n{server.log_tail()}")


@contextmanager
def watching(*servers: Server) -> Iterator[None]:
    """Fail unless the servers stay up and answer no 5xx (nor log a traceback) meanwhile."""
    offsets = [server.log_size() for server in servers]
    yield
    for server, offset in zip(servers, offsets, strict=True):
        assert server.process.poll() is None, f"gunicorn on {server.host} died"
        errors = server.errors_since(offset)
        assert not errors, f"server errors on {server.host}:\n" + "\n".join(errors)


@contextmanager
def running(site: Site, log: Path, *, workers: int = 4, threads: int = 4) -> Iterator[Server]:
    """``gunicorn -k gthread`` on a free port, from when it answers ``/v2/`` until the end."""
    port = free_port()
    command = [
        *(sys.executable, "-m", "gunicorn", "-k", "gthread", "-b", f"127.0.0.1:{port}"),
        *("-w", str(workers), "--threads", str(threads)),
        *("--timeout", "300", "--graceful-timeout", "5", "--keep-alive", "15"),
        *("--access-logfile", "-"),
        "forge_container.demo:create_app()",
    ]
    # A home of its own: gunicorn >= 23 puts a control socket there, one per server.
    home = log.parent / f"home-{port}"
    home.mkdir()
    env = {**site.environment(), "HOME": str(home)}
    env.pop("XDG_RUNTIME_DIR", None)
    with log.open("ab") as out:
        process = subprocess.Popen(command, env=env, cwd=home, stdout=out, stderr=subprocess.STDOUT)
    server = Server(site=site, process=process, port=port, log=log)
    try:
        _wait_until_serving(server)
        yield server
    finally:
        server.stop()


# -- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def registry_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """One seeded site per test module."""
    with create_site(tmp_path_factory.mktemp("site")) as site:
        yield site


@pytest.fixture(scope="module")
def registry_server(registry_site: Site) -> Iterator[Server]:
    """``gunicorn -k gthread -w 4 --threads 4`` on the module's site."""
    with running(registry_site, registry_site.instance_path.parent / "gunicorn.log") as server:
        yield server


@pytest.fixture
def live_registry(registry_server: Server) -> Iterator[Server]:
    """The module's live server; the test fails if it answers a 5xx meanwhile."""
    with watching(registry_server):
        yield registry_server


@pytest.fixture(scope="module")
def s3_registry_site(
    tmp_path_factory: pytest.TempPathFactory, s3_server: S3Server
) -> Iterator[Site]:
    """One seeded site per test module storing its blobs on the session's S3 server."""
    config = s3_server.config(new_prefix())
    with create_site(tmp_path_factory.mktemp("s3-site"), config) as site:
        yield site


@pytest.fixture(scope="module")
def s3_registry_server(s3_registry_site: Site) -> Iterator[Server]:
    """``gunicorn -k gthread -w 4 --threads 4`` on the module's S3 site."""
    with running(
        s3_registry_site, s3_registry_site.instance_path.parent / "gunicorn.log"
    ) as server:
        yield server


@pytest.fixture(params=["filesystem", "s3"])
def live_registry_on(request: pytest.FixtureRequest) -> Iterator[Server]:
    """A live server on each storage backend in turn (one per backend and module); the test
    fails if it answers a 5xx meanwhile."""
    fixture = "registry_server" if request.param == "filesystem" else "s3_registry_server"
    server: Server = request.getfixturevalue(fixture)
    with watching(server):
        yield server


@pytest.fixture
def skopeo_path() -> str:
    """skopeo from the distribution (``.ci/ensure-tools`` installs it)."""
    path = shutil.which("skopeo")
    if path is None:
        pytest.fail("the end-to-end tests need skopeo: apt-get install skopeo")
    return path
