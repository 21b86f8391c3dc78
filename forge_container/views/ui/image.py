"""``/<owner>/-/packages/container/<image>``: tags, platforms, one version in detail."""

from __future__ import annotations

from flask import render_template, request

from forge_container.registry import image_page
from forge_container.views.ui import ui_bp
from forge_container.views.ui.common import (
    choice_arg,
    image_access,
    int_arg,
    linked_repository,
    registry_host,
    source_links,
)
from forge_container.views.ui.packages import OWNER_ROOT


@ui_bp.get(OWNER_ROOT + "/<path:image>")
def image(owner: str, image: str) -> str:
    found = image_access(owner, image)
    seen = found.viewer
    settings = seen.state.settings
    repository = linked_repository(seen, found.name.image.split("/", 1)[0])
    view = image_page.image_view(
        seen.state.db.session(),
        seen.owner.id,
        found.name.image,
        tag_sort=choice_arg("sort", image_page.TAG_SORTS),
        tag_page=int_arg("page"),
        untagged_page=int_arg("upage"),
        per_page=settings.ui_page_size,
        tag=request.args.get("tag") or None,
        digest=request.args.get("digest") or None,
        repository_id=repository.id if repository is not None else None,
    )
    selected = view.selected
    return render_template(
        "forge_container/image.html",
        owner=seen.owner,
        name=found.name,
        view=view,
        sort=choice_arg("sort", image_page.TAG_SORTS),
        may_delete=found.may_delete,
        repository=repository,
        links=source_links(seen, selected.metadata) if selected is not None else None,
        names=seen.state.host.principal_names(view.principal_ids),
        registry=registry_host(),
    )
