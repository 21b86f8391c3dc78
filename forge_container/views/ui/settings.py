"""``/<owner>/-/packages/container/-/settings``: the owner's cleanup rule, with a preview.

Owner admins only (``access.may_manage_rules``); others get a 404, as the page is no
business of theirs. A save is a POST with the CSRF token; a refused field re-renders the
form with the message and saves nothing.
"""

from __future__ import annotations

from flask import abort, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from forge_container import access
from forge_container.registry import cleanup
from forge_container.views.ui import ui_bp
from forge_container.views.ui.common import Viewer, check_csrf, viewer
from forge_container.views.ui.packages import OWNER_ROOT

FLAGS = ("enabled", "remove_untagged", "match_full_name")


def _number(name: str) -> int:
    text = request.form.get(name, "").strip() or "0"
    if not (text.isascii() and text.isdigit()) or len(text) > 9:
        raise cleanup.RuleInvalid(name, "must be a whole number")
    return int(text)


def _save(seen: Viewer) -> None:
    """Save the posted rule, or raise :class:`cleanup.RuleInvalid` having saved nothing."""
    form = request.form
    cleanup.save_rule(
        seen.state.db.session(),
        seen.owner.id,
        enabled="enabled" in form,
        keep_count=_number("keep_count"),
        keep_pattern=form.get("keep_pattern", "").strip(),
        remove_pattern=form.get("remove_pattern", "").strip(),
        remove_days=_number("remove_days"),
        remove_untagged="remove_untagged" in form,
        match_full_name="match_full_name" in form,
    )


def _page(
    seen: Viewer, values: object, error: cleanup.RuleInvalid | None, status: int
) -> ResponseReturnValue:
    state = seen.state
    report = None
    if error is None:
        report = cleanup.preview(state.db.session(), state.storage, state.settings, seen.owner.id)
    page = render_template(
        "forge_container/settings.html",
        owner=seen.owner,
        rule=values,
        error=error,
        report=report,
        saved=request.args.get("saved") == "1",
    )
    return page, status


@ui_bp.route(OWNER_ROOT + "/-/settings", methods=["GET", "POST"])
def settings(owner: str) -> ResponseReturnValue:
    if request.method == "POST":
        check_csrf()
    seen = viewer(owner)
    if not access.may_manage_rules(seen.state, seen.principal, seen.owner):
        abort(404)
    if request.method == "GET":
        stored = cleanup.get_rule(seen.state.db.session(), seen.owner.id)
        rule = stored or cleanup.RuleInfo(owner_id=seen.owner.id)
        return _page(seen, rule, None, 200)
    try:
        _save(seen)
    except cleanup.RuleInvalid as exc:
        posted = {**request.form.to_dict(), **{flag: flag in request.form for flag in FLAGS}}
        return _page(seen, posted, exc, 400)
    return redirect(url_for(".settings", owner=seen.owner.name, saved=1), 303)
