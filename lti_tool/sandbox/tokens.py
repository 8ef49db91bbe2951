"""OAuth 2 client_credentials token endpoint (RFC 7523 JWT assertion) and bearer checks.

Stricter than either real platform on purpose, so the sandbox proves the tool follows the
1EdTech Security Framework (security.md 1.6): `iss` == `sub` == client_id, `aud` == the token
URL, `jti` never reused, `exp` in the future and at most ~5 minutes after `iat`.
Scopes follow each platform: Canvas refuses the request if any scope is not on the
developer key (A8); Moodle grants the intersection and fails only when it is empty (B7).
Canvas issues JWT access tokens, Moodle opaque 32-hex tokens; both last 3600 s.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
from collections.abc import Iterable
from typing import Any

import jwt
from flask import Blueprint, jsonify, request

from . import storage
from .app import ctx, db
from .errors import ServiceError
from .flavors import Flavor
from .tool_keys import ToolJWTError

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
MAX_ASSERTION_LIFETIME = 300 + 60  # "exp typically five minutes after the iat", plus slack
MAX_IAT_AGE = 300  # Canvas: "the 'iat' must be less than 300 seconds old"
MAX_IAT_FUTURE = 30  # Canvas: iat no more than 30 s in the future
LEEWAY = 5


class _TokenError(Exception):
    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status


def token_endpoint() -> Any:
    try:
        body = _issue_token()
    except _TokenError as err:
        resp = jsonify({"error": err.error, "error_description": err.description})
        resp.status_code = err.status
    else:
        resp = jsonify(body)
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["Pragma"] = "no-cache"
    return resp


def _issue_token() -> dict[str, Any]:
    sb = ctx()
    conn = db()
    canvas = sb.is_canvas
    if not canvas and request.mimetype != "application/x-www-form-urlencoded":
        # Moodle's token.php insists on this exact content type (B7).
        raise _TokenError(
            "invalid_request", "Content-Type must be application/x-www-form-urlencoded"
        )
    form: Any = request.form
    if canvas and not form and request.is_json:
        # Canvas reads params through Rails, so a JSON body works there too.
        body = request.get_json(silent=True)
        form = body if isinstance(body, dict) else {}
    if form.get("grant_type") != "client_credentials":
        raise _TokenError("unsupported_grant_type", "grant_type must be client_credentials")
    if form.get("client_assertion_type") != ASSERTION_TYPE:
        if canvas:
            raise _TokenError(
                "invalid_request", "assertion method not supported for this grant_type"
            )
        raise _TokenError(
            "unsupported_grant_type", "client_assertion_type must be " + ASSERTION_TYPE
        )
    assertion = form.get("client_assertion") or ""
    requested = (form.get("scope") or "").split()
    if not assertion:
        raise _TokenError("invalid_request", "client_assertion is required")
    if not requested:
        raise _TokenError("invalid_scope" if canvas else "invalid_request", "scope is required")

    reg, claims = _verify_assertion(sb, conn, assertion)

    if canvas:
        unknown = [s for s in requested if s not in reg["scopes"]]
        if unknown:
            raise _TokenError(
                "invalid_scope", "Scopes not allowed for this developer key: " + " ".join(unknown)
            )
        granted = list(dict.fromkeys(requested))
    else:
        granted = [s for s in dict.fromkeys(requested) if s in reg["scopes"]]
        if not granted:
            raise _TokenError(
                "invalid_scope", "None of the requested scopes is permitted for this tool"
            )

    now = int(storage.now())
    lifetime = sb.flavor.access_token_lifetime
    if canvas:
        access_token = sb.key.sign(
            {
                "iss": sb.issuer,
                "sub": reg["client_id"],
                "aud": sb.token_url,
                "iat": now,
                "exp": now + lifetime,
                "jti": secrets.token_hex(16),
                "scopes": " ".join(granted),
            }
        )
    else:
        access_token = secrets.token_hex(16)
        with storage.transaction(conn):
            conn.execute(
                "INSERT INTO access_tokens (token_hash, registration_id, scopes, expires_at) "
                "VALUES (?, ?, ?, ?)",
                (_hash(access_token), reg["id"], " ".join(granted), now + lifetime),
            )
            conn.execute("DELETE FROM access_tokens WHERE expires_at < ?", (now,))
    return {
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": lifetime,
        "scope": " ".join(granted),
    }


def _verify_assertion(
    sb: Any, conn: sqlite3.Connection, assertion: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    try:
        unverified = jwt.decode(assertion, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise _TokenError("invalid_client", "client_assertion is not a JWT") from exc
    sub = unverified.get("sub")
    reg = storage.registration_by_client_id(conn, sub) if isinstance(sub, str) and sub else None
    if reg is None:
        raise _TokenError(
            "invalid_client", "Unknown client: no registration for the assertion's sub"
        )
    try:
        claims = sb.tool_keys.verify(
            assertion,
            reg["jwks_url"],
            audience=sb.token_url,
            leeway=LEEWAY,
            options={"require": ["iss", "sub", "aud", "exp", "iat", "jti"], "verify_iat": False},
        )
    except ToolJWTError as exc:
        raise _TokenError("invalid_client", str(exc)) from exc
    if claims["iss"] != reg["client_id"] or claims["sub"] != reg["client_id"]:
        raise _TokenError("invalid_client", "iss and sub must both be the client_id")
    now = storage.now()
    iat, exp = claims["iat"], claims["exp"]
    if not isinstance(iat, int | float) or not isinstance(exp, int | float):
        raise _TokenError("invalid_client", "iat and exp must be numbers")
    if iat > now + MAX_IAT_FUTURE:
        raise _TokenError("invalid_client", "the 'iat' must not be in the future")
    if now - iat > MAX_IAT_AGE + LEEWAY:
        raise _TokenError(
            "invalid_client", f"the 'iat' must be less than {MAX_IAT_AGE} seconds old"
        )
    if exp - iat > MAX_ASSERTION_LIFETIME:
        raise _TokenError("invalid_client", "the 'exp' must be no more than 5 minutes after 'iat'")
    jti = claims["jti"]
    if not isinstance(jti, str) or not jti:
        raise _TokenError("invalid_client", "the 'jti' must be a non-empty string")
    if not remember_jti(conn, f"assertion:{reg['client_id']}:{jti}", float(exp) + LEEWAY):
        raise _TokenError("invalid_client", "the 'jti' has already been used")
    return reg, claims


def remember_jti(conn: sqlite3.Connection, key: str, expires_at: float) -> bool:
    """Record a one-time id; False when it was seen before (replay)."""
    with storage.transaction(conn):
        conn.execute("DELETE FROM used_jtis WHERE expires_at < ?", (storage.now() - 60,))
        try:
            conn.execute("INSERT INTO used_jtis (jti, expires_at) VALUES (?, ?)", (key, expires_at))
        except sqlite3.IntegrityError:
            return False
    return True


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def require_scopes(any_of: Iterable[str]) -> dict[str, Any]:
    """Check the bearer token; return its registration or raise a 401 ServiceError."""
    sb = ctx()
    conn = db()
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise ServiceError(401, "Missing access token")
    if sb.is_canvas:
        try:
            claims = sb.key.verify(
                token, audience=sb.token_url, options={"require": ["exp", "sub", "aud", "scopes"]}
            )
        except jwt.ExpiredSignatureError as exc:
            raise ServiceError(401, "Access token expired") from exc
        except jwt.PyJWTError as exc:
            raise ServiceError(401, "Access token invalid - signature likely incorrect") from exc
        reg = storage.registration_by_client_id(conn, claims["sub"])
        if reg is None:
            raise ServiceError(401, "Unknown or inactive Developer Key")
        scopes = str(claims["scopes"]).split()
    else:
        row = storage.one(conn, "SELECT * FROM access_tokens WHERE token_hash = ?", (_hash(token),))
        if row is None or row["expires_at"] <= storage.now():
            raise ServiceError(401, "Invalid or expired access token")
        reg = storage.get_registration(conn, row["registration_id"])
        type_id = request.args.get("type_id")
        if reg is None or (type_id is not None and type_id != str(reg["id"])):
            raise ServiceError(401, "The access token does not belong to this tool type")
        scopes = row["scopes"].split()
    if not set(scopes) & set(any_of):
        raise ServiceError(401, "Insufficient permissions")
    return reg


def make_blueprint(flavor: Flavor) -> Blueprint:
    bp = Blueprint("sandbox_tokens", __name__)
    path = "/login/oauth2/token" if flavor.name == "canvas" else "/mod/lti/token.php"
    bp.add_url_rule(path, "token", token_endpoint, methods=["POST"])
    return bp
