"""skopeo (Debian's) pushes to and pulls from a live gunicorn server; every digest compared."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from forge_container_tests.e2e import layouts
from forge_container_tests.e2e.conftest import Server, basic_auth
from forge_container_tests.e2e.layouts import Layout

BIG_LAYER = 256 * 1024 * 1024


class Skopeo:
    """Runs skopeo with a home of its own, so no credentials but the given ones are used."""

    def __init__(self, path: str, home: Path, server: Server) -> None:
        self.path = path
        self.home = home
        self.server = server
        (home / "run").mkdir(parents=True, exist_ok=True)
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "XDG_RUNTIME_DIR": str(home / "run"),
            "REGISTRY_AUTH_FILE": str(home / "auth.json"),
        }

    def run(
        self, *args: str, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [self.path, "--command-timeout", "600s", *args],
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=900,
        )
        if check:
            assert result.returncode == 0, f"skopeo {' '.join(args)}:\n{result.stderr}"
        return result

    def ref(self, image: str) -> str:
        return f"docker://{self.server.host}/{image}"

    def creds(self, user: str = "alice", secret: str | None = None) -> str:
        return f"{user}:{secret or self.server.site.passwords[user]}"

    def push(
        self,
        source: str,
        image: str,
        *options: str,
        creds: str | None = None,
        anonymous: bool = False,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        digestfile = self.home / "pushed-digest"
        digestfile.unlink(missing_ok=True)
        return self.run(
            "copy",
            "--dest-tls-verify=false",
            "--dest-no-creds" if anonymous else f"--dest-creds={creds or self.creds()}",
            f"--digestfile={digestfile}",
            *options,
            source,
            self.ref(image),
            check=check,
        )

    def pushed_digest(self) -> str:
        return (self.home / "pushed-digest").read_text().strip()

    def pull(
        self,
        image: str,
        dest: str,
        *options: str,
        creds: str | None = None,
        anonymous: bool = False,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        auth = "--src-no-creds" if anonymous else f"--src-creds={creds or self.creds()}"
        return self.run(
            "copy", "--src-tls-verify=false", auth, *options, self.ref(image), dest, check=check
        )

    def raw(self, image: str) -> bytes:
        """The manifest as stored, byte for byte (``skopeo inspect --raw``)."""
        result = subprocess.run(
            [
                self.path,
                "inspect",
                "--raw",
                "--tls-verify=false",
                f"--creds={self.creds()}",
                self.ref(image),
            ],
            env=self.env,
            capture_output=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr.decode()
        return result.stdout

    def inspect(self, image: str, *options: str) -> Any:
        result = self.run(
            "inspect", "--tls-verify=false", f"--creds={self.creds()}", *options, self.ref(image)
        )
        return json.loads(result.stdout)


@pytest.fixture
def skopeo(skopeo_path: str, tmp_path: Path, live_registry: Server) -> Skopeo:
    return Skopeo(skopeo_path, tmp_path / "skopeo-home", live_registry)


@pytest.fixture
def skopeo_on(skopeo_path: str, tmp_path: Path, live_registry_on: Server) -> Skopeo:
    """skopeo against a live server on each storage backend in turn."""
    return Skopeo(skopeo_path, tmp_path / "skopeo-home", live_registry_on)


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def assert_same_image(source: Layout, pulled: Layout, tag: str) -> None:
    """The pulled layout holds the source's manifests, configs and layers, all intact."""
    assert pulled.digests(tag) == source.digests(tag)
    assert pulled.read_blob(pulled.resolve(tag).digest) == source.read_blob(
        source.resolve(tag).digest
    )
    pulled.verify(tag)


# -- the layout builder -------------------------------------------------------------------------


def test_layouts_are_deterministic_and_skopeo_reads_them(tmp_path: Path, skopeo_path: str) -> None:
    first = layouts.single_image(tmp_path / "a", "v1", seed=7, sizes=((100, 2000), (3000,)))
    again = layouts.single_image(tmp_path / "b", "v1", seed=7, sizes=((100, 2000), (3000,)))
    other = layouts.single_image(tmp_path / "c", "v1", seed=8, sizes=((100, 2000), (3000,)))
    assert first.digests("v1") == again.digests("v1")
    assert set(first.digests("v1")).isdisjoint(other.digests("v1"))

    def inspect(*args: str) -> Any:
        result = subprocess.run(
            [skopeo_path, "inspect", *args], capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    seen = inspect(f"oci:{tmp_path / 'a'}:v1")
    manifest = first.read_json(first.resolve("v1"))
    assert seen["Digest"] == first.resolve("v1").digest
    assert seen["Layers"] == [layer["digest"] for layer in manifest["layers"]]
    assert (seen["Os"], seen["Architecture"]) == ("linux", "amd64")
    assert seen["Labels"] == {"org.opencontainers.image.title": "e2e-7", "e2e.seed": "7"}

    multi = layouts.multi_arch(tmp_path / "m", "v1", seed=3)
    index = inspect("--raw", f"oci:{tmp_path / 'm'}:v1")
    assert index["mediaType"] == layouts.OCI_INDEX
    assert [m["platform"]["architecture"] for m in index["manifests"]] == ["amd64", "arm64"]
    arm = inspect("--override-arch=arm64", f"oci:{tmp_path / 'm'}:v1")
    arm_manifest = multi.read_json(layouts.Descriptor.from_json(index["manifests"][1]))
    assert arm["Architecture"] == "arm64"
    assert arm["Layers"] == [layer["digest"] for layer in arm_manifest["layers"]]
    multi.verify("v1")

    big = layouts.big_image(tmp_path / "big", "v1", size=3 * 1024 * 1024 + 5)
    (layer,) = inspect("--raw", f"oci:{tmp_path / 'big'}:v1")["layers"]
    assert layer["mediaType"] == layouts.OCI_LAYER_TAR
    assert layer["size"] > 3 * 1024 * 1024
    config = inspect("--config", f"oci:{tmp_path / 'big'}:v1")
    assert config["rootfs"]["diff_ids"] == [layer["digest"]]
    big.verify("v1")

    # skopeo checks every digest and size while it copies.
    copied = subprocess.run(
        [skopeo_path, "copy", "--all", f"oci:{tmp_path / 'm'}:v1", f"oci:{tmp_path / 'copy'}:v1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert copied.returncode == 0, copied.stderr
    assert Layout(tmp_path / "copy").digests("v1") == multi.digests("v1")


# -- push and pull ------------------------------------------------------------------------------


def test_single_image_round_trips_with_every_digest_intact(
    skopeo_on: Skopeo, tmp_path: Path
) -> None:
    # The 12 MB layer spans parts on S3 (5 MiB parts there).
    source = layouts.single_image(
        tmp_path / "src", "v1", seed=11, sizes=((4096, 10), (200_000,), (1, 2, 3), (12_000_000,))
    )
    skopeo_on.push(f"oci:{source.root}:v1", "alice/single:v1")
    assert skopeo_on.pushed_digest() == source.resolve("v1").digest

    raw = skopeo_on.raw("alice/single:v1")
    assert raw == source.read_blob(source.resolve("v1").digest)

    skopeo_on.pull("alice/single:v1", f"oci:{tmp_path / 'out'}:v1")
    assert_same_image(source, Layout(tmp_path / "out"), "v1")


def test_multi_arch_index_round_trips_with_all_platforms(skopeo_on: Skopeo, tmp_path: Path) -> None:
    source = layouts.multi_arch(tmp_path / "src", "v1", seed=12)
    skopeo_on.push(f"oci:{source.root}:v1", "alice/multi:v1", "--all")
    index_digest = source.resolve("v1").digest
    assert skopeo_on.pushed_digest() == index_digest
    assert sha256(skopeo_on.raw("alice/multi:v1")) == index_digest

    children = source.read_json(source.resolve("v1"))["manifests"]
    arm_manifest = source.read_json(layouts.Descriptor.from_json(children[1]))
    arm = skopeo_on.inspect("alice/multi:v1", "--override-arch=arm64")
    assert arm["Architecture"] == "arm64"
    assert arm["Layers"] == [layer["digest"] for layer in arm_manifest["layers"]]

    skopeo_on.pull("alice/multi:v1", f"oci:{tmp_path / 'out'}:v1", "--all")
    assert_same_image(source, Layout(tmp_path / "out"), "v1")


def test_docker_schema2_push_is_stored_as_docker_and_pulled_back_unchanged(
    skopeo: Skopeo, tmp_path: Path
) -> None:
    source = layouts.single_image(tmp_path / "src", "v1", seed=13, sizes=((5000,), (70, 80)))
    skopeo.push(f"oci:{source.root}:v1", "alice/docker:v1", "--format=v2s2")
    digest = skopeo.pushed_digest()

    raw = skopeo.raw("alice/docker:v1")
    assert sha256(raw) == digest
    manifest = json.loads(raw)
    assert manifest["mediaType"] == layouts.DOCKER_MANIFEST
    assert manifest["config"]["mediaType"] == "application/vnd.docker.container.image.v1+json"
    source_manifest = source.read_json(source.resolve("v1"))
    assert manifest["config"]["digest"] == source_manifest["config"]["digest"]
    assert [layer["digest"] for layer in manifest["layers"]] == [
        layer["digest"] for layer in source_manifest["layers"]
    ]
    assert {layer["mediaType"] for layer in manifest["layers"]} == {
        "application/vnd.docker.image.rootfs.diff.tar.gzip"
    }

    # The dir: transport keeps the manifest as the registry serves it.
    out = tmp_path / "out"
    skopeo.pull("alice/docker:v1", f"dir:{out}")
    assert (out / "manifest.json").read_bytes() == raw
    for descriptor in [manifest["config"], *manifest["layers"]]:
        blob = (out / descriptor["digest"].split(":", 1)[1]).read_bytes()
        assert sha256(blob) == descriptor["digest"]
        assert len(blob) == descriptor["size"]


def test_docker_manifest_list_round_trips(skopeo: Skopeo, tmp_path: Path) -> None:
    source = layouts.multi_arch(tmp_path / "src", "v1", seed=19)
    skopeo.push(f"oci:{source.root}:v1", "alice/docker-list:v1", "--all", "--format=v2s2")
    digest = skopeo.pushed_digest()
    raw = skopeo.raw("alice/docker-list:v1")
    assert sha256(raw) == digest
    listing = json.loads(raw)
    assert listing["mediaType"] == layouts.DOCKER_MANIFEST_LIST

    source_children = source.read_json(source.resolve("v1"))["manifests"]
    for child, source_child in zip(listing["manifests"], source_children, strict=True):
        assert child["mediaType"] == layouts.DOCKER_MANIFEST
        assert child["platform"] == source_child["platform"]
        child_raw = skopeo.raw(f"alice/docker-list@{child['digest']}")
        assert (sha256(child_raw), len(child_raw)) == (child["digest"], child["size"])
        source_manifest = source.read_json(layouts.Descriptor.from_json(source_child))
        assert [layer["digest"] for layer in json.loads(child_raw)["layers"]] == [
            layer["digest"] for layer in source_manifest["layers"]
        ]

    out = tmp_path / "out"
    skopeo.pull("alice/docker-list:v1", f"dir:{out}", "--all")
    assert (out / "manifest.json").read_bytes() == raw


@pytest.mark.big
def test_a_256_mib_layer_round_trips(skopeo: Skopeo, tmp_path: Path) -> None:
    source = layouts.big_image(tmp_path / "src", "v1", size=BIG_LAYER)
    out = tmp_path / "out"
    try:
        # skopeo gzips uncompressed layers on the way unless told to keep every digest.
        skopeo.push(f"oci:{source.root}:v1", "alice/big:v1", "--preserve-digests")
        assert skopeo.pushed_digest() == source.resolve("v1").digest
        skopeo.pull("alice/big:v1", f"oci:{out}:v1", "--dest-oci-accept-uncompressed-layers")
        pulled = Layout(out)
        assert_same_image(source, pulled, "v1")
        layer = pulled.read_json(pulled.resolve("v1"))["layers"][0]
        assert layer["size"] > BIG_LAYER
    finally:
        shutil.rmtree(source.root, ignore_errors=True)
        shutil.rmtree(out, ignore_errors=True)


# -- who may pull and push ----------------------------------------------------------------------


def test_anonymous_callers_pull_and_list_public_images_only(
    skopeo: Skopeo, tmp_path: Path, live_registry: Server
) -> None:
    source = layouts.single_image(tmp_path / "src", "v1", seed=14)
    refused = skopeo.push(
        f"oci:{source.root}:v1", "alice/public-app:v1", anonymous=True, check=False
    )
    assert refused.returncode != 0
    assert "unauthorized: authentication required" in refused.stderr
    skopeo.push(f"oci:{source.root}:v1", "alice/public-app:v1")
    skopeo.push(f"oci:{source.root}:v1", "alice/private/app:v1")

    skopeo.pull("alice/public-app:v1", f"oci:{tmp_path / 'public'}:v1", anonymous=True)
    assert_same_image(source, Layout(tmp_path / "public"), "v1")

    denied = skopeo.pull(
        "alice/private/app:v1", f"oci:{tmp_path / 'private'}:v1", anonymous=True, check=False
    )
    assert denied.returncode != 0
    assert "unauthorized: authentication required" in denied.stderr
    skopeo.pull("alice/private/app:v1", f"oci:{tmp_path / 'private'}:v1")
    assert_same_image(source, Layout(tmp_path / "private"), "v1")

    listed = live_registry.request("GET", "/v2/_catalog").json()["repositories"]
    assert "alice/public-app" in listed
    assert "alice/private/app" not in listed
    alice = basic_auth("alice", live_registry.site.passwords["alice"])
    listed = live_registry.request("GET", "/v2/_catalog", headers=alice).json()["repositories"]
    assert {"alice/public-app", "alice/private/app"} <= set(listed)


def test_a_read_only_token_pulls_but_cannot_push(
    skopeo: Skopeo, tmp_path: Path, live_registry: Server
) -> None:
    source = layouts.single_image(tmp_path / "src", "v1", seed=15)
    read_only = skopeo.creds("alice", live_registry.site.tokens["read"])
    refused = skopeo.push(f"oci:{source.root}:v1", "alice/pat:v1", creds=read_only, check=False)
    assert refused.returncode != 0
    assert "denied: requested access to alice/pat is denied" in refused.stderr
    reply = live_registry.request(
        "HEAD",
        "/v2/alice/pat/manifests/v1",
        headers=basic_auth("alice", live_registry.site.passwords["alice"]),
    )
    assert reply.status == 404

    writer = skopeo.creds("alice", live_registry.site.tokens["write"])
    skopeo.push(f"oci:{source.root}:v1", "alice/pat:v1", creds=writer)
    skopeo.pull("alice/pat:v1", f"oci:{tmp_path / 'out'}:v1", creds=read_only)
    assert_same_image(source, Layout(tmp_path / "out"), "v1")


def test_known_blobs_are_mounted_across_images_or_skipped(
    skopeo: Skopeo, tmp_path: Path, live_registry: Server
) -> None:
    source = layouts.single_image(tmp_path / "src", "v1", seed=20, sizes=((3000,), (4000,)))
    layers = source.read_json(source.resolve("v1"))["layers"]
    skopeo.push(f"oci:{source.root}:v1", "alice/mount-source:v1")

    # skopeo remembers where it pushed each blob and asks to mount it from there.
    offset = live_registry.log_size()
    skopeo.push(f"oci:{source.root}:v1", "alice/mount-target:v1")
    log = live_registry.log_until(offset, '"PUT /v2/alice/mount-target/manifests/v1 HTTP/1.1" ')
    for layer in layers:
        mounted = (
            '"POST /v2/alice/mount-target/blobs/uploads/?from=alice%2Fmount-source'
            f'&mount={layer["digest"].replace(":", "%3A")} HTTP/1.1" 201 '
        )
        assert mounted in log

    # Pushed again, nothing is uploaded: every blob is already linked.
    offset = live_registry.log_size()
    skopeo.push(f"oci:{source.root}:v1", "alice/mount-target:v2")
    log = live_registry.log_until(offset, '"PUT /v2/alice/mount-target/manifests/v2 HTTP/1.1" ')
    assert "/blobs/uploads/" not in log
    assert '"PUT /v2/alice/mount-target/manifests/v2 HTTP/1.1" 201 ' in log

    skopeo.pull("alice/mount-target:v2", f"oci:{tmp_path / 'out'}:v2", anonymous=True)
    assert Layout(tmp_path / "out").digests("v2") == source.digests("v1")
    Layout(tmp_path / "out").verify("v2")


# -- tags ---------------------------------------------------------------------------------------


def test_list_tags_and_delete_a_tag(skopeo: Skopeo, tmp_path: Path) -> None:
    first = layouts.single_image(tmp_path / "a", "v1", seed=16)
    second = layouts.single_image(tmp_path / "b", "v2", seed=17)
    skopeo.push(f"oci:{first.root}:v1", "alice/tags:v1")
    skopeo.run(
        "copy",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        f"--src-creds={skopeo.creds()}",
        f"--dest-creds={skopeo.creds()}",
        skopeo.ref("alice/tags:v1"),
        skopeo.ref("alice/tags:Latest"),
    )
    skopeo.push(f"oci:{second.root}:v2", "alice/tags:v2")

    def tags() -> list[str]:
        result = skopeo.run(
            "list-tags", "--tls-verify=false", f"--creds={skopeo.creds()}", skopeo.ref("alice/tags")
        )
        listed: list[str] = json.loads(result.stdout)["Tags"]
        return listed

    assert tags() == ["Latest", "v1", "v2"]

    skopeo.run(
        "delete", "--tls-verify=false", f"--creds={skopeo.creds()}", skopeo.ref("alice/tags:v2")
    )
    assert tags() == ["Latest", "v1"]
    gone = skopeo.run(
        "inspect",
        "--tls-verify=false",
        f"--creds={skopeo.creds()}",
        skopeo.ref("alice/tags:v2"),
        check=False,
    )
    assert gone.returncode != 0
    assert "manifest unknown" in gone.stderr
    assert skopeo.raw("alice/tags:v1") == first.read_blob(first.resolve("v1").digest)


# -- login --------------------------------------------------------------------------------------


@pytest.mark.parametrize("credential", ["password", "write", "read"])
def test_login_stores_credentials_that_later_commands_use(
    skopeo: Skopeo, tmp_path: Path, live_registry: Server, credential: str
) -> None:
    source = layouts.single_image(tmp_path / "src", "v1", seed=18)
    skopeo.push(f"oci:{source.root}:v1", "alice/private/login:v1")
    secret = (
        live_registry.site.passwords["alice"]
        if credential == "password"
        else live_registry.site.tokens[credential]
    )
    authfile = tmp_path / "login-auth.json"

    def list_tags() -> subprocess.CompletedProcess[str]:
        return skopeo.run(
            "list-tags",
            "--tls-verify=false",
            f"--authfile={authfile}",
            skopeo.ref("alice/private/login"),
            check=False,
        )

    assert list_tags().returncode != 0

    wrong = skopeo.run(
        "login",
        "--tls-verify=false",
        f"--authfile={authfile}",
        "--username=alice",
        "--password-stdin",
        live_registry.host,
        stdin="not-the-secret\n",
        check=False,
    )
    assert wrong.returncode != 0
    assert "invalid username/password" in wrong.stderr
    assert not authfile.exists() or live_registry.host not in authfile.read_text()

    result = skopeo.run(
        "login",
        "--tls-verify=false",
        f"--authfile={authfile}",
        "--username=alice",
        "--password-stdin",
        live_registry.host,
        stdin=secret + "\n",
    )
    assert "Login Succeeded" in result.stdout
    assert live_registry.host in json.loads(authfile.read_text())["auths"]
    listed = list_tags()
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout)["Tags"] == ["v1"]
