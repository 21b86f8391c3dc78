"""What every package page needs: the signed-in principal, permissions, CSRF, links, errors.

Permissions are the ``/v2`` rules (``access.allowed_actions``) for the principal of the
host's web session: an image the principal cannot pull is a 404, as if it did not exist.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, abort, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

from forge_container import access
from forge_container.errors import ManifestUnknown, NameUnknown, RegistryError
from forge_container.host import Owner, Principal, Repository
from forge_container.names import ImageName, InvalidName, parse_name
from forge_container.registry import browse
from forge_container.state import RegistryState, get_state
from forge_container.views.responses import external_origin
from forge_container.views.ui import ui_bp

#: The session key of the pages' CSRF token (the host owns the session: keep to our key).
CSRF_SESSION_KEY = "forge_container_csrf"
#: Longest search text taken from a query string.
MAX_QUERY = 100


@dataclass(frozen=True)
class Viewer:
    """Who is looking at which owner's images."""

    state: RegistryState
    owner: Owner
    principal: Principal | None


@dataclass(frozen=True)
class ImageAccess:
    """An image the viewer may at least pull, and everything the viewer may do with it."""

    viewer: Viewer
    name: ImageName
    actions: frozenset[str]

    @property
    def may_delete(self) -> bool:
        return "delete" in self.actions


@dataclass(frozen=True)
class SourceLinks:
    """``org.opencontainers.image.source``/``revision``, linked into the forge when they match."""

    source: str | None
    source_url: str | None
    #: ``owner/repository`` when the source is a forge repository, else the URL.
    source_label: str | None
    repository: Repository | None
    revision: str | None
    commit_url: str | None


def viewer(owner_name: str) -> Viewer:
    """The owner the URL names and the session's principal; 404 for an unknown owner."""
    state = get_state()
    owner = access.find_owner(state, owner_name)
    if owner is None:
        abort(404)
    return Viewer(state, owner, state.host.principal_from_session())


def image_access(owner_name: str, image: str, *, need: str = "pull") -> ImageAccess:
    """The image the URL names: 404 unless the viewer may pull it, 403 without ``need``.

    Anything but a pull asks the forge afresh (no cache), as a delete must.
    """
    seen = viewer(owner_name)
    try:
        name = parse_name(f"{seen.owner.name.lower()}/{image}")
    except InvalidName:
        abort(404)
    actions = access.allowed_actions(seen.state, seen.principal, name, cached=need == "pull")
    if "pull" not in actions:
        abort(404)
    if need not in actions:
        abort(403, description=f"You may not {need} {name}.")
    return ImageAccess(seen, name, actions)


def readable(seen: Viewer) -> browse.Readable:
    """Whether the viewer may pull ``<owner>/<image>``, for listings."""

    def check(image: str) -> bool:
        name = ImageName(owner=seen.owner.name.lower(), image=image)
        return "pull" in access.allowed_actions(seen.state, seen.principal, name)

    return check


def linked_repository(seen: Viewer, name: str) -> Repository | None:
    """The owner's forge repository ``name``, if the viewer may read its images."""
    repository = seen.state.host.get_repository(seen.owner, name)
    if repository is None:
        return None
    image = ImageName(owner=seen.owner.name.lower(), image=repository.name.lower())
    return repository if readable(seen)(image.image) else None


def source_links(seen: Viewer, meta: Mapping[str, Any]) -> SourceLinks:
    """Link ``source`` to the forge repository it names (a URL on this site), ``revision``
    to that repository's commit; other sources stay plain external links."""
    source = meta.get("source") if isinstance(meta.get("source"), str) else None
    revision = meta.get("revision") if isinstance(meta.get("revision"), str) else None
    found = _source_repository(seen, source) if source else None
    repository = found[1] if found is not None else None
    commit = None
    if repository is not None and revision:
        commit = seen.state.host.commit_url(repository, revision)
    return SourceLinks(
        source=source,
        source_url=repository.url if repository is not None else source,
        source_label=f"{found[0].name}/{found[1].name}" if found is not None else source,
        repository=repository,
        revision=revision,
        commit_url=commit,
    )


def _source_repository(seen: Viewer, source: str) -> tuple[Owner, Repository] | None:
    parts = urlsplit(source)
    if parts.netloc.lower() not in {site_host().lower(), registry_host().lower()}:
        return None
    path = parts.path.strip("/").removesuffix(".git").split("/")
    if len(path) != 2 or not all(path):
        return None
    owner = access.find_owner(seen.state, path[0])
    if owner is None:
        return None
    repository = linked_repository(Viewer(seen.state, owner, seen.principal), path[1])
    return (owner, repository) if repository is not None else None


def site_host() -> str:
    """``host[:port]`` of this site as the browser sees it."""
    origin = external_origin(request, get_state().settings.proxy_count)
    return urlsplit(origin).netloc


def registry_host() -> str:
    """Where clients push and pull: ``CONTAINER_REGISTRY_REGISTRY_HOST`` or this site."""
    return get_state().settings.registry_host or site_host()


def csrf_token() -> str:
    """The session's token for the pages' forms (made on first use)."""
    token = session.get(CSRF_SESSION_KEY)
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session[CSRF_SESSION_KEY] = token
    return token


def check_csrf() -> None:
    """400 unless the form's ``csrf_token`` is the session's."""
    expected = session.get(CSRF_SESSION_KEY)
    sent = request.form.get("csrf_token", "")
    if not isinstance(expected, str) or not hmac.compare_digest(expected, sent):
        abort(400, description="The form has expired or lacks its CSRF token: reload the page.")


def int_arg(name: str, default: int = 1) -> int:
    value = request.args.get(name, "")
    return int(value) if value.isdigit() and len(value) < 10 else default


def choice_arg(name: str, choices: tuple[str, ...]) -> str:
    value = request.args.get(name, "")
    return value if value in choices else choices[0]


def text_arg(name: str) -> str:
    return request.args.get(name, "")[:MAX_QUERY].replace("\0", "")


def render(template: str, **context: Any) -> str:
    return render_template(template, **context)


@ui_bp.context_processor
def _page_context() -> dict[str, Any]:
    return {"fc_layout": get_state().settings.ui_layout, "page_url": page_url}


def page_url(**changes: Any) -> str:
    """This page's URL with some query arguments changed (``None`` drops one)."""
    args = {**request.args.to_dict(), **changes}
    args = {k: v for k, v in args.items() if v is not None and v != ""}
    return url_for(request.endpoint or "", **(request.view_args or {}), **args)


@ui_bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> ResponseReturnValue:
    status = exc.code or 500
    page = render(
        "forge_container/error.html", status=status, title=exc.name, message=exc.description
    )
    return page, status


@ui_bp.errorhandler(RegistryError)
def _registry_error(exc: RegistryError) -> ResponseReturnValue:
    status = 404 if isinstance(exc, NameUnknown | ManifestUnknown) else exc.status
    title = "Not found" if status == 404 else "Cannot do that"
    page = render("forge_container/error.html", status=status, title=title, message=exc.message)
    return page, status


def format_time(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value is not None else "—"


def short_digest(digest: str | None) -> str:
    """``sha256:0123456789ab``: enough to tell digests apart on a page."""
    if not digest:
        return ""
    algorithm, _, hexdigest = digest.partition(":")
    return f"{algorithm}:{hexdigest[:12]}"


def repository_images(owner_name: str, repository_name: str) -> list[dict[str, Any]]:
    """The images of a forge repository the session's principal may see, for the snippet."""
    state = get_state()
    owner = access.find_owner(state, owner_name)
    if owner is None:
        return []
    seen = Viewer(state, owner, state.host.principal_from_session())
    repository = state.host.get_repository(owner, repository_name)
    if repository is None:
        return []
    found = browse.repository_packages(
        state.db.session(), owner.id, repository.id, repository.name, readable(seen)
    )
    return [
        {
            "name": f"{owner.name.lower()}/{p.name}",
            "url": url_for("forge_container_ui.image", owner=owner.name, image=p.name),
            "tags": p.tags,
            "size": p.size,
            "pushed_at": p.pushed_at,
        }
        for p in found
    ]


def install_template_helpers(app: Flask) -> None:
    """Filters and globals every template may use (the repository snippet needs them)."""
    app.add_template_filter(format_time, "fc_time")
    app.add_template_filter(short_digest, "fc_short")
    app.add_template_global(csrf_token, "forge_container_csrf_token")
    app.add_template_global(repository_images, "container_repository_images")
