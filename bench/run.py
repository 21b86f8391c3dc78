"""forge-container against CNCF Distribution: the same workload, the same machine, one table.

``python bench/run.py [--quick] [--profile]`` (with the project's venv). It creates a fresh
PostgreSQL database and a temp dir, starts our registry (gunicorn ``-k gthread -w 4
--threads 4`` serving the demo forge, bearer tokens from ``/v2/token``) and Distribution
(``docker-registry serve``, filesystem storage, no auth) on free loopback ports, runs every
workload against both (alternating which goes first), prints the table, and removes it all.
Both servers receive the same requests with the same bytes, the ``Authorization`` header
included (Distribution ignores it). ``--profile`` runs cProfile inside our workers instead.
See ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import atexit
import base64
import cProfile
import hashlib
import http.client
import io
import json
import os
import platform
import pstats
import random
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

MIB = 1024 * 1024
GIB = 1024 * MIB
POSTGRES_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/")
#: Redis for our server, as a deployment with several workers has it (jobs, shared limits,
#: the tag lookup cache); an empty value runs without Redis.
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
USER, PASSWORD = "alice", "alice-bench-password"
#: gunicorn's shape for our server; ``--workers`` and ``--threads`` change it for one run.
WORKERS, THREADS = int(os.environ.get("BENCH_WORKERS", 4)), int(os.environ.get("BENCH_THREADS", 4))
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
ACCEPT = ", ".join(
    [
        OCI_MANIFEST,
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ]
)
#: How much a worker's peak RSS may grow over the run and still count as flat (as the e2e test).
FLAT_RSS = 64 * MIB
CLOCK_TICK = os.sysconf("SC_CLK_TCK")
#: A server error in gunicorn's access log (the status follows the quoted request line).
SERVER_ERROR = re.compile(r'" 5\d\d |Traceback \(most recent call last\)')


@dataclass(frozen=True)
class Plan:
    blob_size: int
    rounds: int
    get_seconds: float
    levels: tuple[int, ...]
    images: int
    image_concurrency: int = 8
    chunk: int = 8 * MIB


FULL = Plan(blob_size=GIB, rounds=3, get_seconds=10.0, levels=(1, 8, 32), images=200)
QUICK = Plan(blob_size=128 * MIB, rounds=1, get_seconds=3.0, levels=(1, 8, 32), images=50)


# -- content ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Blob:
    """``size`` bytes made on the fly in 1 MiB pieces from ``seed``; never held in memory."""

    seed: int
    size: int
    digest: str

    @classmethod
    def make(cls, seed: int, size: int) -> Blob:
        assert size % MIB == 0
        digest = hashlib.sha256()
        for piece in _pieces(seed, 0, size):
            digest.update(piece)
        return cls(seed, size, "sha256:" + digest.hexdigest())

    def pieces(self, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        return _pieces(self.seed, start, self.size if end is None else end)


def _pieces(seed: int, start: int, end: int) -> Iterator[bytes]:
    base = random.Random(seed).randbytes(MIB)
    for index in range(start // MIB, end // MIB):
        yield index.to_bytes(8, "big") + base[8:]


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Image:
    """A small image: a config, one layer, and the manifest naming both."""

    name: str
    config: bytes
    layer: bytes
    manifest: bytes

    @classmethod
    def make(cls, name: str, index: int, layer_size: int = 16 * 1024) -> Image:
        layer = random.Random(index).randbytes(layer_size)
        config = json.dumps(
            {
                "architecture": "amd64",
                "os": "linux",
                "config": {"Labels": {"bench.index": str(index)}},
                "rootfs": {"type": "layers", "diff_ids": [sha256(layer)]},
                "history": [{"created_by": f"bench layer {index}"}],
            }
        ).encode()
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": sha256(config),
                    "size": len(config),
                },
                "layers": [
                    {
                        "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                        "digest": sha256(layer),
                        "size": len(layer),
                    }
                ],
            }
        ).encode()
        return cls(name, config, layer, manifest)


# -- HTTP ---------------------------------------------------------------------------------------


class BenchError(RuntimeError):
    """A server answered something a registry must not: the numbers would mean nothing."""


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


class Client:
    """One keep-alive connection (``http.client`` reconnects if the server closed it)."""

    def __init__(self, port: int, timeout: float = 300) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)

    def close(self) -> None:
        self.connection.close()

    def send(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        body: bytes | Iterable[bytes] = b"",
        length: int | None = None,
    ) -> http.client.HTTPResponse:
        all_headers = dict(headers)
        all_headers["Content-Length"] = str(len(body) if isinstance(body, bytes) else length)
        self.connection.request(method, path, body=body, headers=all_headers)
        return self.connection.getresponse()

    def call(self, method: str, path: str, headers: dict[str, str], **kwargs: Any) -> Reply:
        response = self.send(method, path, headers, **kwargs)
        body = response.read()
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, body)

    def expect(
        self, status: int, method: str, path: str, headers: dict[str, str], **kw: Any
    ) -> Reply:
        reply = self.call(method, path, headers, **kw)
        if reply.status != status:
            raise BenchError(
                f"{method} {path}: {reply.status}, expected {status}: {reply.body[:300]!r}"
            )
        return reply


def location(reply: Reply, digest: str | None = None) -> str:
    """The ``Location`` as a path (Distribution answers absolute URLs), ``digest`` added."""
    parts = urlsplit(reply.headers["location"])
    query = "&".join(filter(None, [parts.query, digest and urlencode({"digest": digest})]))
    return parts.path + (f"?{query}" if query else "")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# -- processes ----------------------------------------------------------------------------------


def _stat(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def cpu_times(pids: Iterable[int]) -> dict[int, float]:
    """User + system CPU seconds of each of ``pids`` still alive."""
    times = {}
    for pid in pids:
        try:
            fields = _stat(pid)
        except OSError:
            continue
        times[pid] = (int(fields[11]) + int(fields[12])) / CLOCK_TICK
    return times


def machine_busy() -> float:
    """CPU seconds the whole machine has spent busy (all cores, all processes)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(values) - values[3] - values[4]) / CLOCK_TICK


def processes(match: Callable[[Path], bool]) -> list[int]:
    """The pids whose ``/proc/<pid>`` entry ``match`` accepts."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and match(entry):
                found.append(int(entry.name))
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
    return sorted(found)


def backends(database: str) -> list[int]:
    """The PostgreSQL backends connected to ``database`` (by their process title)."""
    marker = f"postgres: postgres {database} ".encode()
    return processes(lambda entry: (entry / "cmdline").read_bytes().startswith(marker))


def redis_servers() -> list[int]:
    """The ``redis-server`` processes (by name): when ours uses Redis, its CPU is ours too."""
    return processes(lambda entry: (entry / "comm").read_text().strip() == "redis-server")


def children(parent: int) -> list[int]:
    return processes(lambda entry: int(_stat(int(entry.name))[1]) == parent)


def peak_rss(pid: int) -> int:
    """``VmHWM`` of a process, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise BenchError(f"no VmHWM for {pid}")


@dataclass
class Server:
    """A registry under test: its process, how to reach it, and which pids to measure."""

    label: str
    process: subprocess.Popen[bytes]
    port: int
    log: Path
    forked: bool  # gunicorn: measure the workers (children), not the master
    database: str | None = None  # its PostgreSQL backends count as part of the server
    redis: bool = False  # and so does Redis, when it uses it

    def pids(self) -> list[int]:
        return children(self.process.pid) if self.forked else [self.process.pid]

    def cpu(self) -> dict[int, float]:
        """CPU seconds per process of the whole stack: master, workers, database backends
        and Redis."""
        return cpu_times(
            {
                self.process.pid,
                *self.pids(),
                *(backends(self.database) if self.database else []),
                *(redis_servers() if self.redis else []),
            }
        )

    def peak_rss(self) -> int:
        return max(peak_rss(pid) for pid in self.pids())

    def wait_until_serving(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BenchError(f"{self.label} exited:\n{self.log.read_text()[-3000:]}")
            try:
                client = Client(self.port, timeout=5)
                if client.call("GET", "/v2/", {}).status in (200, 401):
                    client.close()
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise BenchError(f"{self.label} does not answer /v2/")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


@contextmanager
def fresh_database() -> Iterator[str]:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    base = make_url(POSTGRES_URL)
    name = f"fc_bench_{uuid.uuid4().hex[:12]}"
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


def site_environment(root: Path, database_url: str, secret: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("FORGE_DEMO_", "CONTAINER_REGISTRY_"))
    }
    env.update(
        FORGE_DEMO_DATABASE_URL=database_url,
        FORGE_DEMO_INSTANCE_PATH=str(root / "instance"),
        FORGE_DEMO_SECRET_KEY=secret,
        FORGE_DEMO_PASSWORD_METHOD="pbkdf2:sha256:1000",
        CONTAINER_REGISTRY_STORAGE_PATH=str(root / "ours-storage"),
        CONTAINER_REGISTRY_REDIS_KEY_PREFIX=f"fc-bench-{secrets.token_hex(4)}:",
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")])),
    )
    if REDIS_URL:
        env["CONTAINER_REGISTRY_REDIS_URL"] = REDIS_URL
    return env


def forget_redis_keys(prefix: str, url: str = REDIS_URL) -> None:
    """Delete what our server left in Redis under this run's key prefix."""
    from redis import Redis

    client = Redis.from_url(url)
    for key in client.scan_iter(match=prefix + "*"):
        client.delete(key)
    client.close()


def seed(env: dict[str, str]) -> None:
    """Tables and the user, in a child process so this one holds no app and no connection."""
    code = (
        "from forge_container import schema\n"
        "from forge_container.demo import accounts, create_app, db\n"
        "app = create_app()\n"
        "with app.app_context():\n"
        "    db.create_all(); schema.upgrade()\n"
        f"    accounts.create_user({USER!r}, {PASSWORD!r})\n"
    )
    subprocess.run([sys.executable, "-c", code], env=env, check=True, cwd=REPO_ROOT)


def start_ours(root: Path, env: dict[str, str], profile_dir: Path | None = None) -> Server:
    port = free_port()
    app = "forge_container.demo:create_app()"
    command = [
        *(
            sys.executable,
            "-m",
            "gunicorn",
            "-k",
            os.environ.get("BENCH_WORKER_CLASS", "gthread"),
            "-b",
            f"127.0.0.1:{port}",
        ),
        *("-w", str(WORKERS), "--threads", str(THREADS)),
        *("--timeout", "300", "--graceful-timeout", "5", "--keep-alive", "15"),
        *("--access-logfile", "-"),
    ]
    home = root / f"home-{port}"
    home.mkdir()
    env = {**env, "HOME": str(home)}
    env.pop("XDG_RUNTIME_DIR", None)
    if profile_dir is not None:
        env["BENCH_PROFILE_DIR"] = str(profile_dir)
        command += ["--pythonpath", str(Path(__file__).parent)]
        app = "run:profiled_app()"
    log = root / f"ours-{port}.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [*command, app], env=env, cwd=home, stdout=out, stderr=subprocess.STDOUT
        )
    database = urlsplit(env["FORGE_DEMO_DATABASE_URL"]).path.lstrip("/")
    server = Server(
        "forge-container", process, port, log, forked=True, database=database, redis=bool(REDIS_URL)
    )
    server.wait_until_serving()
    return server


def start_distribution(root: Path) -> Server:
    port = free_port()
    config = root / "distribution.yml"
    # JSON is YAML: Distribution reads this as its config.yml.
    config.write_text(
        json.dumps(
            {
                "version": 0.1,
                "log": {"level": "info", "fields": {"service": "registry"}},
                "storage": {
                    "cache": {"blobdescriptor": "inmemory"},
                    "filesystem": {"rootdirectory": str(root / "distribution-storage")},
                    "delete": {"enabled": True},
                },
                "http": {
                    "addr": f"127.0.0.1:{port}",
                    "headers": {"X-Content-Type-Options": ["nosniff"]},
                },
            }
        )
    )
    log = root / "distribution.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            ["docker-registry", "serve", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=root,
        )
    server = Server("Distribution", process, port, log, forked=False)
    server.wait_until_serving()
    return server


def profiled_app() -> Any:
    """The demo app for gunicorn, each request under cProfile when ``BENCH_PROFILE_DIR`` is set.

    CPU time of the request's thread (so waits for the GIL or the database do not count).
    One profiler per thread (cProfile sees only its own thread); merged into
    ``<dir>/worker-<pid>.prof`` when the worker exits.
    """
    from forge_container.demo import create_app

    app = create_app()
    directory = os.environ.get("BENCH_PROFILE_DIR")
    if not directory:
        return app
    local = threading.local()
    profiles: list[cProfile.Profile] = []
    lock = threading.Lock()

    def dump() -> None:
        with lock:
            if profiles:
                stats = pstats.Stats(*profiles)
                stats.dump_stats(os.path.join(directory, f"worker-{os.getpid()}.prof"))

    atexit.register(dump)

    def wsgi(environ: dict[str, Any], start_response: Any) -> Any:
        profile = getattr(local, "profile", None)
        if profile is None:
            profile = local.profile = cProfile.Profile(time.thread_time)
            with lock:
                profiles.append(profile)
        profile.enable()
        try:
            return app(environ, start_response)
        finally:
            profile.disable()

    return wsgi


# -- workloads ----------------------------------------------------------------------------------


class Auth:
    """Bearer tokens from our ``/v2/token``; the same header goes to both servers."""

    def __init__(self, ours: Server) -> None:
        self.port = ours.port
        self.basic = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()

    def headers(self, name: str, actions: str = "pull,push,delete") -> dict[str, str]:
        query = urlencode({"service": "forge-container", "scope": f"repository:{name}:{actions}"})
        client = Client(self.port)  # a new connection: the last one may have idled out
        reply = client.expect(200, "GET", f"/v2/token?{query}", {"Authorization": self.basic})
        client.close()
        return {"Authorization": "Bearer " + json.loads(reply.body)["token"]}


def push_monolithic(server: Server, name: str, blob: Blob, auth: dict[str, str]) -> float:
    """POST a session, then one PUT with the whole body and ``?digest=``; seconds."""
    client = Client(server.port)
    started = time.perf_counter()
    opened = client.expect(202, "POST", f"/v2/{name}/blobs/uploads/", auth)
    headers = {**auth, "Content-Type": "application/octet-stream"}
    done = client.expect(
        201, "PUT", location(opened, blob.digest), headers, body=blob.pieces(), length=blob.size
    )
    elapsed = time.perf_counter() - started
    client.close()
    if done.headers.get("docker-content-digest") != blob.digest:
        raise BenchError(f"{server.label} stored {done.headers} for {blob.digest}")
    return elapsed


def push_chunked(server: Server, name: str, blob: Blob, auth: dict[str, str], chunk: int) -> float:
    """POST, one PATCH per ``chunk`` bytes with ``Content-Range``, then ``PUT ?digest=``."""
    client = Client(server.port)
    headers = {**auth, "Content-Type": "application/octet-stream"}
    started = time.perf_counter()
    reply = client.expect(202, "POST", f"/v2/{name}/blobs/uploads/", auth)
    for start in range(0, blob.size, chunk):
        end = min(start + chunk, blob.size)
        reply = client.expect(
            202,
            "PATCH",
            location(reply),
            {**headers, "Content-Range": f"{start}-{end - 1}"},
            body=blob.pieces(start, end),
            length=end - start,
        )
    client.expect(201, "PUT", location(reply, blob.digest), auth)
    elapsed = time.perf_counter() - started
    client.close()
    return elapsed


def pull(server: Server, name: str, blob: Blob, auth: dict[str, str]) -> float:
    """GET the blob, read into one 1 MiB buffer (no hashing: the client must not be the limit)."""
    client = Client(server.port)
    buffer = memoryview(bytearray(MIB))
    started = time.perf_counter()
    response = client.send("GET", f"/v2/{name}/blobs/{blob.digest}", auth)
    received = 0
    while count := response.readinto(buffer):
        received += count
    elapsed = time.perf_counter() - started
    client.close()
    digest = response.getheader("Docker-Content-Digest")
    if response.status != 200 or received != blob.size or digest != blob.digest:
        raise BenchError(f"{server.label} pull: {response.status}, {received} bytes, {digest}")
    return elapsed


def push_image(client: Client, image: Image, auth: dict[str, str]) -> None:
    """What docker does for a new image: HEAD, POST, PUT per blob, then the manifest."""
    for blob in (image.config, image.layer):
        digest = sha256(blob)
        client.expect(404, "HEAD", f"/v2/{image.name}/blobs/{digest}", auth)
        opened = client.expect(202, "POST", f"/v2/{image.name}/blobs/uploads/", auth)
        headers = {**auth, "Content-Type": "application/octet-stream"}
        client.expect(201, "PUT", location(opened, digest), headers, body=blob)
    headers = {**auth, "Content-Type": OCI_MANIFEST}
    client.expect(201, "PUT", f"/v2/{image.name}/manifests/latest", headers, body=image.manifest)


@dataclass
class Rate:
    """Requests done by a timed, concurrent run, and what the server spent on them."""

    count: int
    seconds: float
    cpu: float
    client_cpu: float
    machine_cpu: float
    latencies: list[float] = field(default_factory=list)

    @property
    def per_second(self) -> float:
        return self.count / self.seconds

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def concurrently(server: Server, threads: int, work: Callable[[Client, list[float]], int]) -> Rate:
    """Run ``work`` in ``threads`` threads, each on its own keep-alive connection."""
    clients = [Client(server.port) for _ in range(threads)]
    barrier = threading.Barrier(threads + 1)
    counts: list[int] = [0] * threads
    latencies: list[list[float]] = [[] for _ in range(threads)]
    failures: list[BaseException] = []

    def run(index: int) -> None:
        barrier.wait()
        try:
            counts[index] = work(clients[index], latencies[index])
        except BaseException as exc:  # reported below, in the main thread
            failures.append(exc)

    pool = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(threads)]
    for thread in pool:
        thread.start()
    cpu_before, client_before, machine_before = server.cpu(), time.process_time(), machine_busy()
    barrier.wait()
    started = time.perf_counter()
    for thread in pool:
        thread.join()
    elapsed = time.perf_counter() - started
    cpu = sum(t - cpu_before.get(pid, 0.0) for pid, t in server.cpu().items())
    client_cpu, machine_cpu = time.process_time() - client_before, machine_busy() - machine_before
    for client in clients:
        client.close()
    if failures:
        raise BenchError(f"{server.label}: {failures[0]!r}") from failures[0]
    every = [x for chunk in latencies for x in chunk]
    return Rate(sum(counts), elapsed, cpu, client_cpu, machine_cpu, every)


def manifest_gets(
    server: Server, name: str, auth: dict[str, str], threads: int, seconds: float
) -> Rate:
    headers = {**auth, "Accept": ACCEPT}
    path = f"/v2/{name}/manifests/latest"

    def work(client: Client, latencies: list[float]) -> int:
        deadline = time.perf_counter() + seconds
        count = 0
        while (now := time.perf_counter()) < deadline:
            response = client.send("GET", path, headers)
            body = response.read()
            if response.status != 200 or not body:
                raise BenchError(f"GET {path}: {response.status} {body[:200]!r}")
            latencies.append(time.perf_counter() - now)
            count += 1
        return count

    return concurrently(server, threads, work)


def push_images(
    server: Server, images: list[Image], auths: dict[str, dict[str, str]], threads: int
) -> Rate:
    queue = iter(list(images))
    lock = threading.Lock()

    def work(client: Client, latencies: list[float]) -> int:
        count = 0
        while True:
            with lock:
                image = next(queue, None)
            if image is None:
                return count
            started = time.perf_counter()
            push_image(client, image, auths[image.name])
            latencies.append(time.perf_counter() - started)
            count += 1

    return concurrently(server, threads, work)


# -- the run ------------------------------------------------------------------------------------


def measured(server: Server, transfer: Callable[..., float], *args: Any) -> tuple[float, float]:
    """Seconds ``transfer`` took, and the CPU seconds the server spent meanwhile."""
    before = server.cpu()
    seconds = transfer(server, *args)
    return seconds, sum(t - before.get(pid, 0.0) for pid, t in server.cpu().items())


@dataclass
class Results:
    """Seconds per big transfer, the timed runs, and each server's peak RSS."""

    big: dict[str, dict[str, list[tuple[float, float]]]] = field(default_factory=dict)
    gets: dict[tuple[str, int], Rate] = field(default_factory=dict)
    images: dict[str, Rate] = field(default_factory=dict)
    rss_start: dict[str, int] = field(default_factory=dict)
    rss_end: dict[str, int] = field(default_factory=dict)


def push_one(server: Server, image: Image, auth: dict[str, str]) -> None:
    client = Client(server.port)
    push_image(client, image, auth)
    client.close()


def run_all(plan: Plan, ours: Server, theirs: Server, say: Callable[[str], None]) -> Results:
    """Every workload on both servers; who goes first alternates from one round to the next."""
    servers = [theirs, ours]
    auth = Auth(ours)
    results = Results()

    # Warm-up (untimed): a small image and a second of GETs, so lazy imports are done.
    warm = Image.make(f"{USER}/bench-warm", 10_000)
    warm_auth = auth.headers(warm.name)
    for server in servers:
        push_one(server, warm, warm_auth)
        manifest_gets(server, warm.name, warm_auth, 8, 1.0)
        results.rss_start[server.label] = server.peak_rss()

    say(f"hashing {2 * plan.rounds} blobs of {plan.blob_size // MIB} MiB")
    blobs = [
        (Blob.make(2 * r, plan.blob_size), Blob.make(2 * r + 1, plan.blob_size))
        for r in range(plan.rounds)
    ]
    for server in servers:
        results.big[server.label] = {"mono": [], "chunked": [], "pull": []}
    for turn, (mono, chunked) in enumerate(blobs):
        for server in servers[:: 1 if turn % 2 == 0 else -1]:
            got = results.big[server.label]
            names = f"{USER}/bench-big-{turn}-mono", f"{USER}/bench-big-{turn}-chunked"
            headers = [auth.headers(name) for name in names]
            os.sync()  # the other server's dirty pages are not this one's to write back
            got["mono"].append(measured(server, push_monolithic, names[0], mono, headers[0]))
            os.sync()
            got["chunked"].append(
                measured(server, push_chunked, names[1], chunked, headers[1], plan.chunk)
            )
            for _ in range(2):
                got["pull"].append(measured(server, pull, names[0], mono, headers[0]))
                got["pull"].append(measured(server, pull, names[1], chunked, headers[1]))
            done = (f"{key} {runs[-1][0]:.2f} s" for key, runs in got.items())
            say(f"round {turn + 1} {server.label}: " + ", ".join(done))

    image = Image.make(f"{USER}/bench-get", 20_000)
    for server in servers:
        push_one(server, image, auth.headers(image.name, "pull,push"))
    for turn, level in enumerate(plan.levels):
        get_auth = auth.headers(image.name, "pull")  # a fresh token: they live 5 minutes
        for server in servers[:: 1 if turn % 2 == 0 else -1]:
            manifest_gets(server, image.name, get_auth, level, 1.0)  # connections up, caches warm
            rate = manifest_gets(server, image.name, get_auth, level, plan.get_seconds)
            results.gets[(server.label, level)] = rate
            say(f"GET c={level} {server.label}: {rate.per_second:.0f} req/s")

    images = [Image.make(f"{USER}/bench-small-{i:03d}", i) for i in range(plan.images)]
    auths = {image.name: auth.headers(image.name, "pull,push") for image in images}
    for server in servers:
        results.images[server.label] = rate = push_images(
            server, images, auths, plan.image_concurrency
        )
        say(f"{plan.images} images {server.label}: {rate.seconds:.2f} s")
    for server in servers:
        results.rss_end[server.label] = server.peak_rss()
    return results


THEM, US = "Distribution", "forge-container"


def report(plan: Plan, results: Results, notes: list[str]) -> str:
    """The Markdown tables: ratios first, then what each timed run cost."""
    size = plan.blob_size // MIB
    rows: list[tuple[str, float, float, str]] = []
    titles = {
        "mono": (f"push {size} MiB blob, monolithic (POST + PUT), MiB/s", "≥ 1.0"),
        "chunked": (
            f"push {size} MiB blob, {plan.chunk // MIB} MiB chunks (PATCH + PUT), MiB/s",
            "≥ 1.0",
        ),
        "pull": (f"pull {size} MiB blob (GET), MiB/s", "≥ 1.0"),
    }
    for key, (title, target) in titles.items():
        them, us = (size / _median(results.big[label][key], 0) for label in (THEM, US))
        rows.append((title, them, us, target))
    for level in plan.levels:
        them, us = (results.gets[(label, level)].per_second for label in (THEM, US))
        rows.append((f"manifest GET, bearer token, concurrency {level}, req/s", them, us, "≥ 0.8"))
    them, us = (results.images[label].per_second for label in (THEM, US))
    title = f"{plan.images} small images pushed {plan.image_concurrency} at a time, images/s"
    rows.append((title, them, us, ""))
    them, us = (results.rss_end[label] / MIB for label in (THEM, US))
    rows.append(("peak RSS of a worker process (VmHWM), MiB", them, us, "(lower is better)"))
    lines = [
        "| workload | Distribution | forge-container | ratio | target |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for title, them, us, target in rows:
        precision = 1 if them < 100 else 0
        lines.append(
            f"| {title} | {them:.{precision}f} | {us:.{precision}f} | {us / them:.2f} | {target} |"
        )
    growth = {label: results.rss_end[label] - results.rss_start[label] for label in (THEM, US)}
    flat = "met" if growth[US] < FLAT_RSS else "MISSED"
    cells = ["peak RSS growth after warm-up, MiB", *(f"{growth[x] / MIB:.0f}" for x in (THEM, US))]
    lines.append("| " + " | ".join([*cells, "", f"flat (< 64 MiB): {flat}"]) + " |")

    header = ["timed run", "server", "per s", "p50 ms", "p99 ms", "server CPU per op, µs"]
    header += ["cores: server", "client", "other"]
    lines += ["", "| " + " | ".join(header) + " |", "| --- | --- |" + " ---: |" * 7]
    for level in plan.levels:
        for label in (THEM, US):
            rate = results.gets[(label, level)]
            lines.append(_rate_row(f"manifest GET, concurrency {level}", label, rate))
    for label in (THEM, US):
        title = f"small image push, {plan.image_concurrency} at a time"
        lines.append(_rate_row(title, label, results.images[label]))
    lines += [
        "",
        "Big transfers: seconds each (their median is above), server CPU seconds per GiB:",
    ]
    for label in (THEM, US):
        parts = []
        for key, runs in results.big[label].items():
            seconds = " ".join(f"{run[0]:.2f}" for run in runs)
            parts.append(f"{key} {seconds} (CPU {_median(runs, 1) * GIB / plan.blob_size:.2f})")
        lines.append(f"- {label}: " + "; ".join(parts))
    return "\n".join([*lines, "", *notes])


def _median(runs: list[tuple[float, float]], index: int) -> float:
    return statistics.median(run[index] for run in runs)


def _rate_row(title: str, label: str, rate: Rate) -> str:
    other = rate.machine_cpu - rate.cpu - rate.client_cpu
    cells = [
        title,
        label,
        f"{rate.per_second:.0f}",
        f"{rate.percentile(0.5) * 1e3:.2f}",
        f"{rate.percentile(0.99) * 1e3:.2f}",
        f"{rate.cpu / rate.count * 1e6:.0f}",
        *(f"{cpu / rate.seconds:.2f}" for cpu in (rate.cpu, rate.client_cpu, other)),
    ]
    return "| " + " | ".join(cells) + " |"


def machine_notes(started: float) -> list[str]:
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    model = next(
        (line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), "?"
    )
    version = subprocess.run(
        ["docker-registry", "--version"], capture_output=True, text=True
    ).stdout
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return [
        f"- machine: {os.cpu_count()} cores ({model}), Python {platform.python_version()}",
        f"- Distribution: {version.strip()}, filesystem storage, no auth",
        f"- ours: gunicorn -k gthread -w {WORKERS} --threads {THREADS}, PostgreSQL, filesystem, "
        + (f"Redis ({REDIS_URL})" if REDIS_URL else "no Redis"),
        f"- load average at the end: {load}; wall time {time.monotonic() - started:.0f} s",
    ]


# -- profiling ----------------------------------------------------------------------------------


def profile(
    plan: Plan, root: Path, env: dict[str, str], keep: Path | None, say: Callable[[str], None]
) -> None:
    """cProfile (CPU time) inside our workers, one gunicorn per workload; the top functions."""
    blob = Blob.make(99, 256 * MIB)
    images = [Image.make(f"{USER}/prof-small-{i:03d}", i) for i in range(plan.images)]
    get_image = Image.make(f"{USER}/prof-get", 1)

    def gets(server: Server, auth: Auth) -> None:
        headers = auth.headers(get_image.name, "pull,push")
        push_one(server, get_image, headers)
        manifest_gets(server, get_image.name, headers, 8, plan.get_seconds)

    def small(server: Server, auth: Auth) -> None:
        push_images(server, images, {i.name: auth.headers(i.name, "pull,push") for i in images}, 8)

    def big(server: Server, auth: Auth) -> None:
        push_monolithic(server, f"{USER}/prof-big", blob, auth.headers(f"{USER}/prof-big"))

    for title, work in [("manifest-get", gets), ("small-images", small), ("big-push", big)]:
        directory = Path(tempfile.mkdtemp(dir=root, prefix="profile-"))
        server = start_ours(root, env, profile_dir=directory)
        try:
            work(server, Auth(server))
        finally:
            server.stop()
        files = sorted(str(p) for p in directory.glob("*.prof"))
        if not files:
            raise BenchError("the workers wrote no profile")
        if keep is not None:
            keep.mkdir(parents=True, exist_ok=True)
            for number, file in enumerate(files):
                shutil.copy(file, keep / f"{title}-{number}.prof")
        out = io.StringIO()
        stats = pstats.Stats(*files, stream=out).strip_dirs()
        stats.sort_stats("tottime").print_stats(20)
        stats.sort_stats("cumulative").print_stats(30)
        say(f"== profile: {title} ==\n{out.getvalue()}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="128 MiB blobs, one round, 3 s per GET level"
    )
    parser.add_argument(
        "--profile", action="store_true", help="profile our workers, compare nothing"
    )
    parser.add_argument(
        "--profile-out", type=Path, help="with --profile: keep the .prof files here"
    )
    args = parser.parse_args()
    plan = QUICK if args.quick else FULL
    if shutil.which("docker-registry") is None and not args.profile:
        print("docker-registry is missing: apt-get install docker-registry", file=sys.stderr)
        return 2
    started = time.monotonic()

    def say(text: str) -> None:
        print(f"[{time.monotonic() - started:6.1f} s] {text}", file=sys.stderr, flush=True)

    with ExitStack() as stack:
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="fc-bench-")))
        database_url = stack.enter_context(fresh_database())
        env = site_environment(root, database_url, secrets.token_hex(32))
        if REDIS_URL:
            stack.callback(forget_redis_keys, env["CONTAINER_REGISTRY_REDIS_KEY_PREFIX"])
        seed(env)
        if args.profile:
            profile(plan, root, env, args.profile_out, say)
            return 0
        theirs = start_distribution(root)
        stack.callback(theirs.stop)
        ours = start_ours(root, env)
        stack.callback(ours.stop)
        say(f"up: Distribution on port {theirs.port}, ours on port {ours.port}")
        results = run_all(plan, ours, theirs, say)
        log = ours.log.read_text(errors="replace").splitlines()
        errors = [line for line in log if SERVER_ERROR.search(line)]
        if errors:
            raise BenchError("our server answered 5xx:\n" + "\n".join(errors[:20]))
    print(report(plan, results, machine_notes(started)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
