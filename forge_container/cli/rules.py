"""``flask container rules ...``: owners' cleanup rules, previewed before they apply.

The commands run as the operator: whoever may run ``flask`` may change any owner's rule.
Owners are named as in image names and resolved through the host adapter.
"""

from __future__ import annotations

from collections.abc import Callable

import click

from forge_container.cli import container_cli
from forge_container.host import Owner
from forge_container.registry import cleanup
from forge_container.registry.cleanup import CleanupReport, RuleInfo, RuleInvalid
from forge_container.state import get_state

#: The option that sets each rule field, for error messages.
_OPTIONS = {
    "enabled": "--enable/--disable",
    "keep_count": "--keep-count",
    "keep_pattern": "--keep-pattern",
    "remove_pattern": "--remove-pattern",
    "remove_days": "--remove-days",
    "remove_untagged": "--remove-untagged/--keep-untagged",
    "match_full_name": "--match-full-name/--match-tag",
}
_REASONS = {
    "tags": "its tags were removed",
    "untagged": "untagged",
    "index": "a child of a removed index",
    "subject": "refers to a removed manifest",
}


@container_cli.group("rules")
def rules_group() -> None:
    """Owners' cleanup rules: which tags and manifests the cleanup job removes."""


@rules_group.command("show")
@click.argument("owner")
def show_command(owner: str) -> None:
    """Show OWNER's cleanup rule."""
    _with_rule(owner, _echo_rule)


@rules_group.command("set")
@click.argument("owner")
@click.option("--enable/--disable", "enabled", default=None, help="Run the rule in the job.")
@click.option("--keep-count", type=int, help="Keep the N most recently pushed tags of an image.")
@click.option("--keep-pattern", help="Keep tags that fully match this regex ('' clears it).")
@click.option(
    "--remove-pattern",
    help="Remove only tags that fully match this regex ('' clears it: any tag).",
)
@click.option("--remove-days", type=int, help="Remove only tags pushed more than N days ago.")
@click.option(
    "--remove-untagged/--keep-untagged",
    "remove_untagged",
    default=None,
    help="Also remove manifests without tags that nothing kept needs.",
)
@click.option(
    "--match-full-name/--match-tag",
    "match_full_name",
    default=None,
    help="Match patterns against '<image>/<tag>' instead of the tag.",
)
def set_command(
    owner: str,
    enabled: bool | None,
    keep_count: int | None,
    keep_pattern: str | None,
    remove_pattern: str | None,
    remove_days: int | None,
    remove_untagged: bool | None,
    match_full_name: bool | None,
) -> None:
    """Create or change OWNER's rule (options left out keep their value), then preview it.

    Tags are judged as Gitea does: the --keep-count newest stay, and 'latest'; of the
    others, a tag goes unless it matches --keep-pattern, is newer than --remove-days, or
    --remove-pattern is set and it does not match. A rule without any of these four
    removes no tags. Manifests go with their last tag, unless an index or a kept
    manifest needs them; signatures and SBOMs follow the manifest they refer to.
    """
    found = _owner(owner)
    state = get_state()
    try:
        rule = cleanup.save_rule(
            state.db.session(),
            found.id,
            enabled=enabled,
            keep_count=keep_count,
            keep_pattern=keep_pattern,
            remove_pattern=remove_pattern,
            remove_days=remove_days,
            remove_untagged=remove_untagged,
            match_full_name=match_full_name,
        )
    except RuleInvalid as exc:
        raise click.BadParameter(exc.message, param_hint=_OPTIONS[exc.field]) from None
    click.echo("Saved.")
    _echo_rule(found, rule)
    click.echo()
    _echo_preview(found, rule)


@rules_group.command("preview")
@click.argument("owner")
def preview_command(owner: str) -> None:
    """Show what OWNER's rule would remove now (even while it is disabled)."""
    _with_rule(owner, _echo_preview)


@rules_group.command("apply")
@click.argument("owner", required=False)
@click.option("--dry-run", is_flag=True, help="Only show what would be removed.")
def apply_command(owner: str | None, dry_run: bool) -> None:
    """Apply OWNER's enabled rule now, or every enabled rule."""
    state = get_state()
    owner_id = _owner(owner).id if owner is not None else None
    report = cleanup.apply_rules(
        state.db.session(), state.storage, state.settings, owner_id=owner_id, dry_run=dry_run
    )
    if not report.rules:
        click.echo(f"{owner} has no enabled cleanup rule." if owner else "No enabled rules.")
        return
    _echo_report(report)
    if report.failed:
        raise click.ClickException(
            f"cleanup failed for {', '.join(report.failed)} (see the log); run it again"
        )


@rules_group.command("delete")
@click.argument("owner")
def delete_command(owner: str) -> None:
    """Delete OWNER's cleanup rule."""
    found = _owner(owner)
    if cleanup.delete_rule(get_state().db.session(), found.id):
        click.echo(f"Deleted the cleanup rule of {found.name}.")
    else:
        click.echo(f"{found.name} has no cleanup rule.")


def _owner(name: str) -> Owner:
    owner = get_state().host.get_owner(name)
    if owner is None:
        raise click.ClickException(f"no user or organisation named {name!r}")
    return owner


def _with_rule(name: str, show: Callable[[Owner, RuleInfo], None]) -> None:
    """``show`` the owner's rule, or say it has none."""
    owner = _owner(name)
    rule = cleanup.get_rule(get_state().db.session(), owner.id)
    if rule is None:
        click.echo(f"{owner.name} has no cleanup rule.")
    else:
        show(owner, rule)


def _echo_rule(owner: Owner, rule: RuleInfo) -> None:
    click.echo(f"Cleanup rule of {owner.name}: {'enabled' if rule.enabled else 'disabled'}")
    lines = [
        ("keep count", str(rule.keep_count)),
        ("keep pattern", rule.keep_pattern or "(none)"),
        ("remove pattern", rule.remove_pattern or "(none: any tag)"),
        ("remove days", f"{rule.remove_days} (older than that)" if rule.remove_days else "0"),
        ("remove untagged", "yes" if rule.remove_untagged else "no"),
        ("match", "<image>/<tag>" if rule.match_full_name else "<tag>"),
    ]
    for label, value in lines:
        click.echo(f"  {label + ':':<17}{value}")
    if not rule.judges_tags:
        click.echo("  (no tag criterion is set: no tags are removed)")


def _echo_preview(owner: Owner, rule: RuleInfo) -> None:
    state = get_state()
    report = cleanup.preview(state.db.session(), state.storage, state.settings, owner.id)
    if not rule.enabled:
        click.echo("The rule is disabled: nothing is removed until it is enabled. It would:")
    _echo_report(report)


def _echo_report(report: CleanupReport) -> None:
    verb = "Would remove" if report.dry_run else "Removed"
    if not report.versions and not report.tags:
        click.echo(f"{verb} nothing.")
        return
    click.echo(
        f"{verb} {len(report.versions)} manifest(s) ({_size(report.size)})"
        f" and {report.tag_count} tag(s):"
    )
    for version in report.versions:
        tags = f" ({', '.join(version.tags)})" if version.tags else ""
        click.echo(
            f"  {version.owner_name}/{version.image}@{version.digest}{tags}"
            f" {_size(version.size)}, {_REASONS.get(version.reason, version.reason)}"
        )
    for tag in report.tags:
        click.echo(f"  {tag.owner_name}/{tag.image}:{tag.tag} (tag only; {tag.digest} stays)")


def _size(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    value, units = size / 1024, ["KiB", "MiB", "GiB", "TiB"]
    while value >= 1024 and len(units) > 1:
        value /= 1024
        units.pop(0)
    return f"{value:.1f} {units[0]}"
