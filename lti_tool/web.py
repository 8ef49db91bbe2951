"""Per-request plumbing: database session, security headers, CSP nonce."""

from __future__ import annotations

import re
import secrets
import time

from flask import Flask, current_app, g, request
from sqlalchemy import select
from sqlalchemy.orm import Session

from lti_tool.db import session_factory
from lti_tool.launch.models import Platform
from lti_tool.launch.urls import origin_of


def get_db(*, write: bool | None = None) -> Session:
    """One session (and one transaction) per request. Requests that change
    something (POST and friends, or `write=True`) start as writers."""
    if "db" not in g:
        if write is None:
            write = request.method not in ("GET", "HEAD", "OPTIONS")
        g.db = session_factory(current_app.config["SETTINGS"].database_url, write=write)()
    return g.db


def close_db(_exc=None) -> None:
    db = g.pop("db", None)
    if db is not None:
        db.rollback()
        db.close()


def csp_nonce() -> str:
    if "csp_nonce" not in g:
        g.csp_nonce = secrets.token_urlsafe(16)
    return g.csp_nonce


_origins_cache: dict[str, tuple[float, list[str]]] = {}
ORIGINS_TTL = 30.0


def registered_origins(db: Session) -> list[str]:
    """Origins of every active registration: who may frame pre-session pages.
    Cached per process for a few seconds (the database stays the truth)."""
    url = current_app.config["SETTINGS"].database_url
    cached = _origins_cache.get(url)
    now = time.monotonic()
    if cached and now - cached[0] < ORIGINS_TTL:
        return cached[1]
    origins: set[str] = set()
    for row in db.execute(select(Platform.auth_login_url, Platform.jwks_url,
                                 Platform.issuer).where(Platform.active.is_(True))):
        for url in row:
            origin = origin_of(url)
            if origin:
                origins.add(origin)
    result = sorted(origins)
    _origins_cache[url] = (now, result)
    return result


def security_headers(response):
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
    if request.is_secure:
        response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    # Redirects show nothing that could be framed: no policy to compute.
    if response.mimetype == "text/html" and not 300 <= response.status_code < 400:
        ancestors = g.get("frame_ancestors")
        if ancestors is None:
            try:
                ancestors = registered_origins(get_db())
            except Exception:  # the database may be what failed
                ancestors = []
        sources = " ".join(["'self'", *ancestors])
        response.headers["Content-Security-Policy"] = (
            f"default-src 'self'; script-src 'self' 'nonce-{csp_nonce()}'; "
            f"style-src 'self' 'nonce-{csp_nonce()}'; img-src 'self' data:; "
            f"{_extra_sources()}object-src 'none'; base-uri 'none'; "
            f"form-action {sources}; frame-ancestors {sources}")
        response.headers.setdefault("Cache-Control", "no-store")
    return response


_ORIGIN = re.compile(r"https?://[A-Za-z0-9.\-\[\]:]+")


def _extra_sources() -> str:
    """A page that embeds a teacher's resource or video allows just that origin."""
    parts = []
    for directive, key in (("frame-src", "frame_sources"), ("media-src", "media_sources")):
        origins = [o for o in g.get(key) or () if _ORIGIN.fullmatch(o)]
        if origins:
            parts.append(f"{directive} 'self' {' '.join(origins)}; ")
    return "".join(parts)


def init_app(app: Flask) -> None:
    app.teardown_appcontext(close_db)
    app.after_request(security_headers)
    app.jinja_env.globals["csp_nonce"] = csp_nonce
