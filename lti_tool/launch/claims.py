"""LTI 1.3 claim rules for a verified id_token (pure: no Flask, no database).

Security checks on the token itself (iss, aud, azp, exp, iat) come first,
then the message semantics of LTI Core 1.3 and Deep Linking 2.0."""

from __future__ import annotations

from dataclasses import dataclass, field

from lti_tool.launch.errors import LaunchError, invalid_message, unauthorized

LTI = "https://purl.imsglobal.org/spec/lti/claim/"
DL = "https://purl.imsglobal.org/spec/lti-dl/claim/"
MESSAGE_TYPE = LTI + "message_type"
VERSION = LTI + "version"
DEPLOYMENT_ID = LTI + "deployment_id"
ROLES = LTI + "roles"
RESOURCE_LINK = LTI + "resource_link"
CONTEXT = LTI + "context"
TARGET_LINK_URI = LTI + "target_link_uri"
LAUNCH_PRESENTATION = LTI + "launch_presentation"
CUSTOM = LTI + "custom"
DEEP_LINKING_SETTINGS = DL + "deep_linking_settings"

RESOURCE_LINK_REQUEST = "LtiResourceLinkRequest"
DEEP_LINKING_REQUEST = "LtiDeepLinkingRequest"
SUPPORTED_MESSAGES = {RESOURCE_LINK_REQUEST, DEEP_LINKING_REQUEST}
MAX_ID = 255


def check_token_claims(claims: dict, *, issuer: str, client_id: str, now: float,
                       leeway: int, max_age: int) -> None:
    """iss, aud/azp, exp and iat (Security Framework 5.1.3)."""
    if claims.get("iss") != issuer:
        raise unauthorized("JWT_ISS_MISMATCH",
                           "The token was not issued by the LMS this login started with.")
    aud = claims.get("aud")
    audiences = aud if isinstance(aud, list) else [aud]
    if client_id not in audiences or not all(isinstance(a, str) for a in audiences):
        raise unauthorized("JWT_AUD_MISMATCH",
                           "The token is not addressed to this tool's client ID.")
    azp = claims.get("azp")
    if len(audiences) > 1 and azp is None:
        raise unauthorized("JWT_AZP_REQUIRED",
                           "The token has several audiences but no authorized party (azp).")
    if azp is not None and azp != client_id:
        raise unauthorized("JWT_AZP_MISMATCH",
                           "The token's authorized party (azp) is not this tool.")
    exp, iat = claims.get("exp"), claims.get("iat")
    if not _is_number(exp):
        raise unauthorized("JWT_EXP_MISSING", "The token has no valid expiry time (exp).")
    if not _is_number(iat):
        raise unauthorized("JWT_IAT_MISSING", "The token has no valid issue time (iat).")
    if exp < now - leeway:
        raise unauthorized("JWT_EXPIRED", "The launch token has expired.")
    if iat > now + leeway:
        raise unauthorized("JWT_IAT_IN_FUTURE", "The launch token was issued in the future; "
                           "the LMS and tool clocks disagree.")
    if iat < now - max_age - leeway:
        raise unauthorized("JWT_TOO_OLD", "The launch token is too old.")


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _id_string(value, claim: str, code: str) -> str:
    if value is None or value == "":
        raise invalid_message(code, f"The launch has no {claim}.")
    if not isinstance(value, str) or len(value) > MAX_ID:
        raise invalid_message("LTI_CLAIM_INVALID",
                              f"The {claim} must be a string of at most {MAX_ID} characters.")
    return value


@dataclass(frozen=True)
class LaunchMessage:
    """What Pathwise uses from a valid launch."""

    message_type: str
    deployment_id: str
    sub: str
    roles: list[str]
    target_link_uri: str
    resource_link: dict | None
    context: dict | None
    name: str | None
    given_name: str | None
    family_name: str | None
    email: str | None
    return_url: str | None
    deep_linking_settings: dict | None
    custom: dict = field(default_factory=dict)


def _optional_str(claims: dict, key: str, limit: int = 500) -> str | None:
    value = claims.get(key)
    return value[:limit] if isinstance(value, str) and value.strip() else None


def parse_message(claims: dict) -> LaunchMessage:
    """Check the LTI message semantics and return what the tool needs.
    Raises LaunchError (422) naming the first problem found."""
    if VERSION not in claims:
        raise invalid_message("LTI_VERSION_MISSING", "The launch has no LTI version claim.")
    if claims[VERSION] != "1.3.0":
        raise invalid_message("LTI_VERSION_UNSUPPORTED",
                              f"LTI version {str(claims[VERSION])[:20]!r} is not supported; "
                              "Pathwise needs LTI 1.3.0.")
    message_type = claims.get(MESSAGE_TYPE)
    if not message_type:
        raise invalid_message("LTI_MESSAGE_TYPE_MISSING", "The launch has no message type.")
    if not isinstance(message_type, str) or message_type not in SUPPORTED_MESSAGES:
        raise invalid_message("LTI_MESSAGE_TYPE_UNSUPPORTED",
                              f"Pathwise does not handle {str(message_type)[:60]!r} messages.")
    deployment_id = _id_string(claims.get(DEPLOYMENT_ID), "deployment ID",
                               "LTI_DEPLOYMENT_ID_MISSING")
    if ROLES not in claims:
        raise invalid_message("LTI_ROLES_CLAIM_MISSING", "The launch has no roles claim.")
    roles = claims[ROLES]
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise invalid_message("LTI_CLAIM_INVALID", "The roles claim must be a list of strings.")
    sub = _id_string(claims.get("sub"), "user identifier (sub)", "LTI_SUB_MISSING")

    resource_link = None
    settings = None
    if message_type == RESOURCE_LINK_REQUEST:
        link = claims.get(RESOURCE_LINK)
        if not isinstance(link, dict) or not link.get("id"):
            raise invalid_message("LTI_RESOURCE_LINK_ID_MISSING",
                                  "The launch has no resource link ID.")
        _id_string(link.get("id"), "resource link ID", "LTI_RESOURCE_LINK_ID_MISSING")
        resource_link = link
    else:
        settings = claims.get(DEEP_LINKING_SETTINGS)
        if not isinstance(settings, dict):
            raise invalid_message("DL_SETTINGS_MISSING",
                                  "The deep linking request has no deep linking settings.")
        if not settings.get("deep_link_return_url") or not isinstance(
                settings.get("accept_types"), list) or not isinstance(
                settings.get("accept_presentation_document_targets"), list):
            raise invalid_message("DL_SETTINGS_INVALID",
                                  "The deep linking settings need deep_link_return_url, "
                                  "accept_types and accept_presentation_document_targets.")

    context = claims.get(CONTEXT)
    if context is not None:
        if not isinstance(context, dict):
            raise invalid_message("LTI_CLAIM_INVALID", "The context claim must be an object.")
        _id_string(context.get("id"), "context ID", "LTI_CONTEXT_ID_MISSING")

    target = claims.get(TARGET_LINK_URI)
    if not isinstance(target, str) or not target:
        raise invalid_message("LTI_TARGET_LINK_URI_MISSING", "The launch has no target link URI.")

    presentation = claims.get(LAUNCH_PRESENTATION)
    return_url = presentation.get("return_url") if isinstance(presentation, dict) else None
    custom = claims.get(CUSTOM)
    # Custom values must be strings; others are dropped (never used for authorisation).
    custom = {k: v for k, v in custom.items() if isinstance(k, str) and isinstance(v, str)} \
        if isinstance(custom, dict) else {}
    return LaunchMessage(
        message_type=message_type,
        deployment_id=deployment_id,
        sub=sub,
        roles=roles,
        target_link_uri=target,
        resource_link=resource_link,
        context=context,
        name=_optional_str(claims, "name", 300),
        given_name=_optional_str(claims, "given_name", 200),
        family_name=_optional_str(claims, "family_name", 200),
        email=_optional_str(claims, "email", 320),
        return_url=return_url if isinstance(return_url, str) else None,
        deep_linking_settings=settings,
        custom=custom,
    )


__all__ = ["LaunchError", "LaunchMessage", "check_token_claims", "parse_message"]
