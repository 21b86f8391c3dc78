"""``flask container rules ...``: owners' cleanup rules, previewed before they apply."""

from __future__ import annotations
