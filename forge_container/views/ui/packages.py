"""``/<owner>/-/packages/container``: an owner's images, searchable, sortable, paginated.

A private owner's page is a 404 for those who see none of its images and are not its
members; its admins see the quota use too.
"""

from __future__ import annotations

from flask import abort, render_template

from forge_container import access
from forge_container.names import ImageName
from forge_container.registry import browse, quota
from forge_container.views.ui import ui_bp
from forge_container.views.ui.common import choice_arg, int_arg, readable, text_arg, viewer

OWNER_ROOT = "/<owner>/-/packages/container"


@ui_bp.get(OWNER_ROOT)
def packages(owner: str) -> str:
    seen = viewer(owner)
    state = seen.state
    query = text_arg("q")
    sort = choice_arg("sort", browse.PACKAGE_SORTS)
    session = state.db.session()
    listing = browse.owner_packages(
        session,
        seen.owner.id,
        readable(seen),
        query=query,
        sort=sort,
        page=int_arg("page"),
        per_page=state.settings.ui_page_size,
    )
    if not seen.owner.is_public and not listing.visible:
        # The owner itself (no image): its members may look at an empty page.
        namespace = ImageName(owner=seen.owner.name.lower(), image="")
        if "pull" not in access.allowed_actions(state, seen.principal, namespace):
            abort(404)
    manager = access.may_manage_rules(state, seen.principal, seen.owner)
    usage = (
        quota.report(session, state.settings, seen.owner.id, seen.owner.name) if manager else None
    )
    return render_template(
        "forge_container/packages.html",
        owner=seen.owner,
        listing=listing,
        query=query,
        sort=sort,
        may_manage=manager,
        quota=usage,
    )
