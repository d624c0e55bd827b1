"""`parley` command line (Typer)."""

from __future__ import annotations

import asyncio
import getpass
import json
import secrets
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from parley.banner import Banner, retrieval_line
from parley.kit import telemetry
from parley.kit.logging import configure_logging, database_log, log_to_file, quiet_tenant
from parley.lifecycle.schemas import VisitorSelector
from parley.settings import Settings

app = typer.Typer(help="Parley: multi-tenant AI chat assistants.", no_args_is_help=True)


def _settings(*, one_shot: bool = True) -> Settings:
    """The settings, or a clear one-line error per wrong value. A one-shot command (everything
    but `serve` and `worker`) prints its outcome and only warnings and errors besides, unless
    `PARLEY_LOG_LEVEL=debug`: a person typing `parley reset-password` wants the new password,
    not the migration's log."""

    try:
        settings = Settings()
    except ValidationError as exc:
        typer.secho("Invalid settings:", fg="red", err=True)
        for err in exc.errors():
            name = ".".join(str(p) for p in err["loc"]).upper() or "settings"
            typer.secho(f"  {name}: {err['msg']}", fg="red", err=True)
        raise typer.Exit(2) from exc
    # Before anything imports Alembic (it logs its plugins at import) or starts PostgreSQL.
    log_to_file(database_log(settings.data_dir))
    if one_shot:
        level = "debug" if settings.parley_log_level == "debug" else "warning"
        configure_logging(level, settings.parley_log_format)
    return settings


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="PORT", help="Port to bind.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, max=64, help="API processes.")] = 1,
    demo: Annotated[bool, typer.Option(help="Seed the demo workspace if the DB is empty.")] = False,
) -> None:
    """Migrate, then serve the API (with an in-process job worker unless disabled)."""
    # lazy: uvicorn only for `serve`
    import uvicorn

    settings = _settings(one_shot=False)
    configure_logging(settings.parley_log_level, settings.parley_log_format)
    _exit_cleanly_on_sigterm()
    # lazy: loaded when the command runs (Alembic logs at import; the app loads all)
    from parley.kit import bootstrap

    target = bootstrap.prepare(settings)
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104
    base = settings.parley_public_url or f"http://{shown_host}:{port}"
    banner = _banner(settings, target, base, demo)
    options: dict[str, Any] = {
        "factory": True,
        "host": host,
        "port": port,
        "workers": workers,
        "log_level": settings.parley_log_level,
        "log_config": None,  # our handlers render uvicorn's records (JSON or readable)
        "proxy_headers": True,
        "access_log": False,
        "timeout_graceful_shutdown": 10,
    }
    try:
        if workers > 1:  # uvicorn's supervisor: no single server to watch, announce first
            typer.echo(banner.text(), nl=False)
            uvicorn.run("parley.app:create_app", **options)
        else:
            server = uvicorn.Server(uvicorn.Config("parley.app:create_app", **options))
            _serve_then_announce(server, banner.text())
    finally:
        bootstrap.shutdown(target)


def _serve_then_announce(server: Any, text: str) -> None:
    """Run uvicorn and print the banner once it accepts connections (so its URLs work when a
    person reads them); a start that fails prints no banner."""

    def announce() -> None:
        while not server.started and not server.should_exit:
            time.sleep(0.05)
        if server.started:
            sys.stdout.write(text)
            sys.stdout.flush()

    threading.Thread(target=announce, daemon=True, name="parley-banner").start()
    server.run()


def _exit_cleanly_on_sigterm() -> None:
    """SIGTERM (systemd, Docker, Kubernetes, `kill`) ends the process as Ctrl-C does: through
    `SystemExit`, so the `finally` blocks and exit handlers run and the embedded PostgreSQL
    this process started is stopped. uvicorn catches the signal while it serves, shuts down
    gracefully, then raises it again: it lands here."""

    def handler(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


def _banner(settings: Settings, target: Any, base: str, demo: bool) -> Any:

    banner = Banner(
        base=base,
        database=(
            f"embedded PostgreSQL in {settings.data_dir / 'pg'}"
            if target.embedded is not None
            else "external PostgreSQL (DATABASE_URL)"
        ),
        database_log=database_log(settings.data_dir) if target.embedded is not None else None,
        retrieval=retrieval_line(
            settings.parley_embeddings, settings.embeddings, settings.parley_embedding_model
        ),
        demo=demo,
    )
    if demo:
        # lazy: loaded when the command runs (Alembic logs at import; the app loads all)
        from parley.demo.seed import DEMO_EMAIL, demo_tenant, run_demo_seed

        result = run_demo_seed(settings, target.app_url, base)
        banner.login_email = DEMO_EMAIL
        banner.password = result.password if result.created else None
        banner.knowledge_pages = result.pages
        tenant = result.tenant_id or demo_tenant(settings)
        if tenant is not None:
            quiet_tenant(tenant)
    return banner


@app.command()
def worker(
    concurrency: Annotated[int, typer.Option(min=2, max=1000)] = 20,
) -> None:
    """Run a dedicated job worker (scale these horizontally)."""
    # lazy: loaded when the command runs (Alembic logs at import; the app loads all)
    from parley.app import make_worker
    from parley.kit import bootstrap
    from parley.kit.boot import build_runtime
    from parley.kit.db import platform_session
    from parley.usage.plans import sync_plans

    settings = _settings(one_shot=False)
    configure_logging(settings.parley_log_level, settings.parley_log_format)
    target = bootstrap.prepare(settings, run_migrations=False)

    async def run() -> None:
        runtime = await build_runtime(settings, target.app_url)
        async with platform_session(runtime.db) as session:
            await sync_plans(session, settings)  # the limits the database enforces (0025)
        w = make_worker(runtime)
        w.concurrency = concurrency
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, w.stop)
        try:
            await w.run()
        finally:
            await runtime.db.dispose()

            telemetry.stop()

    asyncio.run(run())


@app.command()
def migrate() -> None:
    """Apply database migrations (as DATABASE_MIGRATION_URL, else DATABASE_URL)."""
    # lazy: loaded when the command runs (Alembic logs at import; the app loads all)
    from parley.kit import bootstrap
    from parley.kit import migrate as m

    settings = _settings()
    bootstrap.prepare(settings)
    typer.echo(f"Database is at {m.head_revision()}")


@app.command("create-user")
def create_user(
    email: Annotated[str, typer.Option(help="Email address (the login).")],
    platform_admin: Annotated[bool, typer.Option(help="Grant platform administration.")] = False,
    password: Annotated[
        str | None, typer.Option(help="Password; prompted when omitted.", envvar="PARLEY_PASSWORD")
    ] = None,
) -> None:
    """Create a user (optionally a platform administrator)."""
    # lazy: loaded when the command runs (Alembic logs at import; the app loads all)
    from parley.admin.commands import create_user as do
    from parley.kit import bootstrap

    settings = _settings()
    secret = password or getpass.getpass("Password: ")
    target = bootstrap.prepare(settings)
    user_id = asyncio.run(do(settings, target.app_url, email, secret, platform_admin))
    typer.echo(f"Created user {email} ({user_id})")


@app.command("reset-password")
def reset_password(
    email: Annotated[str, typer.Option(help="Email address of the account.")],
    password: Annotated[
        str | None,
        typer.Option(
            help="New password; a strong one is made and printed when omitted.",
            envvar="PARLEY_PASSWORD",
        ),
    ] = None,
) -> None:
    """Set a new password for an account (and sign out all its sessions): for a lost demo
    login, or a locked-out administrator."""
    # lazy: loaded when the command runs (Alembic logs at import; the app loads all)
    from parley.admin.commands import reset_password as do
    from parley.kit import bootstrap

    settings = _settings()
    secret = password or secrets.token_urlsafe(12)
    target = bootstrap.prepare(settings)
    who = asyncio.run(do(settings, target.app_url, email, secret))
    typer.echo(f"New password set for {who}; every session it had is signed out.")
    if password is None:
        typer.echo(f"Password: {secret}   (shown once, not stored in clear)")


@app.command("create-tenant")
def create_tenant(
    name: Annotated[str, typer.Option(help="Workspace name.")],
    owner_email: Annotated[str, typer.Option(help="Email of an existing user who will own it.")],
) -> None:
    """Create a workspace owned by an existing user."""
    # lazy: loaded when the command runs (Alembic logs at import; the app loads all)
    from parley.admin.commands import create_tenant as do
    from parley.kit import bootstrap

    settings = _settings()
    target = bootstrap.prepare(settings)
    tenant = asyncio.run(do(settings, target.app_url, name, owner_email))
    typer.echo(f"Created workspace {tenant.name} ({tenant.id}, slug {tenant.slug})")


@app.command("rotate-keys")
def rotate_keys() -> None:
    """Re-encrypt stored secrets under the newest PARLEY_SECRET_KEYS key (then the old key can
    be removed once tokens signed with it have expired)."""
    # lazy: loaded when the command runs (Alembic logs at import; the app loads all)
    from parley.admin.commands import rotate_keys as do
    from parley.kit import bootstrap

    settings = _settings()
    target = bootstrap.prepare(settings)
    count = asyncio.run(do(settings, target.app_url))
    typer.echo(f"Re-encrypted {count} stored secret(s) under the newest key")


# --- data lifecycle: a visitor's data, a workspace's data, backup and restore ---------------

TenantOpt = Annotated[str, typer.Option("--tenant", help="Workspace id.")]


def _selector(
    visitor_id: str | None, email: str | None, channel_id: str | None, external_user_id: str | None
) -> VisitorSelector:

    try:
        return VisitorSelector(
            visitor_id=visitor_id,
            email=email,
            channel_id=channel_id,
            external_user_id=external_user_id,
        )
    except ValidationError as exc:
        raise typer.BadParameter(str(exc.errors()[0]["msg"])) from exc


VisitorOpt = Annotated[str | None, typer.Option(help="The visitor's id.")]
EmailOpt = Annotated[str | None, typer.Option(help="An email address the visitor wrote.")]
ChannelOpt = Annotated[str | None, typer.Option(help="Channel id (with --external-user-id).")]
ExternalOpt = Annotated[str | None, typer.Option(help="The channel's user id for the visitor.")]


def _visitor_command(tenant: str, selector: VisitorSelector, erase: bool) -> dict[str, object]:
    # lazy: loaded when the command runs (Alembic logs at import; the app loads all)
    from parley.kit import bootstrap
    from parley.lifecycle.commands import visitor

    settings = _settings()
    target = bootstrap.prepare(settings)
    return asyncio.run(visitor(settings, target.app_url, tenant, selector, erase))


@app.command("export-visitor")
def export_visitor(
    tenant: TenantOpt,
    visitor_id: VisitorOpt = None,
    email: EmailOpt = None,
    channel_id: ChannelOpt = None,
    external_user_id: ExternalOpt = None,
) -> None:
    """Print everything held about one visitor as JSON."""

    sel = _selector(visitor_id, email, channel_id, external_user_id)
    typer.echo(json.dumps(_visitor_command(tenant, sel, erase=False), indent=2))


@app.command("erase-visitor")
def erase_visitor(
    tenant: TenantOpt,
    visitor_id: VisitorOpt = None,
    email: EmailOpt = None,
    channel_id: ChannelOpt = None,
    external_user_id: ExternalOpt = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Erase one visitor's data everywhere (the audit log keeps a tombstone)."""

    sel = _selector(visitor_id, email, channel_id, external_user_id)
    if not yes:
        typer.confirm("Erase this visitor's data for good?", abort=True)
    typer.echo(json.dumps(_visitor_command(tenant, sel, erase=True), indent=2))


@app.command("export-workspace")
def export_workspace(
    tenant: TenantOpt,
    out: Annotated[Path, typer.Option(help="Directory to write (JSON Lines + files).")],
) -> None:
    """Export a workspace: one JSON Lines file per table, its files, a checksummed manifest."""
    # lazy: loaded when the command runs (Alembic logs at import; the app loads all)
    from parley.kit import bootstrap
    from parley.lifecycle.commands import export_workspace as do

    settings = _settings()
    target = bootstrap.prepare(settings)
    manifest = asyncio.run(do(settings, target.app_url, tenant, out))
    rows = sum(t["rows"] for t in manifest["tables"].values())
    typer.echo(f"Exported {rows} rows, {len(manifest['files'])} files to {out}")


@app.command("delete-workspace")
def delete_workspace(
    tenant: TenantOpt,
    now: Annotated[bool, typer.Option(help="Delete at once (no grace period) and verify.")] = False,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Schedule a workspace's deletion after the grace period (or delete it --now)."""
    # lazy: loaded when the command runs (Alembic logs at import; the app loads all)
    from parley.kit import bootstrap
    from parley.lifecycle.commands import delete_workspace as do

    if now and not yes:
        typer.confirm("Delete this workspace and all its data now?", abort=True)
    settings = _settings()
    target = bootstrap.prepare(settings)
    typer.echo(asyncio.run(do(settings, target.app_url, tenant, now)))


@app.command()
def backup(
    out: Annotated[Path, typer.Option(help="An empty directory to write the backup into.")],
) -> None:
    """Back up the database (pg_dump, custom format) and the file storage, with checksums."""
    # lazy: loaded when the command runs (Alembic logs at import; the app loads all)
    from parley.kit import bootstrap
    from parley.lifecycle.commands import run_backup

    settings = _settings()
    target = bootstrap.prepare(settings, run_migrations=False)
    typer.echo(asyncio.run(run_backup(settings, target.migration_url, target.app_url, out)))


@app.command()
def restore(
    source: Annotated[Path, typer.Option("--from", help="A directory written by `backup`.")],
) -> None:
    """Restore a backup into an empty database and an empty file storage."""
    # lazy: loaded when the command runs (Alembic logs at import; the app loads all)
    from parley.kit import bootstrap
    from parley.lifecycle.commands import run_restore

    settings = _settings()
    target = bootstrap.resolve_database(settings)
    try:
        typer.echo(asyncio.run(run_restore(settings, target.migration_url, target.app_url, source)))
    except RuntimeError as exc:
        typer.secho(f"Restore failed: {exc}", fg="red", err=True)
        raise typer.Exit(1) from exc


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
