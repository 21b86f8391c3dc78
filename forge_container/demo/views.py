"""Sign-in, sign-out and the home page, with flask-login and a session-held CSRF token."""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import urlsplit

from flask import Blueprint, Flask, abort, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_login import LoginManager, login_user, logout_user  # type: ignore[import-untyped]
from werkzeug.routing import BuildError

from forge_container.demo import accounts
from forge_container.demo.models import User, db, parse_id

#: The host's login manager; the plugin never installs callbacks on it.
login_manager = LoginManager()
login_manager.login_view = "forge_demo.login"

bp = Blueprint("forge_demo", __name__, template_folder="templates")

_CSRF_KEY = "forge_demo_csrf"


@login_manager.user_loader  # type: ignore[untyped-decorator]
def load_user(user_id: str) -> User | None:
    number = parse_id(user_id)
    user = None if number is None else db.session.get(User, number)
    return user if user is not None and user.is_active else None


def csrf_token() -> str:
    """The session's CSRF token (created on first use); forms post it as ``csrf_token``."""
    token = session.get(_CSRF_KEY)
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session[_CSRF_KEY] = token
    return token


def check_csrf() -> None:
    """Abort with 400 unless the form's ``csrf_token`` matches the session's."""
    expected = session.get(_CSRF_KEY)
    sent = request.form.get("csrf_token", "")
    if not isinstance(expected, str) or not hmac.compare_digest(expected, sent):
        abort(400, description="The form has expired or is missing its CSRF token; reload it.")


def is_safe_next(target: str | None) -> bool:
    """A relative URL on this site (``/path``), never ``//host`` or ``http://...``."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return False
    parts = urlsplit(target)
    return not parts.scheme and not parts.netloc and not any(ord(c) < 32 for c in target)


@bp.route("/")
def home() -> ResponseReturnValue:
    return render_template("demo/home.html", packages_url=packages_url)


def packages_url(owner: str) -> str | None:
    """The registry's package page of ``owner``, when the registry serves its pages."""
    try:
        return url_for("forge_container_ui.packages", owner=owner)
    except BuildError:
        return None


@bp.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    next_url = request.values.get("next", "")
    if request.method == "GET":
        return render_template("demo/login.html", next_url=next_url, error=None)
    check_csrf()
    name = request.form.get("username", "").strip()
    password = request.form.get("password", "")
    user = accounts.check_login(name, password)
    if user is None:
        error = "Wrong user name or password."
        return render_template("demo/login.html", next_url=next_url, error=error, username=name)
    login_user(user)
    session[_CSRF_KEY] = secrets.token_urlsafe(32)
    return redirect(next_url if is_safe_next(next_url) else url_for("forge_demo.home"))


@bp.route("/logout", methods=["POST"])
def logout() -> ResponseReturnValue:
    check_csrf()
    logout_user()
    session.pop(_CSRF_KEY, None)
    return redirect(url_for("forge_demo.home"))


def init_views(app: Flask) -> None:
    """Register the login manager, the pages and ``csrf_token()`` for every template."""
    login_manager.init_app(app)
    app.register_blueprint(bp)
    app.jinja_env.globals["csrf_token"] = csrf_token
