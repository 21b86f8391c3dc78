"""``/v2/_catalog``: the images the caller can read, paginated."""

from __future__ import annotations
