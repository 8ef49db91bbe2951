"""HTTP endpoints of the launch: OIDC login, launch, JWKS. Routes stay thin:
the work is in login.py, validation.py and the services they call."""

from __future__ import annotations

import json
import logging
import secrets
from functools import wraps

from flask import Blueprint, current_app, g, redirect, render_template, request, url_for
from sqlalchemy import text
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from lti_tool import observability, ratelimit
from lti_tool.courses.service import ResourceLinkConflict, record_launch
from lti_tool.launch import keys as tool_keys
from lti_tool.launch.errors import LaunchError
from lti_tool.launch.login import STORAGE_TARGET, begin_login, state_cookie_name
from lti_tool.launch.models import Platform
from lti_tool.launch.roles import TEACHER, decide
from lti_tool.launch.tool_session import COOKIE, create_session
from lti_tool.launch.urls import origin_of
from lti_tool.passback import service as passback
from lti_tool.services import services
from lti_tool.web import get_db, registered_origins

bp = Blueprint("launch", __name__)
log = logging.getLogger("lti_tool.launch")


def _event(event: str, **fields) -> None:
    """One structured line per security-relevant event (certification proof),
    with the request id."""
    observability.log_event(log, event, **fields)


def _params() -> dict[str, str]:
    source = request.form if request.method == "POST" else request.args
    return {k: source.get(k, "") for k in source}


def error_page(exc: LaunchError, where: str):
    reference = observability.request_id() or secrets.token_hex(6)
    if where == "launch":
        observability.count_launch("refused", exc.code)
    else:
        observability.count_login("refused", exc.code)
    _event("launch_rejected" if where == "launch" else "login_rejected", code=exc.code,
           status=exc.status, reference=reference, reason=exc.reason,
           iss=request.values.get("iss"), client_id=request.values.get("client_id"))
    response = current_app.make_response((render_template(
        "launch_error.html", error=exc, reference=reference), exc.status))
    if exc.retry_after:
        response.headers["Retry-After"] = str(exc.retry_after)
    return response


def _unavailable_on_database_error(view):
    """A database that is down or locked gives 503 with a retry hint, never a
    500; the rollback leaves nothing half-written."""
    @wraps(view)
    def wrapped(*args, **kwargs):
        try:
            return view(*args, **kwargs)
        except SQLAlchemyError:
            get_db().rollback()
            log.exception("database_error endpoint=%s", request.endpoint)
            return error_page(LaunchError(
                "SERVICE_UNAVAILABLE", 503, "Pathwise could not reach its database.",
                "Wait a moment and open the activity again.", retry_after=30),
                "launch" if request.endpoint == "launch.launch" else "login")
    return wrapped


def _rate_limited(bucket: str, where: str):
    """Per client IP, shared by every process (lti_tool.ratelimit): the login
    creates server-side state, the launch verifies signatures; neither may be
    flooded. Over the limit: 429 with Retry-After and when to try again."""
    def decorate(view):
        @wraps(view)
        def wrapped(*args, **kwargs):
            decision = ratelimit.check(bucket)
            if not decision.allowed:
                return error_page(LaunchError(
                    "RATE_LIMITED", 429,
                    "Too many requests came from your network in a short time.",
                    ratelimit.retry_text(decision), retry_after=decision.retry_after), where)
            return view(*args, **kwargs)
        return wrapped
    return decorate


@bp.route("/lti/login", methods=["GET", "POST"])
@_rate_limited("login", "login")
@_unavailable_on_database_error
def login():
    db = get_db(write=True)
    settings = services().settings
    try:
        result = begin_login(db, _params(), settings)
        db.commit()
    except LaunchError as exc:
        db.rollback()
        return error_page(exc, "login")
    observability.count_login("accepted")
    _event("login_started", platform=result.platform.id, iss=result.platform.issuer,
           client_id=result.platform.client_id, storage=bool(result.storage_target))
    if result.storage_target:
        # Platform storage: put the binding secret in the LMS's frame, then go
        # to the platform. The cookie is set too, as a second chance.
        response = current_app.make_response(render_template(
            "login_storage.html", auth_url=result.auth_url, target=result.storage_target,
            target_origin=origin_of(result.platform.auth_login_url),
            key=storage_key(result.state), value=result.binding_secret))
    else:
        response = redirect(url_for("launch.login_continue", state=result.state), code=302)
    _set_state_cookie(response, result.state)
    return response


def _storage_target(value: str | None) -> str:
    return value if value and STORAGE_TARGET.fullmatch(value) else "post_message_forwarding"


def storage_key(state: str) -> str:
    return "pathwise_state_" + state[:16]


def _state_cookie(state: str) -> str:
    """This install's cookie name for a state (`__Host-` only on https)."""
    return state_cookie_name(state, services().settings.base_url.startswith("https://"))


def _set_state_cookie(response, state: str) -> None:
    response.set_cookie(_state_cookie(state), state, max_age=services().settings.state_ttl,
                        secure=True, httponly=True, samesite="None", partitioned=True,
                        path="/")


def _cookie_state(state: str) -> str | None:
    return request.cookies.get(_state_cookie(state)) if state else None


@bp.route("/lti/login/continue")
@_unavailable_on_database_error
def login_continue():
    """Second step of the login: go on to the platform only when the state
    cookie came back; otherwise offer the new window before the platform's
    one-time login hint is spent."""
    db = get_db()
    state = request.args.get("state", "")
    try:
        auth_url = services().validator.continue_login(db, state, _cookie_state(state))
    except LaunchError as exc:
        db.commit()
        if exc.code == "COOKIES_BLOCKED":
            observability.count_login("new_window", exc.code)
            _event("login_needs_new_window", reason=exc.code)
            return render_template("new_window.html", error=exc)
        return error_page(exc, "login")
    return redirect(auth_url, code=302)


@bp.route("/lti/launch", methods=["POST"])
@_rate_limited("launch", "launch")
@_unavailable_on_database_error
def launch():
    db = get_db()
    svc = services()
    settings = svc.settings
    state = request.form.get("state", "")
    cookie_state = _cookie_state(state)
    pending = svc.validator.storage_check_needed(db, request.form)
    if pending is not None:
        # The platform keeps our secret: read it in the page and post the
        # launch again with it (the cookie, if any, still rides along as the
        # fallback). Nothing is consumed yet.
        platform = db.get(Platform, pending.platform_id)
        return render_template(
            "launch_storage.html", id_token=request.form["id_token"], state=state,
            target=_storage_target(request.form.get("lti_storage_target")),
            target_origin=origin_of(platform.auth_login_url), key=storage_key(state))
    try:
        verified = svc.validator.validate(
            db, request.form, cookie_state=cookie_state,
            storage_secret=request.form.get("pathwise_storage_secret"))
    except LaunchError as exc:
        # The only writes kept: the state and nonce marked used, the key cache.
        db.commit()
        g.frame_ancestors = registered_origins(db)
        return error_page(exc, "launch")
    db.commit()

    message = verified.message
    decision = decide(message.roles)
    if message.message_type == "LtiDeepLinkingRequest" and decision.role != TEACHER:
        return error_page(LaunchError(
            "DEEP_LINK_NOT_ALLOWED", 403,
            "Only teachers can add Pathwise content to a course.",
            "Ask your teacher to add the activity."), "launch")
    try:
        record = record_launch(db, verified.platform, verified.deployment, message, decision)
    except ResourceLinkConflict:
        db.rollback()
        return error_page(LaunchError(
            "RESOURCE_LINK_CONFLICT", 409,
            "This activity's id is already used by an activity of another course.",
            "The LMS sent a resource link id that belongs to another course of the same "
            "deployment; LTI requires it to be unique. Re-create the activity in this course, "
            "or contact the LMS administrator."), "launch")
    placement = passback.on_launch(
        db, platform=verified.platform, claims=verified.claims, course_id=record.course_id,
        resource_link_pk=record.resource_link_pk, is_teacher=decision.role == TEACHER,
        custom=message.custom)
    notice = None if decision.recognised else (
        "Your LMS did not send a course role Pathwise knows, so you see the student view.")
    trusted = _trusted_origins(verified)
    row = create_session(
        db, platform_id=verified.platform.id, deployment_pk=verified.deployment.id,
        user_id=record.user_id, course_id=record.course_id,
        resource_link_pk=record.resource_link_pk, role=decision.role, role_notice=notice,
        message_type=message.message_type, launch_claims=verified.claims,
        return_url=message.return_url if origin_of(message.return_url or "") in trusted else None,
        frame_origins=trusted)
    db.commit()
    observability.count_launch("accepted")
    _event("launch_accepted", iss=verified.platform.issuer,
           client_id=verified.platform.client_id, deployment_id=message.deployment_id,
           message_type=message.message_type, roles=message.roles, role=decision.role,
           context_id=(message.context or {}).get("id"),
           resource_link_id=(message.resource_link or {}).get("id"))
    token = svc.tokens.issue(row.id)
    response = redirect(_destination(message, record, decision, placement, token), code=303)
    # The state cookie has done its job; do not let them pile up in the browser.
    response.delete_cookie(_state_cookie(state), path="/", secure=True,
                           httponly=True, samesite="None", partitioned=True)
    response.set_cookie(COOKIE, token, max_age=settings.session_ttl, secure=True,
                        httponly=True, samesite="None", partitioned=True, path="/")
    return response


def _destination(message, record, decision, placement, token: str) -> str:
    """Where a launch lands: the deep-linking picker, the placed playlist (its
    path for students, its passback settings for teachers), or the home page."""
    if message.message_type == "LtiDeepLinkingRequest":
        return url_for("deep_linking.pick", t=token)
    if placement is not None:
        if decision.role == TEACHER:
            return url_for("passback.placement", placement_id=placement.id, t=token)
        return url_for("playlists.my_playlist", playlist_id=placement.playlist_id, t=token)
    # A link added by hand: the teacher's dashboard asks which playlist it shows.
    return url_for("pages.home", t=token)


def _trusted_origins(verified) -> list[str]:
    """Where this session's pages may be framed and may link back to: the
    platform's registered origins plus the service origins in the signed
    launch (Canvas serves courses and services from the school's own domain,
    not from its shared issuer)."""
    urls = [verified.platform.auth_login_url, verified.platform.jwks_url,
            verified.platform.auth_token_url, verified.platform.issuer]
    claims = verified.claims
    ags = claims.get("https://purl.imsglobal.org/spec/lti-ags/claim/endpoint")
    if isinstance(ags, dict):
        urls += [ags.get("lineitems"), ags.get("lineitem")]
    nrps = claims.get("https://purl.imsglobal.org/spec/lti-nrps/claim/namesroleservice")
    if isinstance(nrps, dict):
        urls.append(nrps.get("context_memberships_url"))
    settings = claims.get("https://purl.imsglobal.org/spec/lti-dl/claim/deep_linking_settings")
    if isinstance(settings, dict):
        urls.append(settings.get("deep_link_return_url"))  # the picker posts its answer there
    return sorted({o for o in (origin_of(u) for u in urls if isinstance(u, str)) if o})


@bp.route("/.well-known/jwks.json")
def jwks():
    keyset = tool_keys.load(services().settings.keys_dir)
    response = current_app.response_class(json.dumps(keyset.jwks()),
                                          mimetype="application/json")
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


@bp.route("/healthz")
def healthz():
    """200 when the database answers. `?detail=1` adds the number of grade
    passbacks waiting in the outbox (/metrics has it by status too)."""
    db = get_db()
    try:
        db.execute(text("SELECT 1"))
        body = {"status": "ok", "database": "ok"}
        if request.args.get("detail"):
            body["outbox_pending"] = observability.outbox_pending(db)
    except OperationalError:
        return {"status": "unavailable", "database": "unreachable"}, 503
    return body
