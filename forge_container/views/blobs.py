"""``/v2/<name>/blobs/<digest>``: HEAD, GET (with ranges) and DELETE of an image's blobs."""

from __future__ import annotations
