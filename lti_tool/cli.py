"""The `lti-tool` command line."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from lti_tool.config import load_settings


def _settings():
    from flask import Flask

    instance = os.environ.get("LTI_TOOL_INSTANCE_PATH") or Flask("lti_tool").instance_path
    return load_settings(instance)


def _echo_json(value) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=False))


@click.group()
def main() -> None:
    """Pathwise LTI 1.3 tool."""


@main.command()
def init() -> None:
    """Create or migrate the database and create a signing key if none exists."""
    from lti_tool.db import migrate
    from lti_tool.launch import keys

    settings = _settings()
    migrate(settings.database_url)
    kid = keys.ensure_key(settings.keys_dir)
    click.echo(f"database ready: {_redact(settings.database_url)}")
    if kid:
        click.echo(f"created signing key {kid} in {settings.keys_dir}")
    else:
        click.echo(f"signing key present in {settings.keys_dir}")


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "(database URL)"


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--workers", default=None, type=int,
              help="gunicorn worker processes (default: 2 per CPU core, at most 8)")
def serve(host: str, port: int, workers: int | None) -> None:
    """Serve the tool (gunicorn when available, else the Werkzeug server)."""
    settings = _settings()
    _check_ready(settings)
    try:
        import gunicorn  # noqa: F401
    except ImportError:
        from lti_tool import create_app

        click.echo("gunicorn not installed: serving with Werkzeug (one process)", err=True)
        app = create_app()
        if settings.inline_worker:
            from lti_tool.passback.worker import start_inline

            start_inline(settings.database_url, settings.keys_dir)
        app.run(host=host, port=port, threaded=True)
        return
    count = workers or int(os.environ.get("LTI_TOOL_WORKERS", 0)) or min(
        8, 2 * (os.cpu_count() or 1))
    args = [sys.executable, "-m", "gunicorn", "--workers", str(count),
            "--worker-class", "gthread", "--threads", "4",
            # Longer than a reverse proxy's idle timeout, so the proxy never
            # reuses a connection gunicorn is closing (intermittent 502s).
            "--keep-alive", os.environ.get("LTI_TOOL_KEEP_ALIVE", "75"),
            # No gunicorn access log: the tool writes one JSON line per request
            # (with its request id); GUNICORN_CMD_ARGS can still turn it on.
            "--bind", f"{host}:{port}",
            # One control socket per user by default: several `serve` processes
            # on one machine would fight over it.
            "--no-control-socket",
            "--forwarded-allow-ips", os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1"),
            "lti_tool.wsgi:app"]
    os.execv(sys.executable, args)


def _check_ready(settings) -> None:
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from lti_tool.db import alembic_config, get_engine
    from lti_tool.launch import keys

    with get_engine(settings.database_url).connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    head = ScriptDirectory.from_config(alembic_config(settings.database_url)).get_current_head()
    if current != head:
        raise click.ClickException("the database is not up to date: run `lti-tool init` first")
    try:
        keys.load(settings.keys_dir)
    except keys.KeyFolderError as exc:
        raise click.ClickException(str(exc)) from None


@main.command()
@click.option("--once", is_flag=True, help="deliver what is due now, then exit")
@click.option("--concurrency", default=4, show_default=True, type=int,
              help="at most this many requests at a time to one LMS")
def worker(once: bool, concurrency: int) -> None:
    """Deliver grade passbacks (and roster syncs) from the outbox."""
    import signal
    import threading

    from lti_tool.passback import roster
    from lti_tool.passback.worker import Deliverer, run_forever

    settings = _settings()
    _check_ready(settings)
    deliverer = Deliverer(settings.database_url, settings.keys_dir, concurrency=concurrency)
    if once:
        stats = deliverer.drain()
        roster.sync_requested(settings.database_url, settings.keys_dir)
        _echo_json({"sent": stats.sent, "superseded": stats.superseded,
                    "retried": stats.retried, "failed": stats.dead})
        return
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    click.echo("worker: delivering grade passbacks; Ctrl-C to stop", err=True)
    run_forever(deliverer, stop, roster=lambda: roster.sync_requested(
        settings.database_url, settings.keys_dir))


@main.command()
@click.option("--course", "course_id", type=int, default=None,
              help="only this course (its id in Pathwise's database)")
def recompute(course_id: int | None) -> None:
    """Rebuild mastery rollups from evidence (every course, or one)."""
    from sqlalchemy import select

    from lti_tool.courses.models import Course
    from lti_tool.db import session_scope
    from lti_tool.grades.service import recompute_course

    settings = _settings()
    with session_scope(settings.database_url) as session:
        ids = [course_id] if course_id else list(session.scalars(select(Course.id)))
        if course_id and session.get(Course, course_id) is None:
            raise click.ClickException(f"no course with id {course_id}")
    total = 0
    for cid in ids:
        # One transaction per course: a long rebuild never blocks every course.
        with session_scope(settings.database_url) as session:
            total += recompute_course(session, cid)
    click.echo(json.dumps({"courses": len(ids), "rollups": total}))


@main.group()
def platform() -> None:
    """Register LMS platforms and their deployments."""


@platform.command("add")
@click.option("--issuer", required=True, help="the platform's issuer (iss)")
@click.option("--client-id", required=True, help="the client ID the LMS gave this tool")
@click.option("--auth-login-url", required=True, help="the LMS's OIDC authorization endpoint")
@click.option("--auth-token-url", required=True, help="the LMS's OAuth2 token endpoint")
@click.option("--jwks-url", required=True, help="the LMS's public key set URL")
@click.option("--deployment-id", "deployment_ids", multiple=True, required=True,
              help="a deployment ID (repeat for several)")
@click.option("--name", default=None, help="a name administrators recognise")
@click.option("--auth-audience", default=None,
              help="token audience when it differs from the token URL")
def platform_add(issuer, client_id, auth_login_url, auth_token_url, jwks_url, deployment_ids,
                 name, auth_audience) -> None:
    """Register a platform (or add deployments to it); prints it as JSON."""
    from lti_tool.db import session_scope
    from lti_tool.launch.registrations import RegistrationError, add_platform, platform_as_dict

    settings = _settings()
    try:
        with session_scope(settings.database_url) as session:
            row = add_platform(session, issuer=issuer, client_id=client_id,
                               auth_login_url=auth_login_url, auth_token_url=auth_token_url,
                               jwks_url=jwks_url, deployment_ids=list(deployment_ids),
                               name=name, auth_audience=auth_audience)
            result = platform_as_dict(row)
    except RegistrationError as exc:
        raise click.UsageError(str(exc)) from None
    _echo_json(result)


@platform.command("list")
def platform_list() -> None:
    """List registrations and their deployments as JSON."""
    from lti_tool.db import session_scope
    from lti_tool.launch.registrations import list_platforms, platform_as_dict

    with session_scope(_settings().database_url) as session:
        _echo_json([platform_as_dict(p) for p in list_platforms(session)])


@main.command("admin-token")
def admin_token_command() -> None:
    """Print the token for the administrator pages (/admin/registrations):
    LTI_TOOL_ADMIN_TOKEN when set, else the one kept in the instance folder
    (generated on first use)."""
    from lti_tool.launch.registration import admin_token

    click.echo(admin_token(_settings()))


@main.group("keys")
def keys_group() -> None:
    """The tool's signing keys."""


@keys_group.command("list")
def keys_list() -> None:
    """Show the signing key and every published key."""
    from lti_tool.launch import keys

    _echo_json(keys.describe(_settings().keys_dir))


@keys_group.command("rotate")
def keys_rotate() -> None:
    """Add a new signing key; the old ones stay published until retired."""
    from lti_tool.launch import keys

    folder = _settings().keys_dir
    kid = keys.rotate(folder)
    _echo_json({"signing": kid, **{k: v for k, v in keys.describe(folder).items()
                                   if k != "signing"}})


@keys_group.command("retire")
@click.argument("kid")
def keys_retire(kid: str) -> None:
    """Stop publishing a key (after every JWT it signed has expired)."""
    from lti_tool.launch import keys

    folder = _settings().keys_dir
    try:
        keys.retire(folder, kid)
    except keys.KeyFolderError as exc:
        raise click.ClickException(str(exc)) from None
    _echo_json(keys.describe(folder))


def _start_sandbox(flavor: str, host: str, port: int, tool_url: str, instance: Path, *,
                   latency_ms: int = 0, test_controls: bool = False):
    """Create, seed and register a sandbox LMS; returns (app, server, url).

    The CLI is the one place that wires the sandbox to the tool: the tool's
    application never imports it, and it registers itself through the same
    command an administrator runs (`lti-tool platform add …`)."""
    from werkzeug.serving import make_server

    from lti_tool.sandbox import create_sandbox_app, registration_args, seed

    base_url = f"http://{host}:{port}"
    app = create_sandbox_app(flavor=flavor, base_url=base_url, tool_url=tool_url,
                             db_path=str(instance / f"sandbox-{flavor}.db"),
                             latency_ms=latency_ms, test_controls=test_controls)
    seed(app)
    platform.main(registration_args(app)[1:], prog_name="lti-tool platform",
                  standalone_mode=False)
    server = make_server(host, port, app, threaded=True)
    return app, server, base_url + "/"


@main.command()
@click.option("--flavor", type=click.Choice(["canvas", "moodle"]), default="canvas",
              show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5100, show_default=True, type=int)
@click.option("--tool-url", default=None, help="the tool's base URL (default LTI_TOOL_BASE_URL)")
@click.option("--latency-ms", type=click.IntRange(min=0), default=0, show_default=True,
              help="delay every service request (token, AGS, NRPS) as a distant LMS would")
@click.option("--test-controls", is_flag=True,
              help="enable /sandbox/faults, /sandbox/requests and /sandbox/gradebook.json")
def sandbox(flavor: str, host: str, port: int, tool_url: str | None, latency_ms: int,
            test_controls: bool) -> None:
    """Serve the sandbox LMS with a demo course, registered with the tool."""
    settings = _settings()
    _, server, url = _start_sandbox(flavor, host, port, tool_url or settings.base_url,
                                    settings.instance_path, latency_ms=latency_ms,
                                    test_controls=test_controls)
    click.echo(f"Sandbox LMS ({flavor}) at {url}")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


@main.command()
@click.option("--port", default=5000, show_default=True, type=int, help="the tool's port")
@click.option("--sandbox-port", default=5100, show_default=True, type=int,
              help="the Canvas-flavoured sandbox; the Moodle one uses the next port")
def demo(port: int, sandbox_port: int) -> None:
    """`init`, the tool on localhost and two sandbox LMSs on 127.0.0.1 (different
    sites, so the tool really runs in a cross-site iframe)."""
    import subprocess
    import threading

    tool_url = f"http://localhost:{port}"
    os.environ["LTI_TOOL_BASE_URL"] = tool_url
    ctx = click.get_current_context()
    ctx.invoke(init)
    settings = _settings()
    servers = [_start_sandbox(flavor, "127.0.0.1", sandbox_port + offset, tool_url,
                              settings.instance_path)
               for offset, flavor in enumerate(("canvas", "moodle"))]
    tool = subprocess.Popen([sys.executable, "-m", "lti_tool.cli", "serve", "--host",
                             "localhost", "--port", str(port)], env=os.environ.copy())
    for _, server, _ in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    click.echo("")
    click.echo(f"Pathwise is running. Open {servers[0][2]}")
    click.echo(f"(Moodle-flavoured sandbox: {servers[1][2]} · tool: {tool_url}) "
               "Press Ctrl-C to stop.")
    try:
        tool.wait()
    except KeyboardInterrupt:
        pass
    finally:
        tool.terminate()
        for _, server, _ in servers:
            server.shutdown()


if __name__ == "__main__":  # pragma: no cover
    main()
