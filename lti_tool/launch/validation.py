"""The id_token validation pipeline (Security Framework 5.1.3 + LTI Core 1.3).

Order matters: a launch whose platform keys cannot be fetched (503) keeps its
state so the person can retry; once the signature verifies, the state and the
nonce are consumed for good, whatever the rest of the checks say."""

from __future__ import annotations

import base64
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from urllib.parse import urlencode

import jwt
from sqlalchemy import update
from sqlalchemy.orm import Session

from lti_tool.config import Settings
from lti_tool.db import insert_ignore
from lti_tool.launch.claims import LaunchMessage, check_token_claims, parse_message
from lti_tool.launch.errors import (
    LaunchError,
    bad_request,
    forbidden,
    invalid_message,
    unauthorized,
)
from lti_tool.launch.login import LAUNCH_PATHS, hash_secret
from lti_tool.launch.models import Deployment, LoginState, Platform, UsedNonce
from lti_tool.launch.platform_keys import PlatformKeys
from lti_tool.launch.registration import claim_first_deployment
from lti_tool.launch.registrations import find_deployment
from lti_tool.launch.urls import on_tool
from lti_tool.timeutil import aware, utcnow

MAX_ID_TOKEN = 64 * 1024
COOKIE_HELP = ("Your browser did not send back the cookie that ties this launch to you; "
               "this happens when it blocks cookies inside the LMS page.")


@dataclass(frozen=True)
class VerifiedLaunch:
    platform: Platform
    deployment: Deployment
    message: LaunchMessage
    claims: dict


def _b64json(segment: str) -> dict:
    padded = segment + "=" * (-len(segment) % 4)
    value = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    if not isinstance(value, dict):
        raise ValueError("not an object")
    return value


def split_token(id_token: str) -> tuple[dict, dict]:
    """Header and payload of a compact JWS, unverified; 400 when malformed."""
    parts = id_token.split(".")
    if len(parts) != 3:
        raise bad_request("INVALID_JWT", "The id_token is not a JWT (it must have 3 parts).",
                          "Go back to your course and open the activity again.")
    try:
        return _b64json(parts[0]), _b64json(parts[1])
    except (ValueError, UnicodeError, json.JSONDecodeError):
        raise bad_request("INVALID_JWT", "The id_token could not be decoded.",
                          "Go back to your course and open the activity again.") from None


def new_window_url(settings: Settings, login_params: dict) -> str:
    params = dict(login_params)
    params["pathwise_new_window"] = "1"
    return settings.base_url + "/lti/login?" + urlencode(params)


class LaunchValidator:
    def __init__(self, settings: Settings, platform_keys: PlatformKeys):
        self.settings = settings
        self.platform_keys = platform_keys

    # -- state -------------------------------------------------------------
    def continue_login(self, session: Session, state: str, cookie_state: str | None) -> str:
        """After login set the state cookie, check it came back before sending
        the browser to the platform: a blocked cookie is found while the
        platform's one-time login hint is still unused, so the login can be
        reopened in a new window. Returns the authentication request URL."""
        row = self.load_state(session, state)
        if cookie_state and hmac.compare_digest(cookie_state, row.state):
            return row.auth_url
        # Nothing is written: without the cookie nobody can finish this state,
        # and it expires by itself (this step stays a read-only request).
        raise LaunchError("COOKIES_BLOCKED", 200, COOKIE_HELP,
                          "Continue in a new window to open the activity.",
                          new_window_url=new_window_url(self.settings, row.login_params or {}))

    def storage_check_needed(self, session: Session, form: Mapping[str, str]
                             ) -> LoginState | None:
        """The login state to verify through LTI platform storage first: when
        the platform offered its storage at login, it is preferred over the
        state cookie (which stays the fallback, then the new window)."""
        state = form.get("state") or ""
        # Platforms that offer storage say so again in the launch POST.
        if not form.get("lti_storage_target") or form.get("pathwise_storage_checked") \
                or not state or not form.get("id_token"):
            return None
        row = session.get(LoginState, state)
        if row is None or row.used_at is not None or not row.binding_hash \
                or aware(row.expires_at) < utcnow():
            return None
        return row

    def load_state(self, session: Session, state: str) -> LoginState:
        row = session.get(LoginState, state)
        if row is None:
            raise unauthorized("STATE_NOT_FOUND",
                               "This launch is unknown or has expired.")
        if row.used_at is not None:
            raise unauthorized("STATE_ALREADY_USED",
                               "This launch was already used; relaunch from your course.")
        if aware(row.expires_at) < utcnow():
            raise unauthorized("STATE_EXPIRED", "This launch took too long and expired.")
        return row

    def _claim_state(self, session: Session, state: str):
        """Mark the state used and return it, in one atomic statement: of two
        concurrent posts of the same launch, exactly one gets the row."""
        now = utcnow()
        row = session.connection().execute(
            update(LoginState)
            .where(LoginState.state == state, LoginState.used_at.is_(None),
                   LoginState.expires_at > now)
            .values(used_at=now)
            .returning(LoginState.state, LoginState.nonce, LoginState.platform_id,
                       LoginState.lti_deployment_id, LoginState.login_params,
                       LoginState.binding_hash)).one_or_none()
        if row is None:
            self.load_state(session, state)  # raises the precise reason
            raise unauthorized("STATE_ALREADY_USED",
                               "This launch was already used; relaunch from your course.")
        return row

    def _release_state(self, session: Session, state: str) -> None:
        """Give the state back when the failure was ours to retry (503)."""
        session.execute(update(LoginState).where(LoginState.state == state)
                        .values(used_at=None))

    def _check_binding(self, row: LoginState, cookie_state: str | None,
                       storage_secret: str | None) -> None:
        if cookie_state and hmac.compare_digest(cookie_state, row.state):
            return
        if storage_secret and row.binding_hash and hmac.compare_digest(
                hash_secret(storage_secret), row.binding_hash):
            return
        raise LaunchError(
            "STATE_NOT_BOUND", 401, COOKIE_HELP,
            "Continue in a new window to finish opening the activity.",
            new_window_url=new_window_url(self.settings, row.login_params or {}))

    # -- the pipeline --------------------------------------------------------
    def validate(self, session: Session, form: Mapping[str, str], *,
                 cookie_state: str | None, storage_secret: str | None = None,
                 ) -> VerifiedLaunch:
        state = form.get("state") or ""
        if form.get("error"):
            if state:
                session.execute(update(LoginState).where(LoginState.state == state)
                                .values(used_at=utcnow()))
            description = str(form.get("error_description") or form["error"])[:200]
            raise unauthorized("PLATFORM_AUTH_ERROR",
                               f"The LMS could not confirm who you are: {description}")
        id_token = form.get("id_token") or ""
        if not id_token:
            raise bad_request("MISSING_ID_TOKEN", "The launch has no id_token.",
                              "Open the activity from your course; this address cannot be "
                              "opened directly.")
        if len(id_token) > MAX_ID_TOKEN:
            raise LaunchError("ID_TOKEN_TOO_LARGE", 413, "The id_token is too large.",
                              "An LMS administrator should check the tool's custom fields.")
        if not state:
            raise bad_request("MISSING_STATE", "The launch has no state parameter.",
                              "Open the activity from your course again.")
        header, unverified = split_token(id_token)

        row = self._claim_state(session, state)
        platform = session.get(Platform, row.platform_id)
        if platform is None or not platform.active:
            raise forbidden("PLATFORM_DISABLED", "This LMS registration has been disabled.")
        try:
            self._check_binding(row, cookie_state, storage_secret)
            key = self._platform_key(session, platform, header)
        except LaunchError as exc:
            if exc.status == 503:   # the LMS's keys were unreachable: the person can retry
                self._release_state(session, state)
            raise
        try:
            jwt.decode(id_token, key, algorithms=["RS256"],
                       options={"verify_signature": True, "verify_exp": False,
                                "verify_iat": False, "verify_nbf": False,
                                "verify_aud": False, "verify_iss": False,
                                "verify_sub": False, "verify_jti": False})
        except jwt.InvalidSignatureError:
            raise unauthorized("JWT_SIGNATURE_INVALID",
                               "The launch token's signature is not valid.") from None
        except jwt.InvalidTokenError:
            raise bad_request("INVALID_JWT", "The id_token could not be decoded.") from None

        # Authentic from here on: the state is used up, whatever follows.
        claims = unverified
        now = utcnow()
        check_token_claims(claims, issuer=platform.issuer, client_id=platform.client_id,
                           now=now.timestamp(), leeway=self.settings.clock_leeway,
                           max_age=self.settings.max_token_age)
        nonce = claims.get("nonce")
        if not nonce or not isinstance(nonce, str):
            raise unauthorized("NONCE_MISSING", "The launch token has no nonce.")
        if not hmac.compare_digest(nonce.encode(), row.nonce.encode()):
            raise unauthorized("NONCE_MISMATCH",
                               "The launch token was not issued for this login.")
        self._use_nonce(session, platform, nonce, claims["exp"], now)

        message = parse_message(claims)
        deployment = find_deployment(session, platform.id, message.deployment_id)
        # A platform registered dynamically without a deployment (Canvas) may
        # take the first valid launch's deployment: decided last, once every
        # other check has passed, so a refused launch never records one.
        first = deployment is None and platform.accept_first_deployment
        if (deployment is None and not first) or (deployment is not None
                                                  and not deployment.active):
            raise self._unknown_deployment(platform, message.deployment_id)
        if row.lti_deployment_id and row.lti_deployment_id != message.deployment_id:
            raise unauthorized("DEPLOYMENT_MISMATCH",
                               "The launch names a different deployment than its login did.")
        if not on_tool(message.target_link_uri, self.settings.base_url, LAUNCH_PATHS):
            raise invalid_message("INVALID_TARGET_LINK_URI",
                                  "The launch's target link URI is not this tool's launch URL.")
        if first:
            deployment = claim_first_deployment(session, platform, message.deployment_id)
            if deployment is None or not deployment.active:
                raise self._unknown_deployment(platform, message.deployment_id)
        return VerifiedLaunch(platform=platform, deployment=deployment, message=message,
                              claims=claims)

    @staticmethod
    def _unknown_deployment(platform: Platform, deployment_id: str) -> LaunchError:
        return forbidden(
            "UNKNOWN_DEPLOYMENT",
            f"Deployment {deployment_id!r} is not registered for this platform.",
            "An LMS administrator should add it: lti-tool platform add --issuer "
            f"{platform.issuer} --client-id {platform.client_id} … --deployment-id "
            f"{deployment_id}")

    def _platform_key(self, session: Session, platform: Platform, header: dict):
        if header.get("alg") != "RS256":
            raise unauthorized("JWT_ALG_NOT_ALLOWED",
                               f"Tokens signed with {str(header.get('alg'))[:20]!r} are not "
                               "accepted; LTI launches must use RS256.")
        kid = header.get("kid")
        if not kid or not isinstance(kid, str):
            raise unauthorized("JWT_KID_MISSING", "The launch token does not name its key (kid).")
        return self.platform_keys.public_key(session, platform, kid)

    def _use_nonce(self, session: Session, platform: Platform, nonce: str, exp, now) -> None:
        # Keep the nonce while its token could be valid (exp is bounded: a
        # token may claim any expiry, the table should not keep it forever).
        horizon = now.timestamp() + 86400
        expires = datetime.fromtimestamp(min(float(exp), horizon), tz=timezone.utc)
        keep_until = max(expires, now + timedelta(seconds=self.settings.state_ttl)) \
            + timedelta(seconds=self.settings.clock_leeway)
        inserted = insert_ignore(session, UsedNonce, ["nonce"], {
            "nonce": nonce, "platform_id": platform.id, "expires_at": keep_until})
        if not inserted:
            raise unauthorized("NONCE_REPLAYED",
                               "This launch was already used; relaunch from your course.")
