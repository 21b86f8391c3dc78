"""The app's own cost of pushing small images, in-process: no HTTP server, no client.

    python bench/small_push.py [--images N] [--profile SORT]

Creates a scratch PostgreSQL database and the app's environment as ``run.py`` does, then
pushes small images through the test client the way ``run.py``'s small-image workload does
(``HEAD`` blob, ``POST``, ``PUT ?digest=`` with the body, for the config and the layer, then
the manifest ``PUT``), one at a time. Prints the CPU and wall time per image, and the SQL
statements and commits each kind of request sent. ``--profile cumulative`` (or ``tottime``)
prints a cProfile of a second pass.
"""

from __future__ import annotations

import argparse
import base64
import sys
from collections import Counter
from contextlib import ExitStack
from typing import Any

from manifest_get import per_call, print_profile, scratch_app  # bench/manifest_get.py
from run import OCI_MANIFEST, PASSWORD, USER, Image, sha256


class Pusher:
    """Pushes images through the app's test client, counting statements per request kind."""

    def __init__(self, app: Any) -> None:
        from sqlalchemy import event

        from forge_container.demo import db

        self.client = app.test_client()
        self.basic = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        self.statements: Counter[str] = Counter()
        self.commits: Counter[str] = Counter()
        self.requests: Counter[str] = Counter()
        self.kind = ""
        with app.app_context():
            engine = db.engine
        event.listen(engine, "before_cursor_execute", self._statement)
        event.listen(engine, "commit", self._commit)

    def reset(self) -> None:
        for counter in (self.statements, self.commits, self.requests):
            counter.clear()

    def _statement(self, *args: Any) -> None:
        self.statements[self.kind] += 1

    def _commit(self, *args: Any) -> None:
        self.commits[self.kind] += 1

    def token(self, name: str) -> dict[str, str]:
        reply = self.client.get(
            f"/v2/token?service=forge-container&scope=repository:{name}:pull,push",
            headers={"Authorization": self.basic},
        )
        return {"Authorization": "Bearer " + reply.json["token"]}

    def _call(self, kind: str, method: str, path: str, status: int, **kwargs: Any) -> Any:
        self.kind = kind
        self.requests[kind] += 1
        reply = self.client.open(path, method=method, **kwargs)
        self.kind = ""
        assert reply.status_code == status, (kind, reply.status_code, reply.data)
        return reply

    def push(self, image: Image, auth: dict[str, str]) -> None:
        base = f"/v2/{image.name}"
        for blob in (image.config, image.layer):
            digest = sha256(blob)
            self._call("HEAD blob", "HEAD", f"{base}/blobs/{digest}", 404, headers=auth)
            started = self._call("POST upload", "POST", f"{base}/blobs/uploads/", 202, headers=auth)
            location = started.headers["Location"]
            self._call(
                "PUT upload",
                "PUT",
                f"{location}{'&' if '?' in location else '?'}digest={digest}",
                201,
                data=blob,
                headers={**auth, "Content-Type": "application/octet-stream"},
            )
        self._call(
            "PUT manifest",
            "PUT",
            f"{base}/manifests/latest",
            201,
            data=image.manifest,
            headers={**auth, "Content-Type": OCI_MANIFEST},
        )

    def report(self, images: int) -> str:
        rows = [
            "| request | per image | SQL statements each | commits each |",
            "| --- | ---: | ---: | ---: |",
        ]
        total = 0
        for kind, count in self.requests.items():
            total += self.statements[kind]
            rows.append(
                f"| {kind} | {count / images:g} | {self.statements[kind] / count:.1f} "
                f"| {self.commits[kind] / count:.1f} |"
            )
        rows.append(f"| all | | {total / images:.1f} per image | |")
        return "\n".join(rows)


def measure(app: Any, images: int, profile: str | None) -> None:
    pusher = Pusher(app)
    plan = [Image.make(f"{USER}/bench-small-{n:04d}", n) for n in range(2 * images + 10)]
    tokens = {image.name: pusher.token(image.name) for image in plan}
    queue = iter(plan)

    def push_next() -> None:
        image = next(queue)
        pusher.push(image, tokens[image.name])

    for _ in range(10):  # lazy imports, caches, prepared statements
        push_next()
    pusher.reset()  # count the timed pass only
    cpu, wall = per_call(push_next, images)
    print(
        f"small image push, {images} images one at a time: {cpu * 1e3:.2f} ms CPU, "
        f"{wall * 1e3:.2f} ms wall per image (7 requests)\n"
    )
    print(pusher.report(images))
    if profile:
        print_profile(push_next, images, profile)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--profile", metavar="SORT", help="cProfile sort key, e.g. tottime")
    args = parser.parse_args()
    with ExitStack() as stack:
        measure(scratch_app(stack), args.images, args.profile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
