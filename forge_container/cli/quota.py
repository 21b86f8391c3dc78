"""``flask container usage|quota ...``: storage quotas per owner.

``usage [OWNER]`` shows usage against quota; ``quota show|set|reset OWNER`` manages an
owner's overrides of the ``CONTAINER_REGISTRY_QUOTA_*`` settings. Owners are named as in
image names and resolved through the host adapter.
"""

from __future__ import annotations

from dataclasses import dataclass

import click

from forge_container.cli import container_cli
from forge_container.host import Owner
from forge_container.registry import quota
from forge_container.sizes import human_size, parse_size
from forge_container.state import get_state

_HEADERS = (
    "OWNER",
    "SIZE",
    "SIZE LIMIT",
    "USED",
    "VERSIONS",
    "VERSION LIMIT",
    "USED",
    "BLOB LIMIT",
)


@dataclass(frozen=True)
class _Limit:
    """A limit given on the command line; ``None`` returns to the setting."""

    value: int | None


def _size_limit(ctx: click.Context, param: click.Parameter, value: str | None) -> _Limit | None:
    return _parse_limit(value, sizes=True)


def _count_limit(ctx: click.Context, param: click.Parameter, value: str | None) -> _Limit | None:
    return _parse_limit(value, sizes=False)


def _parse_limit(value: str | None, *, sizes: bool) -> _Limit | None:
    """``default``, ``unlimited`` (or ``0``), or a number: a size with units, or a count."""
    if value is None:
        return None
    text = value.strip().lower()
    if text == "default":
        return _Limit(None)
    if text == "unlimited":
        return _Limit(0)
    if not sizes:
        if not text.isdigit():
            raise click.BadParameter(f"{value!r} is not a whole number, 'unlimited' or 'default'")
        return _Limit(int(text))
    try:
        return _Limit(parse_size(value))
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@container_cli.command("usage")
@click.argument("owner", required=False)
def usage_command(owner: str | None) -> None:
    """Show usage against quota of OWNER, or of every owner with images.

    Total size counts each distinct blob of an owner's images once; versions count every
    manifest; percentages are of the limit (100% or more: pushes that add are refused).
    """
    state = get_state()
    session = state.db.session()
    if owner is not None:
        found = _owner(owner)
        owners = [(found.id, found.name)]
    else:
        owners = quota.owners(session)
        if not owners:
            click.echo("No owner has images yet.")
            return
    rows = [_usage_row(quota.report(session, state.settings, *owner)) for owner in owners]
    widths = [max(len(row[i]) for row in [_HEADERS, *rows]) for i in range(len(_HEADERS))]
    for row in [_HEADERS, *rows]:
        click.echo(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )


@container_cli.group("quota")
def quota_group() -> None:
    """Owners' quota overrides of the CONTAINER_REGISTRY_QUOTA_* settings."""


@quota_group.command("show")
@click.argument("owner")
def show_command(owner: str) -> None:
    """Show OWNER's limits (overridden or default) and usage."""
    _show(_owner(owner))


@quota_group.command("set")
@click.argument("owner")
@click.option(
    "--total-size",
    metavar="SIZE",
    callback=_size_limit,
    help="Bytes of distinct blobs of all the owner's images (10GiB, 500MB, ...).",
)
@click.option(
    "--versions",
    metavar="COUNT",
    callback=_count_limit,
    help="Manifests of all the owner's images.",
)
@click.option(
    "--blob-size",
    metavar="SIZE",
    callback=_size_limit,
    help="Bytes of the largest single blob (1GiB, ...).",
)
def set_command(
    owner: str, total_size: _Limit | None, versions: _Limit | None, blob_size: _Limit | None
) -> None:
    """Override some of OWNER's limits; the others stay as they are.

    Each value is a number (sizes with a unit: B, KB, MB, GB, TB or KiB, MiB, GiB, TiB),
    'unlimited' (or 0), or 'default' to follow the setting again.
    """
    given = {
        quota.Quota.TOTAL_SIZE: total_size,
        quota.Quota.VERSIONS: versions,
        quota.Quota.BLOB_SIZE: blob_size,
    }
    changes = {kind: limit.value for kind, limit in given.items() if limit is not None}
    if not changes:
        raise click.UsageError("give at least one of --total-size, --versions, --blob-size")
    found = _owner(owner)
    quota.set_override(get_state().db.session(), found.id, changes)
    _show(found)


@quota_group.command("reset")
@click.argument("owner")
def reset_command(owner: str) -> None:
    """Drop OWNER's overrides: the settings apply again."""
    found = _owner(owner)
    if not quota.reset_override(get_state().db.session(), found.id):
        click.echo(f"{found.name} had no overrides.")
    _show(found)


def _owner(name: str) -> Owner:
    owner = get_state().host.get_owner(name)
    if owner is None:
        raise click.ClickException(f"no user or organisation named {name!r}")
    return owner


def _show(owner: Owner) -> None:
    state = get_state()
    found = quota.report(state.db.session(), state.settings, owner.id, owner.name)
    click.echo(f"Quota of {owner.name} ({owner.kind} {owner.id}):")
    usage = {
        quota.Quota.TOTAL_SIZE: found.usage.total_size,
        quota.Quota.VERSIONS: found.usage.versions,
    }
    for kind in quota.Quota:
        limit = found.limits.of(kind)
        source = "default" if found.override.of(kind) is None else "override"
        line = f"  {kind.label:<11} {_limit(kind, limit)} ({source})"
        if kind in usage:
            used = usage[kind]
            line = f"{line.ljust(40)} in use: {_amount(kind, used)}"
            if limit:
                line += f" ({_percent(used, limit)})"
        click.echo(line)
    exempt = "are" if state.settings.quota_exempt_admins else "are not"
    click.echo(f"Site admins {exempt} exempt (CONTAINER_REGISTRY_QUOTA_EXEMPT_ADMINS).")


def _usage_row(found: quota.Report) -> tuple[str, ...]:
    limits, usage = found.limits, found.usage
    return (
        found.owner_name,
        human_size(usage.total_size),
        _limit(quota.Quota.TOTAL_SIZE, limits.total_size),
        _percent(usage.total_size, limits.total_size),
        str(usage.versions),
        _limit(quota.Quota.VERSIONS, limits.versions),
        _percent(usage.versions, limits.versions),
        _limit(quota.Quota.BLOB_SIZE, limits.blob_size),
    )


def _amount(kind: quota.Quota, value: int) -> str:
    return str(value) if kind is quota.Quota.VERSIONS else human_size(value)


def _limit(kind: quota.Quota, value: int) -> str:
    return _amount(kind, value) if value else "unlimited"


def _percent(used: int, limit: int) -> str:
    """Of the limit, rounded down (so 100% means at or over it); ``-`` when unlimited."""
    return f"{100 * used // limit}%" if limit else "-"
