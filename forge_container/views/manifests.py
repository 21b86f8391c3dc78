"""``/v2/<name>/manifests/<reference>``: push, pull and delete manifests and tags."""

from __future__ import annotations
