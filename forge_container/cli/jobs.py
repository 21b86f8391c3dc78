"""``flask container worker|cleanup``: background jobs, on RQ or inline."""

from __future__ import annotations
