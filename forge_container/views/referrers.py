"""``/v2/<name>/referrers/<digest>``: the manifests that refer to a subject."""

from __future__ import annotations
