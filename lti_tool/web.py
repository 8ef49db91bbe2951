"""Per-request plumbing: database session, security headers, CSP nonce, and
the Origin check for changes (CSRF).

CSRF. Pages after a launch are reached with a signed session token `t` that
the tool puts in its own links and forms (never only a cookie). A change
(POST and friends) is accepted only with `t` in the form or an Authorization
header (see courses.routes._token_from_request): that is the synchroniser-token
pattern, bound to the session. Another site can make a browser send the
partitioned session cookie, but it cannot read `t` out of our pages (the
same-origin policy), so it cannot forge a change. Two header checks add defence
in depth for browsers and cases where a token leaks into a page it should not
have: `Sec-Fetch-Site: cross-site` is refused, and so is any `Origin` that is
not this tool's own (`origin_allowed`). Inside the LMS iframe the tool's own
forms post to the tool's own origin, so the browser sends `Origin` = the tool
and `Sec-Fetch-Site: same-origin`. `/lti/login` and `/lti/launch` are posted
cross-site by every LMS by design; state, nonce and signature protect them.

Security headers on every response: `X-Content-Type-Options`, `Referrer-Policy`,
`Permissions-Policy`, HSTS on https; a Content-Security-Policy on HTML with a
per-request nonce and `frame-ancestors` limited to the session's platform (or,
before a session, every registered platform); a deny-all policy on anything
else (JSON, text, downloads), framed by the session's platform at most. No
`X-Frame-Options`: it cannot list several origins and would keep the tool out
of the LMS iframe; `frame-ancestors` governs. No `Cross-Origin-Opener-Policy`:
it is ignored in iframes, and on a page an LMS opened as a popup (new-window
launches, dynamic registration) it would cut the `window.opener` link the LMS
and LTI postMessage flows (the registration's `org.imsglobal.lti.close`) rely
on, while protecting nothing here."""

from __future__ import annotations

import re
import secrets
import time
from urllib.parse import urlsplit

from flask import Flask, abort, current_app, g, render_template, request
from sqlalchemy import select
from sqlalchemy.orm import Session

from lti_tool.db import session_factory
from lti_tool.errors import UserError
from lti_tool.launch.models import Platform
from lti_tool.launch.urls import origin_of

PERMISSIONS_POLICY = "camera=(), microphone=(), geolocation=(), payment=()"


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


def refuse(exc: UserError, template: str | None = None, *,
           title: str = "That did not work", **context):
    """A route's answer to a refused change: nothing of it is kept, 404 is
    plain "not found" (no hint that the id exists elsewhere), and the page
    says what to fix: `template` with `error` and `context`, else the error
    page."""
    get_db().rollback()
    if exc.status == 404:
        abort(404)
    if template:
        return render_template(template, error=str(exc), **context), exc.status
    return render_template("error.html", status=exc.status, title=title,
                           text=str(exc)), exc.status


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


def _normal_origin(value: str | None) -> str | None:
    """scheme://host[:port], lower case, default port dropped; None if not one."""
    parts = urlsplit((value or "").strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    try:
        port = parts.port
    except ValueError:
        return None
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    if port is None or port == {"http": 80, "https": 443}[parts.scheme]:
        return f"{parts.scheme}://{host}"
    return f"{parts.scheme}://{host}:{port}"


def own_origins() -> set[str]:
    """This tool's origin: the configured public URL, and the origin this
    request was addressed to (the browser sets Host; another site cannot)."""
    origins = {_normal_origin(current_app.config["SETTINGS"].base_url),
               _normal_origin(f"{request.scheme}://{request.host}")}
    origins.discard(None)
    return origins


def origin_allowed() -> bool:
    """For changes on session pages: no `Origin` header (older browsers, the
    test client, scripts), or this tool's own origin. A foreign origin, or
    `null` (an opaque origin: a sandboxed frame, a data: URL, a cross-origin
    redirect; never the tool's own forms), is refused."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    normal = _normal_origin(origin)
    return normal is not None and normal in own_origins()


def cross_site_change() -> str | None:
    """Why a change on a session page must be refused (None when it may go
    on): the CSRF header checks that add to the session token."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return None
    if request.headers.get("Sec-Fetch-Site") == "cross-site":
        return "sec-fetch-site"
    if not origin_allowed():
        return "origin"
    return None


def security_headers(response):
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
    headers.setdefault("Permissions-Policy", PERMISSIONS_POLICY)
    if request.is_secure:
        headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    if 300 <= response.status_code < 400:
        return response
    # Redirects (above) show nothing that could be framed: no policy. A
    # redirect inside the LMS iframe must not be stopped before its target.
    if response.mimetype == "text/html":
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
    else:
        # JSON, text, files: nothing to run. Framed only where a session's own
        # page may be (an export opened inside the LMS iframe), else nowhere.
        ancestors = g.get("frame_ancestors")
        sources = " ".join(["'self'", *ancestors]) if ancestors is not None else "'none'"
        headers.setdefault("Content-Security-Policy",
                           f"default-src 'none'; base-uri 'none'; form-action 'none'; "
                           f"frame-ancestors {sources}")
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
