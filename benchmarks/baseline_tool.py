"""The launch benchmark's baseline: a minimal LTI 1.3 tool written the way the
pylti1p3 documentation and examples write one, with the library's defaults.

- FlaskOIDCLogin / FlaskMessageLaunch / FlaskRequest from pylti1p3.contrib.flask;
- ToolConfDict with the platform's key_set_url (no pasted key set);
- the default session service: state in a cookie, nonce and launch data in
  Flask's signed-cookie session (no database, no cache);
- no public key caching, so the platform's JWKS is fetched on every launch.

It is the yardstick, not a second tool: it does none of Pathwise's work (no
users, courses or tool sessions stored, no single-use nonce across workers).

Configuration (environment): BASELINE_ISSUER, BASELINE_CLIENT_ID,
BASELINE_AUTH_LOGIN_URL, BASELINE_AUTH_TOKEN_URL (optional), BASELINE_JWKS_URL,
BASELINE_DEPLOYMENT_ID, BASELINE_PRIVATE_KEY (path of a PEM RSA key) and
BASELINE_SECRET_KEY (shared by every worker, or sessions break across them).

Serve: python -m gunicorn --chdir benchmarks baseline_tool:app
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from flask import Flask, Response, jsonify, render_template_string
from pylti1p3.contrib.flask import FlaskMessageLaunch, FlaskOIDCLogin, FlaskRequest
from pylti1p3.exception import LtiException, OIDCException
from pylti1p3.tool_config import ToolConfDict

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Baseline</title></head>
<body><h1>Hello, {{ name }}</h1><p>Launch {{ launch_id }}</p></body></html>
"""


def _env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise RuntimeError(f"set {name} (see benchmarks/baseline_tool.py)")
    return value


def build_tool_config() -> tuple[ToolConfDict, str]:
    """One issuer, one client ID: the simplest ToolConfDict there is."""
    issuer = _env("BASELINE_ISSUER")
    conf = ToolConfDict({issuer: {
        "default": True,
        "client_id": _env("BASELINE_CLIENT_ID"),
        "auth_login_url": _env("BASELINE_AUTH_LOGIN_URL"),
        "auth_token_url": os.environ.get("BASELINE_AUTH_TOKEN_URL")
        or _env("BASELINE_AUTH_LOGIN_URL"),
        "key_set_url": _env("BASELINE_JWKS_URL"),
        "key_set": None,
        "deployment_ids": [_env("BASELINE_DEPLOYMENT_ID")],
    }})
    private_pem = Path(_env("BASELINE_PRIVATE_KEY")).read_bytes()
    public_pem = serialization.load_pem_private_key(private_pem, None).public_key() \
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    conf.set_private_key(issuer, private_pem.decode())
    conf.set_public_key(issuer, public_pem.decode())
    return conf, issuer


def create_app() -> Flask:
    app = Flask(__name__)
    app.config["SECRET_KEY"] = _env("BASELINE_SECRET_KEY")
    tool_conf, issuer = build_tool_config()

    @app.route("/login", methods=["GET", "POST"])
    def login() -> Response:
        flask_request = FlaskRequest()
        target_link_uri = flask_request.get_param("target_link_uri")
        if not target_link_uri:
            return Response("missing target_link_uri", status=400)
        try:
            return FlaskOIDCLogin(flask_request, tool_conf).redirect(target_link_uri)
        except (LtiException, OIDCException) as exc:
            return Response(f"login refused: {exc}", status=400)

    @app.route("/launch", methods=["POST"])
    def launch() -> Response | str:
        message_launch = FlaskMessageLaunch(FlaskRequest(), tool_conf)
        try:
            data = message_launch.get_launch_data()   # validates on first access
        except LtiException as exc:
            return Response(f"launch refused: {exc}", status=401)
        return render_template_string(PAGE, name=data.get("name") or "there",
                                      launch_id=message_launch.get_launch_id())

    @app.route("/jwks")
    def jwks() -> Response:
        return jsonify(tool_conf.get_jwks(issuer))

    return app


# Built on import so gunicorn (`baseline_tool:app`) finds it; not when imported
# without configuration (e.g. by a linter or a test collecting modules).
app = create_app() if os.environ.get("BASELINE_ISSUER") else None
