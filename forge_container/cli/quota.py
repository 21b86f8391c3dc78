"""``flask container usage|quota ...``: storage quotas per owner."""

from __future__ import annotations
