"""Application factory of the sandbox LMS (a separate Flask app; the tool never imports it)."""

from __future__ import annotations

import os
import secrets
import sqlite3
from dataclasses import dataclass
from typing import Any

from flask import Flask, current_app, g, render_template

from . import storage
from .controls import SandboxControls, install
from .errors import ServiceError, service_error_response
from .flavors import Flavor, get_flavor
from .keys import PlatformKey, load_or_create_key
from .tool_keys import ToolKeyset

EXTENSION_KEY = "lti_sandbox"


@dataclass
class SandboxContext:
    """Everything the blueprints need, stored on `app.extensions["lti_sandbox"]`."""

    flavor: Flavor
    base_url: str
    tool_url: str
    db_path: str
    key: PlatformKey
    tool_keys: ToolKeyset
    hint_secret: str  # HS256 secret for Canvas message hints and deep-link `data` (A2, A5)
    controls: SandboxControls | None = None  # faults + request log (test_controls=True only)
    # A self-hosted Canvas's own issuer (its lti_iss) instead of the hosted one (A1).
    issuer_override: str | None = None
    # Held open for the app's life so closing a request's connection is never the *last*
    # close, which would checkpoint the WAL (an fsync) on every request.
    anchor: sqlite3.Connection | None = None

    @property
    def issuer(self) -> str:
        return self.issuer_override or self.flavor.issuer(self.base_url)

    @property
    def token_url(self) -> str:
        return self.flavor.token_url(self.base_url)

    @property
    def is_canvas(self) -> bool:
        return self.flavor.name == "canvas"


def create_sandbox_app(
    *,
    flavor: str,
    base_url: str,
    tool_url: str,
    db_path: str,
    key_path: str | None = None,
    latency_ms: int = 0,
    test_controls: bool = False,
    issuer: str | None = None,
) -> Flask:
    """Build the sandbox LMS app for `flavor` ("canvas" or "moodle").

    base_url is the sandbox's own public URL; tool_url the tool's base URL. The database at
    db_path is created if missing (call `seed.seed(app)` to add the demo course). The RSA key
    is generated into key_path (default: next to the database) on first start.
    latency_ms delays every service request (token, AGS, NRPS) by that much (also settable
    later as `app.config["SANDBOX_LATENCY_MS"]`); test_controls adds the /sandbox/* fault
    injection, request log and JSON gradebook endpoints (controls.py; 404 without it).
    issuer (Canvas only) replaces the hosted issuer https://canvas.instructure.com: "self"
    makes the sandbox a self-hosted Canvas whose issuer is its own base URL, which dynamic
    registration needs (a tool checks that the issuer's host serves the configuration).
    """
    if isinstance(latency_ms, bool) or not isinstance(latency_ms, int) or latency_ms < 0:
        raise ValueError("latency_ms must be a non-negative integer")
    flav = get_flavor(flavor)
    base_url = base_url.rstrip("/")
    if issuer is not None and flav.name != "canvas":
        raise ValueError("issuer can only be set for the canvas flavour (Moodle's is its URL)")
    issuer = base_url if issuer == "self" else (issuer.rstrip("/") if issuer else None)
    tool_url = tool_url.rstrip("/")
    db_path = os.path.abspath(db_path)
    if key_path is None:
        key_path = os.path.join(os.path.dirname(db_path), f"sandbox-{flav.name}-key.pem")

    storage.init_db(db_path)
    conn = storage.connect(db_path)
    try:
        # Persisted so restarts keep sessions, message hints and deep-link return URLs valid.
        secret_key = storage.get_or_create_setting(
            conn, "secret_key", lambda: secrets.token_hex(32)
        )
        hint_secret = storage.get_or_create_setting(
            conn, "hint_secret", lambda: secrets.token_hex(32)
        )
    finally:
        conn.close()

    app = Flask(
        __name__,
        template_folder="templates",
        static_folder="static",
        static_url_path="/sandbox-static",
    )
    app.config.update(
        SECRET_KEY=secret_key,
        # A name of its own: the tool may run on the same host (cookies ignore ports), and a
        # Canvas and a Moodle sandbox may run side by side.
        SESSION_COOKIE_NAME=f"lti_sandbox_{flav.name}",
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SECURE=base_url.startswith("https://"),
        SANDBOX_FLAVOR=flav.name,
        SANDBOX_BASE_URL=base_url,
        SANDBOX_TOOL_URL=tool_url,
        SANDBOX_DB_PATH=db_path,
        SANDBOX_KEY_PATH=key_path,
        # Neither Canvas nor Moodle sends `data` in deep_linking_settings; turn this on to
        # check that the tool echoes it (LTI DL 1.0 §4.4.1).
        SANDBOX_SEND_DL_DATA=False,
        SANDBOX_LATENCY_MS=latency_ms,
        SANDBOX_TEST_CONTROLS=bool(test_controls),
        MAX_CONTENT_LENGTH=1024 * 1024,
    )
    app.jinja_env.autoescape = True  # also for any non-.html template names
    controls = SandboxControls() if test_controls else None
    app.extensions[EXTENSION_KEY] = SandboxContext(
        flavor=flav,
        base_url=base_url,
        tool_url=tool_url,
        db_path=db_path,
        key=load_or_create_key(key_path, flav.new_kid),
        tool_keys=ToolKeyset(),
        hint_secret=hint_secret,
        controls=controls,
        anchor=storage.connect(db_path),
        issuer_override=issuer,
    )

    from . import ags, deep_linking, nrps, oidc, pages, registration, tokens

    for module in (pages, oidc, tokens, ags, nrps, deep_linking, registration):
        app.register_blueprint(module.make_blueprint(flav))
    install(app, flav, controls)

    app.register_error_handler(ServiceError, service_error_response)
    app.teardown_appcontext(_close_db)
    app.context_processor(lambda: {"sandbox": ctx()})

    @app.errorhandler(404)
    def not_found(_e: Any) -> Any:
        return error_page("Not found", "There is no page at this address.", 404)

    return app


def ctx() -> SandboxContext:
    return current_app.extensions[EXTENSION_KEY]


def db() -> sqlite3.Connection:
    """The request's connection (opened lazily, closed at teardown)."""
    if "sandbox_db" not in g:
        g.sandbox_db = storage.connect(ctx().db_path)
    return g.sandbox_db


def _close_db(_exc: BaseException | None) -> None:
    conn = g.pop("sandbox_db", None)
    if conn is not None:
        conn.close()


def error_page(title: str, message: str, status: int = 400, *, hint: str | None = None) -> Any:
    """An HTML error page (used where the spec says: no post back to the tool)."""
    return render_template("sandbox/error.html", title=title, message=message, hint=hint), status
