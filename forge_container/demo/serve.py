"""``demo serve``: seed the first admin, say how to log in, and run a real server."""

from __future__ import annotations

import logging
import secrets
import shlex
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import click
from flask import Flask
from sqlalchemy import select

from forge_container.demo import accounts
from forge_container.demo.models import User, db
from forge_container.state import get_state

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5000
DEMO_ORG = "demo"
GUNICORN_OPTIONS: dict[str, Any] = {"workers": 2, "worker_class": "gthread", "threads": 8}
#: What :class:`PeriodicCleanup` runs: the registry's cleanup jobs, inline, on this demo.
CLEANUP_COMMAND: tuple[str, ...] = (
    *(sys.executable, "-m", "flask", "--app", "forge_container.demo"),
    *("container", "cleanup"),
)


def address(environ: Mapping[str, str]) -> tuple[str, int]:
    """``$HOST`` and ``$PORT``, with their defaults."""
    host = environ.get("HOST") or DEFAULT_HOST
    port_text = environ.get("PORT") or str(DEFAULT_PORT)
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise click.ClickException(f"PORT must be a TCP port number, got {port_text!r}")
    return host, int(port_text)


def public_address(host: str, port: int) -> str:
    """How clients reach ``host:port`` (a wildcard bind is reached on loopback)."""
    if host in {"0.0.0.0", "::", "[::]", ""}:
        host = DEFAULT_HOST
    elif ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{host}:{port}"


def seed_and_report(host: str, port: int, environ: Mapping[str, str]) -> None:
    """On the first run create a site admin and the ``demo`` org; then print how to log in.

    ``$FORGE_DEMO_ADMIN_USER`` names the admin (``admin``); ``$FORGE_DEMO_ADMIN_PASSWORD``
    sets its password (random on the first run), and resets it on later runs.
    """
    name = environ.get("FORGE_DEMO_ADMIN_USER") or "admin"
    password = environ.get("FORGE_DEMO_ADMIN_PASSWORD") or None
    if db.session.scalar(select(User.id).limit(1)) is None:
        password = password or secrets.token_urlsafe(12)
        accounts.create_user(name, password, admin=True)
        click.echo(f"Created site admin {name!r} with password: {password}")
        if accounts.find_user(DEMO_ORG) is None and accounts.find_org(DEMO_ORG) is None:
            accounts.create_org(DEMO_ORG, name)
            click.echo(f"Created organisation {DEMO_ORG!r} owned by {name!r}.")
    else:
        admin = accounts.find_user(name)
        if admin is None:
            click.echo(f"No user {name!r} (FORGE_DEMO_ADMIN_USER) and users exist: not seeding.")
            password = None
        elif password:
            accounts.set_password(admin, password)
            click.echo(f"Reset the password of {admin.name!r} from FORGE_DEMO_ADMIN_PASSWORD.")
        else:
            click.echo(
                f"Site admin {admin.name!r} exists; its password was printed on the first run"
                " (set FORGE_DEMO_ADMIN_PASSWORD to reset it)."
            )
    click.echo(_examples(public_address(host, port), name, password))


def _examples(where: str, user: str, password: str | None) -> str:
    secret = shlex.quote(password) if password else "PASSWORD"
    return "\n".join(
        [
            "",
            f"Web UI:   http://{where}/  (sign in at http://{where}/login)",
            f"Registry: http://{where}/v2/",
            "",
            "Log in and push an image:",
            f"  skopeo login --tls-verify=false {where} -u {shlex.quote(user)} -p {secret}",
            f"  skopeo copy --dest-tls-verify=false docker://docker.io/library/busybox:latest"
            f" docker://{where}/{DEMO_ORG}/hello:latest",
            f"  docker login {where}   # plain HTTP: docker allows it for 127.0.0.0/8 only",
            f"  docker pull {where}/{DEMO_ORG}/hello:latest",
            "",
        ]
    )


class PeriodicCleanup:
    """Run ``flask container cleanup`` now and then every ``interval`` seconds, so the demo
    needs no Redis, worker or cron.

    A daemon thread of the serving process (gunicorn's master) starts each run as a process
    of its own: nothing of the app (connections, locks) lives in the master, which forks the
    workers, and a failed run is only reported. Its output goes to the server's.
    """

    def __init__(self, interval: float, command: Sequence[str] = CLEANUP_COMMAND) -> None:
        self.interval = interval
        self.command = list(command)
        self.runs = 0
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="periodic-cleanup", daemon=True)

    def start(self) -> None:
        click.echo(f"Running the registry's cleanup jobs every {self.interval:g} s.", err=True)
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        self._stopped.set()
        self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stopped.is_set():
            try:
                status = str(subprocess.run(self.command, check=False).returncode)
            except OSError as exc:
                status = f"not started: {exc}"
            if status != "0":
                click.echo(f"The periodic cleanup failed ({status}); next try later.", err=True)
            self.runs += 1
            self._stopped.wait(self.interval)


def run_server(app: Flask, host: str, port: int) -> None:
    """Serve with gunicorn (gthread, 2 workers x 8 threads) if installed, else werkzeug.

    Under gunicorn the registry's cleanup jobs run every ``CLEANUP_INTERVAL`` seconds.
    """
    try:
        from gunicorn.app.base import BaseApplication  # type: ignore[import-untyped]
    except ImportError:
        click.echo(
            "gunicorn is not installed: serving with werkzeug (threaded); run"
            " `flask container cleanup` now and then for the registry's cleanup jobs.",
            err=True,
        )
        from werkzeug.serving import run_simple

        run_simple(host, port, app, threaded=True)
        return
    cleanup = PeriodicCleanup(get_state(app).settings.cleanup_interval)
    _gunicorn(BaseApplication, f"{public_bind(host)}:{port}", cleanup).run()


def public_bind(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _gunicorn(base: Any, bind: str, cleanup: PeriodicCleanup | None = None) -> Any:
    from gunicorn.glogging import Logger  # type: ignore[import-untyped]

    class StderrLogger(Logger):  # type: ignore[misc]
        """gunicorn's logger with the access log on stderr, like the error log."""

        def setup(self, cfg: Any) -> None:
            super().setup(cfg)
            for handler in self.access_log.handlers:
                if isinstance(handler, logging.StreamHandler) and handler.stream is sys.stdout:
                    handler.setStream(sys.stderr)

    class DemoServer(base):  # type: ignore[misc]
        """Each worker builds its own app with :func:`forge_container.demo.create_app`."""

        def load_config(self) -> None:
            options = {
                **GUNICORN_OPTIONS,
                "bind": bind,
                "accesslog": "-",
                "errorlog": "-",
                "logger_class": StderrLogger,
                # No control socket in $HOME (newer gunicorn): several demo servers may run at once.
                "control_socket_disable": True,
            }
            if cleanup is not None:
                # In the master, once it serves (never in the forked workers).
                options["when_ready"] = lambda server: cleanup.start()
            for key, value in options.items():
                if key in self.cfg.settings:
                    self.cfg.set(key, value)

        def load(self) -> Flask:
            from forge_container.demo import create_app

            return create_app()

    return DemoServer()
