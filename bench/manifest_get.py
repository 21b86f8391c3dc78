"""The app's own cost of a manifest GET, in-process: no HTTP server, no client, no network.

    python bench/manifest_get.py [--redis URL] [--requests N] [--profile SORT]

Creates a scratch PostgreSQL database (``BENCH_POSTGRES_URL``, as ``run.py``), pushes one
small image through the test client, then calls the WSGI app with a pre-built environ for a
``GET /v2/<name>/manifests/latest`` with a bearer token, and prints the CPU and wall time
per request. ``--redis`` gives the app Redis, and with it the tag lookup cache.
``--profile cumulative`` (or ``tottime``) prints a cProfile of a second pass.
"""

from __future__ import annotations

import argparse
import base64
import cProfile
import io
import os
import pstats
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from run import OCI_MANIFEST, POSTGRES_URL, Image, sha256  # bench/run.py, beside this file
from sqlalchemy import create_engine, text

NAME = "alice/bench-get"


def build_app(root: Path, database_url: str, redis_url: str | None) -> Any:
    os.environ.update(
        FORGE_DEMO_DATABASE_URL=database_url,
        FORGE_DEMO_INSTANCE_PATH=str(root / "instance"),
        FORGE_DEMO_SECRET_KEY=secrets.token_hex(32),
        FORGE_DEMO_PASSWORD_METHOD="pbkdf2:sha256:1000",
        CONTAINER_REGISTRY_STORAGE_PATH=str(root / "storage"),
        CONTAINER_REGISTRY_REDIS_KEY_PREFIX=f"fc-bench-{secrets.token_hex(4)}:",
    )
    if redis_url:
        os.environ["CONTAINER_REGISTRY_REDIS_URL"] = redis_url
    from forge_container import schema
    from forge_container.demo import accounts, create_app, db

    app = create_app()
    with app.app_context():
        db.create_all()
        schema.upgrade()
        accounts.create_user("alice", "bench-password")
    return app


def push_image(app: Any) -> dict[str, str]:
    """One image tagged ``latest``; the bearer header that pulls it."""
    client = app.test_client()
    basic = "Basic " + base64.b64encode(b"alice:bench-password").decode()
    scope = f"repository:{NAME}:pull,push"
    reply = client.get(
        f"/v2/token?service=forge-container&scope={scope}", headers={"Authorization": basic}
    )
    auth = {"Authorization": "Bearer " + reply.json["token"]}
    image = Image.make(NAME, 0, layer_size=20_000)  # the image run.py's GETs pull
    for blob in (image.config, image.layer):
        stored = client.post(
            f"/v2/{NAME}/blobs/uploads/?digest={sha256(blob)}",
            data=blob,
            headers={**auth, "Content-Type": "application/octet-stream"},
        )
        assert stored.status_code == 201, stored.data
    pushed = client.put(
        f"/v2/{NAME}/manifests/latest",
        data=image.manifest,
        headers={**auth, "Content-Type": OCI_MANIFEST},
    )
    assert pushed.status_code == 201, pushed.data
    return auth


def measure(app: Any, auth: dict[str, str], requests: int, profile: str | None) -> None:
    from werkzeug.test import EnvironBuilder

    headers: dict[str, str] = {**auth, "Accept": OCI_MANIFEST}
    environ = EnvironBuilder(
        path=f"/v2/{NAME}/manifests/latest", headers=list(headers.items())
    ).get_environ()

    def one() -> None:
        statuses: list[str] = []
        body = app(dict(environ), lambda status, headers, exc=None: statuses.append(status))
        b"".join(body)
        getattr(body, "close", lambda: None)()
        assert statuses[0].startswith("200"), statuses

    for _ in range(300):  # warm every cache
        one()
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(requests):
        one()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    print(
        f"manifest GET, {requests} requests: {cpu / requests * 1e6:.0f} µs CPU, "
        f"{wall / requests * 1e6:.0f} µs wall per request"
    )
    if profile:
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(requests):
            one()
        profiler.disable()
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats(profile).print_stats(40)
        print(out.getvalue())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis", metavar="URL", help="give the app Redis (the tag cache)")
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--profile", metavar="SORT", help="cProfile sort key, e.g. tottime")
    args = parser.parse_args()
    database = f"fc_bench_{secrets.token_hex(4)}"
    admin = create_engine(POSTGRES_URL + "postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{database}"'))
    try:
        with tempfile.TemporaryDirectory(prefix="fc-bench-") as root:
            app = build_app(Path(root), POSTGRES_URL + database, args.redis)
            measure(app, push_image(app), args.requests, args.profile)
            from forge_container.demo import db
            from forge_container.state import get_state

            with app.app_context():
                db.session.remove()
                for engine in db.engines.values():
                    engine.dispose()
            redis = get_state(app).redis
            if redis is not None:
                prefix = os.environ["CONTAINER_REGISTRY_REDIS_KEY_PREFIX"]
                for key in redis.scan_iter(match=prefix + "*"):
                    redis.delete(key)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        admin.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
