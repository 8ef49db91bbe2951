"""HTTP endpoints of LTI Dynamic Registration (`/lti/register`) and of the
administrator's review of registrations (`/admin/registrations`). The work is
in registration.py."""

from __future__ import annotations

import logging
import os
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

from flask import Blueprint, current_app, g, redirect, render_template, request, url_for
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import selectinload

from lti_tool import observability, ratelimit, web
from lti_tool.launch import registration as dr
from lti_tool.launch.models import Platform
from lti_tool.launch.urls import origin_of
from lti_tool.services import services
from lti_tool.web import get_db

bp = Blueprint("registration", __name__)
log = logging.getLogger("lti_tool.registration")


def _event(event: str, **fields) -> None:
    observability.log_event(log, event, **fields)


def _client_ip() -> str:
    return ratelimit.client_ip()


def _failure_page(exc: dr.RegistrationFailure, *, retry_after: int | None = None):
    reference = observability.request_id() or secrets.token_hex(6)
    _event("registration_failed", code=exc.code, status=exc.status, reason=exc.reason,
           reference=reference, ip=_client_ip())
    response = current_app.make_response((render_template(
        "registration/failed.html", error=exc, reference=reference), exc.status))
    if retry_after:
        response.headers["Retry-After"] = str(retry_after)
    return response


def _register_frame_ancestors(configuration_url: str) -> list[str]:
    """Who may frame the registration pages: the LMS opens them in an iframe
    from a site we do not know yet (Canvas: the school's domain, not the
    configuration's). The pages carry no ambient authority (no cookie; every
    input is in the URL or the signed form), so framing gains an attacker
    nothing; any https origin, plus the configuration's own origin (the
    loopback sandbox runs on http)."""
    sources = ["https:"]
    origin = origin_of(configuration_url)
    if origin and origin.startswith("http://"):
        sources.append(origin)
    return sources


def _refused(bucket: str) -> ratelimit.Decision | None:
    """Count this request in `bucket` (per client IP); the refusal, if over.
    Called before the view opens its own write transaction."""
    limits = ratelimit.limiter().limits
    if bucket not in limits:   # our own bucket, configurable like the others
        limits[bucket] = ratelimit.parse_limit(os.environ.get(
            f"LTI_TOOL_RATE_LIMIT_{bucket.upper()}", dr.ADMIN_LOGIN_DEFAULT_LIMIT))
    decision = ratelimit.check(bucket)
    return None if decision.allowed else decision


# -- dynamic registration ----------------------------------------------------------------


@bp.route("/lti/register", methods=["GET"])
def register_start():
    settings = services().settings
    configuration_url = request.args.get("openid_configuration", "")
    token = request.args.get("registration_token", "")
    g.frame_ancestors = _register_frame_ancestors(configuration_url)
    try:
        if not configuration_url:
            raise dr.RegistrationFailure(
                "MISSING_OPENID_CONFIGURATION", 400,
                "This address expects the LMS's openid_configuration parameter.",
                "Open it from your LMS's dynamic registration (Canvas: Developer Keys → "
                "LTI Registration; Moodle: Manage tools → Tool URL).")
        dr.check_url(configuration_url, "openid_configuration URL",
                     loopback_ok=dr.allow_loopback(settings), code="OPENID_CONFIGURATION_INVALID",
                     status=400)
        if len(token) > 8192:
            raise dr.RegistrationFailure("REGISTRATION_TOKEN_INVALID", 400,
                                         "The registration token is too long.", dr.RESTART)
    except dr.RegistrationFailure as exc:
        return _failure_page(exc)
    return render_template(
        "registration/start.html", info=dr.summary(settings.base_url),
        configuration_url=configuration_url, registration_token=token,
        configuration_host=urlsplit(configuration_url).netloc,
        form_token=dr.form_token(settings.secret_key, configuration_url, token))


@bp.route("/lti/register", methods=["POST"])
def register_finish():
    svc = services()
    settings = svc.settings
    configuration_url = request.form.get("openid_configuration", "")
    token = request.form.get("registration_token", "")
    g.frame_ancestors = _register_frame_ancestors(configuration_url)
    refused = _refused(dr.REGISTER_BUCKET)
    if refused:
        return _failure_page(dr.RegistrationFailure(
            "TOO_MANY_REGISTRATIONS", 429, "Too many registration attempts from your network.",
            ratelimit.retry_text(refused) + " Then start the registration again from your LMS."),
            retry_after=refused.retry_after)
    loopback_ok = dr.allow_loopback(settings)
    try:
        if request.headers.get("Sec-Fetch-Site") == "cross-site":
            raise dr.RegistrationFailure(
                "CROSS_SITE_REQUEST", 403,
                "This registration request came from another site.", dr.RESTART)
        dr.check_form_token(settings.secret_key, request.form.get("form_token", ""),
                            configuration_url, token)
        dr.check_url(configuration_url, "openid_configuration URL", loopback_ok=loopback_ok,
                     code="OPENID_CONFIGURATION_INVALID", status=400)
        config = dr.fetch_configuration(svc.http, configuration_url, token,
                                        timeout=settings.http_timeout, loopback_ok=loopback_ok)
        body = dr.registration_body(settings.base_url, config)
        result = dr.post_registration(svc.http, config, token, body,
                                      timeout=settings.http_timeout, loopback_ok=loopback_ok)
    except dr.RegistrationFailure as exc:
        return _failure_page(exc)

    db = get_db(write=True)
    try:
        platform = dr.store(db, config, result,
                            accept_first_deployment=request.form.get("accept_first_deployment")
                            == "1")
        view = _platform_view(platform)
        db.commit()
    except SQLAlchemyError:
        db.rollback()
        log.exception("registration_store_failed issuer=%s", config.issuer)
        return _failure_page(dr.RegistrationFailure(
            "SERVICE_UNAVAILABLE", 503,
            "The LMS registered Pathwise, but Pathwise could not save the registration.",
            "Wait a moment, then start the registration again from your LMS (and remove the "
            "half-finished registration there)."))
    web._origins_cache.clear()
    _event("registration_completed", issuer=config.issuer, client_id=result.client_id,
           deployment_id=result.deployment_id, product=config.product_family_code,
           accept_first_deployment=view["accept_first_deployment"])
    return render_template("registration/done.html", platform=view, config=config,
                           result=result)


# -- the administrator ---------------------------------------------------------------------


@dataclass(frozen=True)
class Admin:
    via: str          # "bearer" | "cookie"
    sid: str | None   # cookie session id (CSRF tokens are bound to it)


def _admin_cookie_name() -> str:
    https = services().settings.base_url.startswith("https://")
    return "__Host-pathwise_admin" if https else "pathwise_admin"


def _current_admin() -> Admin | None | str:
    """The signed-in administrator, None, or "bad-bearer"."""
    settings = services().settings
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and dr.admin_token_matches(settings, value.strip()):
            return Admin("bearer", None)
        return "bad-bearer"
    sid = dr.read_admin_session(settings, request.cookies.get(_admin_cookie_name()))
    return Admin("cookie", sid) if sid else None


def _admin_page(template: str, status: int = 200, headers: dict | None = None, **context):
    g.frame_ancestors = []   # top-level pages only: never framed by an LMS
    response = current_app.make_response((render_template(template, **context), status))
    response.headers.update(headers or {})
    return response


def _denied(status: int, reason: str, wait: int | None = None, headers: dict | None = None):
    if wait:
        headers = {**(headers or {}), "Retry-After": str(wait)}
    return _admin_page("registration/admin_denied.html", status, headers, reason=reason,
                       wait=wait, code=status)


def _unauthorized():
    """401; wrong Bearer tokens count toward the sign-in limit."""
    if _current_admin() == "bad-bearer":
        refused = _refused(dr.ADMIN_LOGIN_BUCKET)
        if refused:
            return _denied(429, "Too many failed sign-in attempts.", refused.retry_after)
    return _denied(401, "This page is for Pathwise administrators.",
                   headers={"WWW-Authenticate": 'Bearer realm="Pathwise administration"'})


def _require_admin() -> Admin | None:
    admin = _current_admin()
    return admin if isinstance(admin, Admin) else None


@bp.route("/admin/login", methods=["GET", "POST"])
def admin_login():
    settings = services().settings
    error = None
    status = 200
    if request.method == "POST":
        refused = _refused(dr.ADMIN_LOGIN_BUCKET)
        if refused:
            return _denied(429, "Too many sign-in attempts.", refused.retry_after)
        if not dr.login_form_token_ok(settings, request.form.get("csrf_token")):
            error, status = "The sign-in form expired; please try again.", 403
        elif not dr.admin_token_matches(settings, request.form.get("token", "").strip()):
            error, status = "That is not the administrator token.", 401
        else:
            value, _ = dr.new_admin_session(settings)
            response = redirect(url_for("registration.admin_registrations"), code=303)
            response.set_cookie(_admin_cookie_name(), value, max_age=dr.ADMIN_SESSION_TTL,
                                secure=True, httponly=True, samesite="Strict", path="/")
            _event("admin_signed_in", ip=_client_ip())
            return response
    return _admin_page("registration/admin_login.html", status, error=error,
                       csrf_token=dr.login_form_token(settings))


@bp.route("/admin/logout", methods=["POST"])
def admin_logout():
    admin = _require_admin()
    if admin is None:
        return _unauthorized()
    if admin.via == "cookie" and not _csrf_ok(admin):
        return _denied(403, "The form expired; reload the page and try again.")
    response = redirect(url_for("registration.admin_login"), code=303)
    response.delete_cookie(_admin_cookie_name(), path="/", secure=True, httponly=True,
                           samesite="Strict")
    return response


def _csrf_ok(admin: Admin) -> bool:
    if admin.via == "bearer":   # no ambient credential: nothing to forge
        return True
    if request.headers.get("Sec-Fetch-Site") == "cross-site":
        return False
    return dr.admin_csrf_ok(services().settings, admin.sid or "",
                            request.form.get("csrf_token"))


def _platform_view(platform: Platform) -> dict:
    return {
        "id": platform.id,
        "name": platform.name,
        "issuer": platform.issuer,
        "client_id": platform.client_id,
        "deployments": [{"deployment_id": d.deployment_id, "active": d.active}
                        for d in platform.deployments],
        "created_at": platform.created_at,
        "registered_via": platform.registered_via or "manual",
        "active": bool(platform.active),
        "accept_first_deployment": bool(platform.accept_first_deployment),
        "info": platform.registration_info or {},
        "auth_login_url": platform.auth_login_url,
        "jwks_url": platform.jwks_url,
        "auth_token_url": platform.auth_token_url,
    }


@bp.route("/admin/registrations")
def admin_registrations():
    admin = _require_admin()
    if admin is None:
        return _unauthorized()
    db = get_db()
    platforms = [_platform_view(p) for p in db.scalars(
        select(Platform).options(selectinload(Platform.deployments)).order_by(Platform.id))]
    if request.accept_mimetypes.best == "application/json":
        g.frame_ancestors = []
        return {"platforms": platforms}
    csrf = dr.admin_csrf_token(services().settings, admin.sid) if admin.sid else ""
    return _admin_page("registration/admin_list.html", platforms=platforms, csrf_token=csrf,
                       admin=admin, notice=request.args.get("done"))


@bp.route("/admin/registrations/<int:platform_id>/active", methods=["POST"])
def admin_set_active(platform_id: int):
    admin = _require_admin()
    if admin is None:
        return _unauthorized()
    if not _csrf_ok(admin):
        return _denied(403, "The form expired or came from another site; reload the page "
                            "and try again.")
    active = request.form.get("active")
    if active not in ("0", "1"):
        return _denied(400, "Say whether to enable (active=1) or disable (active=0).")
    db = get_db(write=True)
    platform = db.get(Platform, platform_id)
    if platform is None:
        return _denied(404, "There is no such registration.")
    platform.active = active == "1"
    db.commit()
    web._origins_cache.clear()
    _event("registration_" + ("enabled" if platform.active else "disabled"),
           platform=platform_id, issuer=platform.issuer, client_id=platform.client_id,
           via=admin.via)
    return redirect(url_for("registration.admin_registrations",
                            done="enabled" if platform.active else "disabled"), code=303)
