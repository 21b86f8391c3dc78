"""``flask container worker|scheduler|cleanup``: background jobs, on RQ or inline."""

from __future__ import annotations

import click
from rq import Queue

from forge_container import jobs
from forge_container.cli import container_cli
from forge_container.state import get_state


@container_cli.command("worker")
@click.option("--burst", is_flag=True, help="Stop once the queue is empty.")
@click.option(
    "--with-scheduler",
    is_flag=True,
    help="Also move jobs scheduled for later (enqueue_in/enqueue_at, retries) to the queue.",
)
def worker_command(burst: bool, with_scheduler: bool) -> None:
    """Run an RQ worker for the registry's queue, in the app context.

    It is RQ's SimpleWorker: jobs run in the worker process itself, not in a forked child,
    so the app's database connections are never shared across a fork; run several workers
    for parallelism.
    """
    from rq import SimpleWorker

    queue = _queue()
    worker = SimpleWorker([queue], connection=queue.connection)
    worker.work(burst=burst, with_scheduler=with_scheduler)


@container_cli.command("scheduler")
def scheduler_command() -> None:
    """Enqueue the cleanup jobs every CONTAINER_REGISTRY_CLEANUP_INTERVAL seconds (RQ cron).

    Workers (``flask container worker``) run them. The jobs have fixed ids, so a second
    scheduler adds no duplicates.
    """
    queue = _queue()
    scheduler = jobs.periodic_scheduler()
    click.echo(
        f"Enqueueing the cleanup jobs on {queue.name!r} every"
        f" {get_state().settings.cleanup_interval} s."
    )
    scheduler.start()  # type: ignore[no-untyped-call]


@container_cli.command("cleanup")
@click.option("--dry-run", is_flag=True, help="Report what would go; remove nothing.")
@click.option(
    "--only",
    type=click.Choice(jobs.PERIODIC),
    help="Run one job: expire (abandoned uploads), gc (garbage collection), rules.",
)
@click.option("-v", "--verbose", is_flag=True, help="List the manifests removed.")
def cleanup_command(dry_run: bool, only: str | None, verbose: bool) -> None:
    """Run the cleanup jobs now, inline: cleanup rules, expired uploads, garbage collection.

    For cron or a systemd timer, with or without Redis.
    """
    run = jobs.run_all(dry_run=dry_run, only=only)
    if run.rules is not None:
        click.echo(jobs.describe_rules(run.rules))
        if verbose:
            for version in run.rules.versions:
                click.echo(
                    f"  {version.owner_name}/{version.image}@{version.digest}"
                    f" ({jobs.size(version.size)}; {version.reason})"
                )
    if run.expiry is not None:
        click.echo(jobs.describe_expiry(run.expiry))
    if run.gc is not None:
        click.echo(jobs.describe_gc(run.gc))
        if verbose:
            for manifest in run.gc.manifests:
                click.echo(
                    f"  {manifest.owner_name}/{manifest.image}@{manifest.digest}"
                    f" ({jobs.size(manifest.size)})"
                )
    if dry_run:
        click.echo("Dry run: nothing was removed.")


def _queue() -> Queue:
    if get_state().redis is None:
        raise click.ClickException(
            "CONTAINER_REGISTRY_REDIS_URL is not set: run `flask container cleanup` from cron"
            " or a systemd timer instead"
        )
    return jobs.queue()
