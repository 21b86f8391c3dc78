"""The app's own cost of a manifest GET, in-process: no HTTP server, no client, no network.

    python bench/manifest_get.py [--redis URL] [--requests N] [--profile SORT]

Creates a scratch PostgreSQL database and the app's environment as ``run.py`` does, pushes one
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
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from run import (  # bench/run.py, beside this file
    OCI_MANIFEST,
    PASSWORD,
    USER,
    Image,
    forget_redis_keys,
    fresh_database,
    sha256,
    site_environment,
)

NAME = "alice/bench-get"


def build_app(env: dict[str, str]) -> Any:
    """The demo app configured by ``env`` (see ``run.site_environment``), seeded."""
    os.environ.update(env)
    from forge_container import schema
    from forge_container.demo import accounts, create_app, db

    app = create_app()
    with app.app_context():
        db.create_all()
        schema.upgrade()
        accounts.create_user(USER, PASSWORD)
    return app


def push_image(app: Any) -> dict[str, str]:
    """One image tagged ``latest``; the bearer header that pulls it."""
    client = app.test_client()
    basic = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
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
    cpu, wall = per_call(one, requests)
    print(
        f"manifest GET, {requests} requests: {cpu * 1e6:.0f} µs CPU, "
        f"{wall * 1e6:.0f} µs wall per request"
    )
    if profile:
        print_profile(one, requests, profile)


def per_call(call: Callable[[], object], times: int) -> tuple[float, float]:
    """CPU and wall seconds per call of ``call``, called ``times`` times."""
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(times):
        call()
    return (time.process_time() - cpu) / times, (time.perf_counter() - wall) / times


def print_profile(call: Callable[[], object], times: int, sort: str) -> None:
    """A cProfile of ``times`` calls of ``call``, its top 40 functions by ``sort``."""
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(times):
        call()
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats(sort).print_stats(40)
    print(out.getvalue())


def release(app: Any) -> None:
    """Close the app's connections, so that its database can be dropped."""
    from forge_container.demo import db

    with app.app_context():
        db.session.remove()
        for engine in db.engines.values():
            engine.dispose()


def scratch_app(stack: ExitStack, redis: str | None = None) -> Any:
    """The demo app on a scratch database and storage, with Redis at ``redis`` if given;
    all of it removed when ``stack`` closes."""
    root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="fc-bench-")))
    database_url = stack.enter_context(fresh_database())
    env = site_environment(root, database_url, secrets.token_hex(32))
    env.pop("CONTAINER_REGISTRY_REDIS_URL", None)
    if redis:
        env["CONTAINER_REGISTRY_REDIS_URL"] = redis
        stack.callback(forget_redis_keys, env["CONTAINER_REGISTRY_REDIS_KEY_PREFIX"], redis)
    app = build_app(env)
    stack.callback(release, app)
    return app


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis", metavar="URL", help="give the app Redis (the tag cache)")
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--profile", metavar="SORT", help="cProfile sort key, e.g. tottime")
    args = parser.parse_args()
    with ExitStack() as stack:
        app = scratch_app(stack, args.redis)
        measure(app, push_image(app), args.requests, args.profile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
