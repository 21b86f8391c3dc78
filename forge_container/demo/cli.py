"""``flask --app forge_container.demo demo ...``: set up and fill the demo forge."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import click
from flask import current_app
from flask.cli import AppGroup

from forge_container import schema
from forge_container.demo import accounts, serve
from forge_container.demo.accounts import DemoError
from forge_container.demo.models import Role, db

demo_cli = AppGroup("demo", help="Manage the demo forge: users, organisations, repos, tokens.")

ROLE = click.Choice([role.label for role in Role], case_sensitive=False)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn :class:`DemoError` into a clean ``Error: ...`` and exit status 1."""
    try:
        yield
    except DemoError as exc:
        db.session.rollback()
        raise click.ClickException(str(exc)) from None


def init_database() -> None:
    """Create the demo's tables and apply the registry's migrations (both idempotent)."""
    db.create_all()
    click.echo(
        "Created any missing demo forge tables (forge_*) in"
        f" {db.engine.url.render_as_string(hide_password=True)}."
    )
    schema.upgrade()
    click.echo("Applied the container registry's migrations (container_*) up to head.")


@demo_cli.command("init")
def init_command() -> None:
    """Create the demo's tables and apply the registry's migrations."""
    init_database()


@demo_cli.command("create-user")
@click.argument("name")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
@click.option("--admin", is_flag=True, help="Make a site admin (all rights everywhere).")
@click.option("--private", is_flag=True, help="Hide the user's images from other users.")
def create_user_command(name: str, password: str, admin: bool, private: bool) -> None:
    """Create a user NAME."""
    with user_errors():
        user = accounts.create_user(name, password, admin=admin, public=not private)
    kind = "site admin" if admin else "user"
    click.echo(f"Created {kind} {user.name} ({'private' if private else 'public'}).")


@demo_cli.command("create-org")
@click.argument("name")
@click.option("--owner", required=True, help="User who joins the Owners team (role admin).")
@click.option("--private", is_flag=True, help="Hide the organisation's images from non-members.")
def create_org_command(name: str, owner: str, private: bool) -> None:
    """Create an organisation NAME owned by a user."""
    with user_errors():
        org = accounts.create_org(name, owner, public=not private)
    click.echo(
        f"Created organisation {org.name} ({'private' if private else 'public'});"
        f" {owner} is in its Owners team (role admin)."
    )


@demo_cli.command("add-member")
@click.argument("org")
@click.argument("user")
@click.option("--team", required=True, help="Team name; created with --role if missing.")
@click.option("--role", required=True, type=ROLE, help="The team's role on the org's images.")
def add_member_command(org: str, user: str, team: str, role: str) -> None:
    """Add USER to a team of organisation ORG."""
    with user_errors():
        found = accounts.add_member(org, user, team=team, role=role)
    click.echo(f"Added {user} to team {found.name!r} of {org} (role {role.lower()}).")


@demo_cli.command("create-repo")
@click.argument("full_name", metavar="OWNER/NAME")
@click.option("--private", is_flag=True, help="Only the owner's members and collaborators see it.")
def create_repo_command(full_name: str, private: bool) -> None:
    """Create a repository; images OWNER/NAME[/...] follow its visibility and collaborators."""
    with user_errors():
        owner, name = accounts.split_repo(full_name)
        accounts.create_repo(owner, name, private=private)
    click.echo(f"Created {'private' if private else 'public'} repository {owner}/{name}.")


@demo_cli.command("add-collaborator")
@click.argument("full_name", metavar="OWNER/NAME")
@click.argument("user")
@click.option("--role", required=True, type=ROLE, help="The collaborator's role.")
def add_collaborator_command(full_name: str, user: str, role: str) -> None:
    """Give USER a role on repository OWNER/NAME."""
    with user_errors():
        owner, name = accounts.split_repo(full_name)
        accounts.add_collaborator(owner, name, user, role=role)
    click.echo(f"Added {user} to {owner}/{name} as a collaborator (role {role.lower()}).")


@demo_cli.command("create-token")
@click.argument("user")
@click.option(
    "--scopes", required=True, help="Comma-separated: read:package, write:package (implies read)."
)
@click.option("--name", default=None, help="A name to revoke it by (default: token-<n>).")
@click.option("--expires-days", type=click.IntRange(min=1), default=None, help="Lifetime in days.")
def create_token_command(
    user: str, scopes: str, name: str | None, expires_days: int | None
) -> None:
    """Create a personal access token for USER and print it (once)."""
    with user_errors():
        token, secret = accounts.create_token(user, scopes, name=name, expires_days=expires_days)
    expiry = "never expires" if token.expires_at is None else f"expires {token.expires_at:%Y-%m-%d}"
    click.echo(
        f"Created token {token.name!r} for {user} (scopes: {token.scopes.replace(' ', ', ')};"
        f" {expiry}). Copy it now, it is not shown again:"
    )
    click.echo(secret)


@demo_cli.command("revoke-token")
@click.argument("user")
@click.argument("name")
def revoke_token_command(user: str, name: str) -> None:
    """Revoke USER's token NAME."""
    with user_errors():
        accounts.revoke_token(user, name)
    click.echo(f"Revoked token {name!r} of {user}.")


@demo_cli.command("serve")
def serve_command() -> None:
    """Init, seed an admin and a ``demo`` org on first run, print how to log in, then serve.

    Listens on $HOST:$PORT (127.0.0.1:5000): gunicorn when installed, else werkzeug.
    """
    init_database()
    host, port = serve.address(os.environ)
    with user_errors():
        serve.seed_and_report(host, port, os.environ)
    db.session.remove()
    for engine in db.engines.values():
        engine.dispose()
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    serve.run_server(app, host, port)
