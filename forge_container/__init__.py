"""forge-container: an OCI container registry for Flask-based forges."""

from __future__ import annotations

from forge_container.extension import ContainerRegistry
from forge_container.host import Access, HostAdapter, Owner, Principal, Repository
from forge_container.models import host_include_name
from forge_container.state import get_state

__all__ = [
    "Access",
    "ContainerRegistry",
    "HostAdapter",
    "Owner",
    "Principal",
    "Repository",
    "get_state",
    "host_include_name",
]
