"""``flask container ...``: the plugin's commands in the host's CLI, one module per topic."""

from __future__ import annotations

from flask.cli import AppGroup

container_cli = AppGroup("container", help="The container registry (forge-container).")

# Command modules register themselves on ``container_cli`` when imported.
from forge_container.cli import jobs, quota, rules, schema  # noqa: E402, F401
