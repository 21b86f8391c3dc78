"""``/v2/<name>/blobs/uploads/``: upload sessions, monolithic and chunked uploads, mounts."""

from __future__ import annotations
