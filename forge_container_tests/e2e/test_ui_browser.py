"""The package pages in headless Chromium against a live gunicorn: sign in, browse, delete.

An image is pushed with skopeo (a multi-platform index, and a single image under two more
tags); the browser signs in to the demo forge, opens alice's packages and the image, checks
tags, platforms and sizes, and deletes a tag through the confirmation page. Each page is
saved as a screenshot in the test's tmp dir.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from jinja2.filters import do_filesizeformat
from playwright.sync_api import Page, sync_playwright

from forge_container_tests.e2e import layouts
from forge_container_tests.e2e.conftest import Server, basic_auth
from forge_container_tests.e2e.layouts import Layout
from forge_container_tests.e2e.test_skopeo import Skopeo

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
def browser_page(tmp_path: Path) -> Iterator[Page]:
    path = shutil.which("chromium") or CHROMIUM
    if not Path(path).exists():
        pytest.fail("the browser test needs Chromium: apt-get install chromium")
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            page = context.new_page()
            page.set_default_timeout(20_000)
            yield page
            context.close()
        finally:
            browser.close()


def platform_size(layout: Layout, child: layouts.Descriptor) -> int:
    """What a platform pulls: its manifest, config and layers."""
    manifest = layout.read_json(child)
    layers: int = sum(x["size"] for x in manifest["layers"])
    config: int = manifest["config"]["size"]
    return child.size + config + layers


def human(size: int) -> str:
    return do_filesizeformat(size, binary=True)


def test_browse_an_image_pushed_with_skopeo_and_delete_a_tag(
    live_registry: Server, skopeo_path: str, tmp_path: Path, browser_page: Page
) -> None:
    skopeo = Skopeo(skopeo_path, tmp_path / "skopeo-home", live_registry)
    multi = layouts.multi_arch(tmp_path / "multi", "v1", seed=41)
    single = layouts.single_image(tmp_path / "single", "v0", seed=42, sizes=((9000, 300),))
    skopeo.push(f"oci:{multi.root}:v1", "alice/webapp:v1", "--all")
    skopeo.push(f"oci:{single.root}:v0", "alice/webapp:old")
    skopeo.push(f"oci:{single.root}:v0", "alice/webapp:v0")
    children = [
        layouts.Descriptor.from_json(entry)
        for entry in multi.read_json(multi.resolve("v1"))["manifests"]
    ]
    shots = tmp_path / "screenshots"
    shots.mkdir()
    page = browser_page
    base = live_registry.url

    page.goto(f"{base}/login")
    page.fill("#username", "alice")
    alice_password = live_registry.site.passwords["alice"]
    page.fill("#password", alice_password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")
    page.screenshot(path=shots / "0-home.png", full_page=True)

    page.goto(f"{base}/alice/-/packages/container")
    page.screenshot(path=shots / "1-packages.png", full_page=True)
    listing = page.locator("#fc-packages")
    assert "alice/webapp" in listing.inner_text()
    page.click("text=alice/webapp")
    page.wait_for_url(f"{base}/alice/-/packages/container/webapp")
    page.screenshot(path=shots / "2-image.png", full_page=True)

    tags = page.locator("#fc-tag-table")
    rows = {
        row.locator("td").first.inner_text().split()[0]: row
        for row in tags.locator("tbody tr").all()
    }
    assert set(rows) == {"v1", "old", "v0"}
    v1 = rows["v1"].inner_text()
    for child, name in zip(children, ("linux/amd64", "linux/arm64"), strict=True):
        assert name in v1
        assert human(platform_size(multi, child)) in v1
    single_size = platform_size(single, single.resolve("v0"))
    assert "linux/amd64" in rows["old"].inner_text()
    assert human(single_size) in rows["old"].inner_text()
    assert f"{live_registry.host}/alice/webapp:" in page.locator(".fc-command").inner_text()

    rows["old"].locator("text=Delete").click()
    page.wait_for_url("**/-/delete?tag=old")
    page.screenshot(path=shots / "3-confirm.png", full_page=True)
    assert "Delete tag old of alice/webapp?" in page.locator("h1").inner_text()
    assert "still tagged v0" in page.inner_text(".fc")
    page.click("button:has-text('Delete')")
    page.wait_for_url("**/container/webapp?deleted=*")
    page.screenshot(path=shots / "4-deleted.png", full_page=True)
    assert "Deleted tag old." in page.locator(".fc-notice").inner_text()
    remaining = page.locator("#fc-tag-table tbody tr td:first-child").all_inner_texts()
    assert sorted(text.split()[0] for text in remaining) == ["v0", "v1"]
    reply = live_registry.request(
        "GET", "/v2/alice/webapp/tags/list", headers=basic_auth("alice", alice_password)
    )
    assert reply.json()["tags"] == ["v0", "v1"]

    # The index in detail: a section per platform, with its layers and history.
    page.click("#fc-tag-table >> text=v1")
    page.wait_for_url("**/container/webapp?*tag=v1")
    assert page.locator("details.fc-platform").count() == 2
    page.screenshot(path=shots / "5-index.png", full_page=True)
    page.set_viewport_size({"width": 420, "height": 900})
    page.screenshot(path=shots / "6-narrow.png", full_page=True)
    # Nothing but the tables' own scrolling boxes is wider than a phone's screen.
    overflow = page.evaluate("document.documentElement.scrollWidth")
    assert overflow <= 420, overflow

    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"{base}/alice/-/packages/container/-/settings")
    page.fill("#remove_pattern", "v0")
    page.check("input[name=enabled]")
    page.click("button:has-text('Save')")
    page.wait_for_url("**/settings?saved=1")
    assert "v0" in page.locator("#fc-preview-table").inner_text()
    page.screenshot(path=shots / "7-rules.png", full_page=True)
