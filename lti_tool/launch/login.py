"""OIDC third-party login initiation (LTI 1.3 Core 4.1, Security Framework 5.1.1).

State and nonce live in the database with an expiry, so any worker can finish
the launch, and the browser is bound to the state by a partitioned cookie or
by LTI platform storage."""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlencode

from sqlalchemy import delete
from sqlalchemy.orm import Session

from lti_tool.config import Settings
from lti_tool.launch.errors import bad_request, forbidden
from lti_tool.launch.models import LoginState, Platform, UsedNonce
from lti_tool.launch.registrations import find_platforms
from lti_tool.launch.urls import on_tool
from lti_tool.timeutil import utcnow

LAUNCH_PATHS = ("/lti/launch",)
# Login parameters kept to reopen the login top-level (new-window fallback).
FORWARDED = ("iss", "login_hint", "target_link_uri", "lti_message_hint", "client_id",
             "lti_deployment_id")
MAX_PARAM = 4096
STORAGE_TARGET = re.compile(r"[A-Za-z0-9_\-]{1,64}")


@dataclass(frozen=True)
class LoginResult:
    auth_url: str
    state: str
    platform: Platform
    storage_target: str | None
    binding_secret: str | None


def state_cookie_name(state: str, secure: bool) -> str:
    """One cookie per state, so two launches in two frames do not collide."""
    digest = hashlib.sha256(state.encode()).hexdigest()[:16]
    return ("__Host-" if secure else "") + f"lti_state_{digest}"


def hash_secret(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _param(params: Mapping[str, str], key: str) -> str:
    value = params.get(key) or ""
    if len(value) > MAX_PARAM:
        raise bad_request("LOGIN_PARAMETER_TOO_LONG", f"The login parameter {key} is too long.")
    return value


def _resolve_platform(session: Session, iss: str, client_id: str) -> Platform:
    candidates = find_platforms(session, iss, client_id or None)
    if len(candidates) == 1:
        return candidates[0]
    if not candidates and find_platforms(session, iss, client_id or None, active=False):
        # Known but switched off: say so, rather than "unknown" (which sends
        # an administrator off to register it a second time).
        raise forbidden(
            "PLATFORM_DISABLED", "This LMS registration has been disabled in Pathwise.",
            "A Pathwise administrator can enable it again under /admin/registrations.")
    if client_id and not candidates:
        if find_platforms(session, iss, None):
            raise bad_request(
                "UNKNOWN_CLIENT_ID",
                f"Client ID {client_id!r} is not registered for the LMS {iss!r}.",
                "An LMS administrator should register it: lti-tool platform add "
                f"--issuer {iss} --client-id {client_id} …")
    if not candidates:
        raise bad_request(
            "UNKNOWN_ISSUER",
            f"Unknown issuer {iss!r}" + (f" with client_id {client_id!r}" if client_id else "")
            + ".",
            "An LMS administrator should register this LMS with `lti-tool platform add "
            f"--issuer {iss} --client-id …`.")
    raise bad_request(
        "AMBIGUOUS_REGISTRATION",
        f"Several registrations share the issuer {iss!r} and the LMS sent no client_id.",
        "An LMS administrator should configure the LMS to send client_id with the login.")


def begin_login(session: Session, params: Mapping[str, str], settings: Settings) -> LoginResult:
    """Validate the login request, store state and nonce, and build the
    authentication request URL for the platform's registered endpoint."""
    iss = _param(params, "iss")
    login_hint = _param(params, "login_hint")
    target = _param(params, "target_link_uri")
    client_id = _param(params, "client_id")
    if not iss:
        raise bad_request("LOGIN_MISSING_ISS", "The login request has no issuer (iss).")
    if not login_hint:
        raise bad_request("LOGIN_MISSING_LOGIN_HINT", "The login request has no login_hint.")
    if not target:
        raise bad_request("LOGIN_MISSING_TARGET_LINK_URI",
                          "The login request has no target_link_uri.")
    if not on_tool(target, settings.base_url, LAUNCH_PATHS):
        raise bad_request(
            "INVALID_TARGET_LINK_URI",
            "The login asked to continue to an address that is not this tool's launch URL.",
            f"An LMS administrator should set the target link URI to {settings.base_url}"
            f"{LAUNCH_PATHS[0]}.")
    platform = _resolve_platform(session, iss, client_id)

    now = utcnow()
    state = secrets.token_urlsafe(32)
    nonce = secrets.token_urlsafe(32)
    # A login reopened top-level (new window) has no platform frame to talk to.
    storage_target = None if params.get("pathwise_new_window") else (
        _param(params, "lti_storage_target") or None)
    if storage_target and not STORAGE_TARGET.fullmatch(storage_target):
        storage_target = None
    binding_secret = secrets.token_urlsafe(24) if storage_target else None

    auth_params = {
        "scope": "openid",
        "response_type": "id_token",
        "response_mode": "form_post",
        "prompt": "none",
        "client_id": platform.client_id,
        "redirect_uri": settings.base_url + LAUNCH_PATHS[0],
        "login_hint": login_hint,
        "state": state,
        "nonce": nonce,
    }
    message_hint = params.get("lti_message_hint")
    if message_hint:
        auth_params["lti_message_hint"] = message_hint
    separator = "&" if "?" in platform.auth_login_url else "?"
    auth_url = platform.auth_login_url + separator + urlencode(auth_params)
    session.add(LoginState(
        state=state, nonce=nonce, platform_id=platform.id,
        lti_deployment_id=_param(params, "lti_deployment_id") or None,
        login_params={k: params[k] for k in FORWARDED if params.get(k)}, auth_url=auth_url,
        binding_hash=hash_secret(binding_secret) if binding_secret else None,
        created_at=now, expires_at=now + timedelta(seconds=settings.state_ttl)))
    # Keep the state tables small: every so often drop what has expired.
    if secrets.randbelow(50) == 0:
        purge_expired(session)
    return LoginResult(auth_url=auth_url, state=state, platform=platform,
                       storage_target=storage_target, binding_secret=binding_secret)


def purge_expired(session: Session) -> None:
    now = utcnow()
    session.execute(delete(LoginState).where(LoginState.expires_at < now))
    session.execute(delete(UsedNonce).where(UsedNonce.expires_at < now))
