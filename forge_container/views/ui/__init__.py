"""The package pages: server-rendered HTML in the host's layout, on a blueprint of their own.

URLs, under ``CONTAINER_REGISTRY_UI_URL_PREFIX``: ``/<owner>/-/packages/container`` (an
owner's images), ``.../container/<image>`` (one image), ``.../<image>/-/delete`` (confirm,
then delete a tag or version) and ``.../container/-/settings`` (cleanup rules). Templates
live in ``forge_container/`` and extend ``CONTAINER_REGISTRY_UI_LAYOUT``; a host overrides
any of them by shipping one of the same name.
"""

from __future__ import annotations

from flask import Blueprint, Flask

ui_bp = Blueprint(
    "forge_container_ui",
    __name__,
    template_folder="../../templates",
    static_folder="../../static/forge_container",
    static_url_path="/-/forge-container/static",
)

# Route modules register themselves on ``ui_bp`` when imported.
from forge_container.views.ui import common, delete, image, packages, settings  # noqa: E402, F401


def register_ui(app: Flask, url_prefix: str) -> None:
    """Mount the pages at ``url_prefix`` and give every template the snippet's helpers."""
    app.register_blueprint(ui_bp, url_prefix=url_prefix or None)
    common.install_template_helpers(app)
