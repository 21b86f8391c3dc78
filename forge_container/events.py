"""Signals the registry sends after a change is committed, so a host can fire webhooks."""

from __future__ import annotations
