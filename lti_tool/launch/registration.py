"""LTI Dynamic Registration 1.0 (tool side) and the administrator's secret.
No Flask here: the routes in registration_routes.py stay thin and call these
functions (and the shared per-IP limiter, lti_tool/ratelimit.py).

The flow (spec §3): the LMS opens `/lti/register?openid_configuration=…&
registration_token=…`; we show what will be registered; on "Register" we read
the platform's OpenID configuration (with the token as a Bearer, as Canvas
requires), check it, POST our registration to its `registration_endpoint`
(same Bearer), and store the returned client_id and, when the platform sends
one (Moodle), the deployment_id.

Host rules (why they are what they are):

* `issuer` must have the configuration URL's host (and port): the spec's
  "issuer and configuration URL match", which stops a configuration served
  from one site from claiming another LMS's issuer.
* `registration_endpoint` is where our Bearer token and registration go. It
  must be on the configuration's host, or on a sibling host under the
  configuration host's parent domain: Canvas serves the configuration from
  `canvas.instructure.com` and registers at `school.instructure.com` (A7);
  Moodle uses one host for everything (B6). The parent is the host minus its
  first label, and only when that parent is itself a registrable-looking
  domain (at least two labels and not a known public second level such as
  `co.uk`), so `canvas.instructure.com` allows `*.instructure.com` while
  `lms.example.com` allows `*.example.com`, and `example.com` or `school.co.uk`
  allow only themselves. An endpoint on an unrelated host is refused.
* The other endpoints (authorization, token, JWKS) are not host-matched:
  Canvas puts them on `sso.canvaslms.com`, another registrable domain. They
  come from the configuration the issuer's own host served, over https, and
  must themselves be https URLs that are not IP literals in private ranges.
* Every URL we fetch is https, except on loopback when the tool itself runs on
  loopback or `registration_allow_loopback` is set (the sandbox and tests).
  Host names are resolved first and private, link-local or reserved addresses
  are refused (SSRF, security.md §3.6); redirects are never followed; answers
  are size-capped and time-limited.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import os
import secrets
import socket
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import requests
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import select, update
from sqlalchemy.orm import Session, selectinload
from sqlalchemy.orm.attributes import set_committed_value

from lti_tool.config import Settings
from lti_tool.launch.models import Deployment, Platform
from lti_tool.launch.registrations import find_deployment
from lti_tool.launch.urls import is_loopback
from lti_tool.timeutil import utcnow

TOOL_NAME = "Pathwise"
TOOL_DESCRIPTION = "Personalised learning playlists with a mastery gradebook."
TOOL_ID = "pathwise"

PLATFORM_CONFIGURATION = "https://purl.imsglobal.org/spec/lti-platform-configuration"
TOOL_CONFIGURATION = "https://purl.imsglobal.org/spec/lti-tool-configuration"
CANVAS = "https://canvas.instructure.com/lti/"
RESOURCE_LINK_REQUEST = "LtiResourceLinkRequest"
DEEP_LINKING_REQUEST = "LtiDeepLinkingRequest"

SCOPES = {
    "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem":
        "Create and manage grade columns (AGS)",
    "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem.readonly":
        "Read grade columns (AGS)",
    "https://purl.imsglobal.org/spec/lti-ags/scope/result.readonly":
        "Read results (AGS)",
    "https://purl.imsglobal.org/spec/lti-ags/scope/score":
        "Send scores (AGS)",
    "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly":
        "Read the course roster (NRPS)",
}
CLAIMS = ["sub", "iss", "name", "given_name", "family_name", "email", "locale"]
# Canvas placements (A6/A7): deep linking where content is chosen, and the
# course navigation link that opens the dashboard.
DEEP_LINKING_PLACEMENTS = ["assignment_selection", "link_selection", "editor_button"]
RESOURCE_LINK_PLACEMENTS = ["course_navigation"]
PLACEMENT_LABELS = {
    "assignment_selection": "Assignment: choose a Pathwise playlist",
    "link_selection": "Modules: add a Pathwise playlist",
    "editor_button": "Rich content editor: insert a Pathwise playlist",
    "course_navigation": "Course navigation: Pathwise dashboard",
}

MAX_DOCUMENT_BYTES = 256 * 1024
FORM_TOKEN_TTL = 3600  # the platforms' registration tokens live one hour
FORM_SALT = "pathwise-dynamic-registration"

# Rate-limit buckets (lti_tool/ratelimit.py, per client IP): registration
# attempts (each makes outbound requests) and administrator sign-in attempts.
REGISTER_BUCKET = "register"
ADMIN_LOGIN_BUCKET = "admin_login"
ADMIN_LOGIN_DEFAULT_LIMIT = "10/10min"

# Second-level labels under a two-letter country code that are public
# suffixes (co.uk, edu.au, ac.jp, …): never treated as a site's parent domain.
_PUBLIC_SECOND_LEVEL = {"ac", "co", "com", "edu", "gov", "govt", "net", "org", "sch", "school",
                        "mil", "nic", "ltd", "plc", "gob", "gouv", "or", "ne", "go", "lg",
                        "ed", "k12", "nhs", "res", "int"}


class RegistrationFailure(Exception):
    """A registration step failed; the page says what to fix. Nothing is stored."""

    def __init__(self, code: str, status: int, reason: str, action: str):
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.status = status
        self.reason = reason
        self.action = action


RESTART = "Start the registration again from your LMS."


def _platform_fault(code: str, reason: str, action: str | None = None) -> RegistrationFailure:
    return RegistrationFailure(code, 502, reason, action or (
        "An LMS administrator should check the LMS's LTI settings, then " + RESTART[0].lower()
        + RESTART[1:]))


# -- URL rules -------------------------------------------------------------------------


def allow_loopback(settings: Settings) -> bool:
    """Plain-http loopback platforms (the sandbox, tests) only when the tool
    itself runs on loopback or the setting says so: a registration page is
    public, so it must not become a way to reach the tool host's own ports."""
    if settings.extra.get("registration_allow_loopback"):
        return True
    return is_loopback(urlsplit(settings.base_url).hostname)


def _effective_port(parts) -> int | None:
    try:
        port = parts.port
    except ValueError:
        return -1
    return port or {"https": 443, "http": 80}.get(parts.scheme)


def _ip(host: str):
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _blocked_address(address, loopback_ok: bool) -> bool:
    if address.is_loopback:
        return not loopback_ok
    return (address.is_private or address.is_link_local or address.is_multicast
            or address.is_reserved or address.is_unspecified)


def check_url(url: object, what: str, *, loopback_ok: bool,
              code: str = "PLATFORM_URL_INVALID", status: int = 502) -> str:
    """An absolute https URL (http only on loopback when allowed), no
    credentials, no private IP literal. Returns it or raises."""
    def fail(detail: str) -> RegistrationFailure:
        action = ("An LMS administrator should check the LMS's address settings, then "
                  + RESTART[0].lower() + RESTART[1:])
        return RegistrationFailure(code, status, f"The {what} {detail}", action)

    if not isinstance(url, str) or not url.strip():
        raise fail("is missing.")
    url = url.strip()
    if len(url) > 1000:
        raise fail("is longer than 1000 characters.")
    if any(ch.isspace() or ord(ch) < 32 for ch in url):
        raise fail("contains spaces or control characters.")
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise fail(f"is not an absolute https:// URL ({url[:200]!r}).")
    if parts.username or parts.password:
        raise fail("must not contain a user name or password.")
    if _effective_port(parts) == -1:
        raise fail("has an invalid port.")
    host = parts.hostname
    loopback = is_loopback(host)
    if parts.scheme == "http" and not (loopback and loopback_ok):
        raise fail(f"must use https:// ({url[:200]!r}).")
    if loopback and not loopback_ok:
        raise fail("points at this server's own loopback address.")
    address = _ip(host)
    if address is not None and _blocked_address(address, loopback_ok):
        raise fail("points at a private or reserved network address.")
    return url


def _resolve_check(url: str, loopback_ok: bool, what: str) -> None:
    """Resolve the host and refuse private, link-local or reserved targets
    (a public name can point anywhere). DNS may change between this check and
    the request; timeouts and the size cap bound what that could achieve."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if _ip(host) is not None:
        return
    try:
        infos = socket.getaddrinfo(host, _effective_port(parts), type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise _platform_fault("PLATFORM_UNREACHABLE",
                              f"The {what}'s host {host!r} could not be found (DNS).") from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%", 1)[0])
        if _blocked_address(address, loopback_ok):
            raise _platform_fault("PLATFORM_URL_INVALID",
                                  f"The {what}'s host {host!r} resolves to a private or "
                                  "reserved network address.")


def site_parent(host: str) -> str | None:
    """The domain a host's siblings share (canvas.instructure.com →
    instructure.com), or None when there is none we can trust."""
    host = host.lower().rstrip(".")
    if _ip(host) is not None or is_loopback(host):
        return None
    labels = host.split(".")
    if len(labels) < 3:
        return None
    parent = labels[1:]
    if len(parent) == 2 and len(parent[1]) == 2 and parent[0] in _PUBLIC_SECOND_LEVEL:
        return None
    return ".".join(parent)


def same_site(endpoint_url: str, configuration_url: str) -> bool:
    """The registration endpoint may be on the configuration's host (same
    scheme and port) or on a sibling host under its parent domain (https)."""
    e, c = urlsplit(endpoint_url), urlsplit(configuration_url)
    e_host = (e.hostname or "").rstrip(".")
    c_host = (c.hostname or "").rstrip(".")
    if e_host == c_host:
        return e.scheme == c.scheme and _effective_port(e) == _effective_port(c)
    parent = site_parent(c_host)
    return bool(parent) and e.scheme == "https" and e_host.endswith("." + parent)


# -- the tool's registration ----------------------------------------------------------


def tool_urls(base_url: str) -> dict:
    base = base_url.rstrip("/")
    parts = urlsplit(base)
    return {
        "base": base,
        "login": base + "/lti/login",
        "launch": base + "/lti/launch",
        "jwks": base + "/.well-known/jwks.json",
        "logo": base + "/static/pathwise-icon.svg",
        # Moodle requires target_link_uri's host to equal `domain` (B6).
        "domain": parts.netloc.rsplit("@", 1)[-1].lower(),
    }


def summary(base_url: str) -> dict:
    """What the registration will ask for, for the confirmation page."""
    urls = tool_urls(base_url)
    return {
        "name": TOOL_NAME,
        "description": TOOL_DESCRIPTION,
        "urls": urls,
        "redirect_uris": [urls["launch"]],
        "scopes": list(SCOPES.items()),
        "placements": [(p, PLACEMENT_LABELS[p])
                       for p in DEEP_LINKING_PLACEMENTS + RESOURCE_LINK_PLACEMENTS],
        "claims": CLAIMS,
    }


@dataclass(frozen=True)
class PlatformConfiguration:
    configuration_url: str
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    registration_endpoint: str
    product_family_code: str
    version: str
    name: str
    scopes_supported: list[str] | None
    # message type -> placements the platform names (None: it names none)
    messages_supported: dict[str, list[str] | None] | None = field(default=None)

    @property
    def is_canvas(self) -> bool:
        return self.product_family_code == "canvas"


def _str_list(value) -> list[str] | None:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    return None


def parse_configuration(data: object, configuration_url: str, *,
                        loopback_ok: bool) -> PlatformConfiguration:
    """Check the OpenID configuration against the spec and our host rules."""
    if not isinstance(data, dict):
        raise _platform_fault("CONFIGURATION_INVALID",
                              "The LMS's OpenID configuration is not a JSON object.")
    issuer = check_url(data.get("issuer"), "configuration's issuer", loopback_ok=loopback_ok,
                       code="CONFIGURATION_INVALID")
    i, c = urlsplit(issuer), urlsplit(configuration_url)
    if i.query or i.fragment:
        raise _platform_fault("CONFIGURATION_INVALID",
                              "The configuration's issuer must not have a query or fragment.")
    if (i.hostname or "").rstrip(".") != (c.hostname or "").rstrip(".") \
            or _effective_port(i) != _effective_port(c):
        raise _platform_fault(
            "ISSUER_MISMATCH",
            f"The LMS's configuration names the issuer {issuer!r}, whose host is not the "
            f"configuration URL's host ({c.netloc!r}).",
            "The openid_configuration URL must be served by the LMS's issuer host. An LMS "
            "administrator should check the LMS's issuer (Canvas: lti_iss) and its "
            "configuration URL, then " + RESTART[0].lower() + RESTART[1:])
    endpoints = {}
    for key in ("authorization_endpoint", "token_endpoint", "jwks_uri", "registration_endpoint"):
        endpoints[key] = check_url(data.get(key), f"configuration's {key}",
                                   loopback_ok=loopback_ok, code="CONFIGURATION_INVALID")
    if not same_site(endpoints["registration_endpoint"], configuration_url):
        raise _platform_fault(
            "REGISTRATION_ENDPOINT_MISMATCH",
            f"The LMS's registration endpoint ({endpoints['registration_endpoint'][:200]!r}) "
            f"is not on the configuration's site ({c.netloc!r}); Pathwise does not send the "
            "registration token to another site.")
    algs = data.get("id_token_signing_alg_values_supported")
    if algs is not None and (not isinstance(algs, list) or "RS256" not in algs):
        raise _platform_fault("CONFIGURATION_INVALID",
                              "The LMS does not sign launches with RS256, which LTI 1.3 requires.")
    methods = data.get("token_endpoint_auth_methods_supported")
    if methods is not None and (not isinstance(methods, list) or "private_key_jwt" not in methods):
        raise _platform_fault("CONFIGURATION_INVALID",
                              "The LMS does not accept private_key_jwt client authentication, "
                              "which LTI Advantage services require.")
    lti = data.get(PLATFORM_CONFIGURATION)
    lti = lti if isinstance(lti, dict) else {}
    family = lti.get("product_family_code")
    family = family.strip().lower()[:50] if isinstance(family, str) else ""
    version = lti.get("version")
    version = version.strip()[:50] if isinstance(version, str) else ""
    messages = None
    if isinstance(lti.get("messages_supported"), list):
        messages = {}
        for entry in lti["messages_supported"]:
            if isinstance(entry, dict) and isinstance(entry.get("type"), str):
                messages[entry["type"]] = _str_list(entry.get("placements"))
    account = lti.get(CANVAS + "account_name")
    host = i.netloc
    if isinstance(account, str) and account.strip():
        name = account.strip()
    elif family:
        name = f"{family.capitalize()} ({host})"
    else:
        name = host
    return PlatformConfiguration(
        configuration_url=configuration_url, issuer=issuer,
        product_family_code=family, version=version, name=name[:200],
        scopes_supported=_str_list(data.get("scopes_supported")),
        messages_supported=messages, **endpoints)


def registration_body(base_url: str, config: PlatformConfiguration) -> dict:
    """The IMS registration request (DR §3.6) for this platform."""
    urls = tool_urls(base_url)
    wanted = list(SCOPES)
    if config.scopes_supported is not None:
        wanted = [s for s in wanted if s in config.scopes_supported]
    messages = []
    supported = config.messages_supported

    def placements_for(kind: str, ours: list[str]) -> list[str] | None:
        if supported is None:
            return ours
        if kind not in supported:
            return None
        declared = supported[kind]
        return ours if declared is None else [p for p in ours if p in declared]

    if config.is_canvas:
        dl = placements_for(DEEP_LINKING_REQUEST, DEEP_LINKING_PLACEMENTS)
        if dl:
            messages.append({"type": DEEP_LINKING_REQUEST, "target_link_uri": urls["launch"],
                             "label": "Add a Pathwise playlist", "icon_uri": urls["logo"],
                             "placements": dl})
        nav = placements_for(RESOURCE_LINK_REQUEST, RESOURCE_LINK_PLACEMENTS)
        if nav:
            messages.append({"type": RESOURCE_LINK_REQUEST, "target_link_uri": urls["launch"],
                             "label": TOOL_NAME, "icon_uri": urls["logo"], "placements": nav,
                             CANVAS + "course_navigation/default_enabled": True,
                             CANVAS + "visibility": "members"})
    elif supported is None or DEEP_LINKING_REQUEST in supported:
        # Moodle reads only the deep-linking message (and ignores placements).
        messages.append({"type": DEEP_LINKING_REQUEST, "target_link_uri": urls["launch"],
                         "label": "Add a Pathwise playlist"})
    tool_config = {
        "domain": urls["domain"],
        "target_link_uri": urls["launch"],
        "description": TOOL_DESCRIPTION,
        "claims": list(CLAIMS),
        "messages": messages,
    }
    if config.is_canvas:
        tool_config[CANVAS + "privacy_level"] = "public"
        tool_config[CANVAS + "tool_id"] = TOOL_ID
    return {
        "application_type": "web",
        "client_name": TOOL_NAME,
        "client_uri": urls["base"],
        "logo_uri": urls["logo"],
        "grant_types": ["client_credentials", "implicit"],
        "response_types": ["id_token"],
        "redirect_uris": [urls["launch"]],
        "initiate_login_uri": urls["login"],
        "jwks_uri": urls["jwks"],
        "token_endpoint_auth_method": "private_key_jwt",
        "scope": " ".join(wanted),
        TOOL_CONFIGURATION: tool_config,
    }


@dataclass(frozen=True)
class RegistrationResult:
    client_id: str
    deployment_id: str | None
    scopes: list[str]
    messages: list[dict]


def parse_response(data: object) -> RegistrationResult:
    if not isinstance(data, dict):
        raise _platform_fault("REGISTRATION_RESPONSE_INVALID",
                              "The LMS accepted the registration but its answer is not a JSON "
                              "object, so Pathwise does not know its client ID.")
    client_id = data.get("client_id")
    if isinstance(client_id, int) and not isinstance(client_id, bool):
        client_id = str(client_id)
    if not isinstance(client_id, str) or not client_id.strip() or len(client_id) > 255:
        raise _platform_fault("REGISTRATION_RESPONSE_INVALID",
                              "The LMS's answer to the registration has no valid client_id.")
    tool_config = data.get(TOOL_CONFIGURATION)
    tool_config = tool_config if isinstance(tool_config, dict) else {}
    deployment = tool_config.get("deployment_id")
    if isinstance(deployment, int) and not isinstance(deployment, bool):
        deployment = str(deployment)
    if deployment is not None and (not isinstance(deployment, str) or not deployment.strip()
                                   or len(deployment) > 255):
        raise _platform_fault("REGISTRATION_RESPONSE_INVALID",
                              "The LMS's answer has an invalid deployment_id.")
    scope = data.get("scope")
    messages = tool_config.get("messages")
    return RegistrationResult(
        client_id=client_id.strip(), deployment_id=deployment.strip() if deployment else None,
        scopes=scope.split() if isinstance(scope, str) else [],
        messages=[m for m in messages if isinstance(m, dict)] if isinstance(messages, list)
        else [])


# -- HTTP ------------------------------------------------------------------------------


def _exchange(http: requests.Session, method: str, url: str, *, token: str, timeout: float,
              loopback_ok: bool, what: str, body: dict | None = None) -> tuple[int, bytes, str]:
    _resolve_check(url, loopback_ok, what)
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        with http.request(method, url, headers=headers, json=body, timeout=timeout,
                          allow_redirects=False, stream=True) as resp:
            data = resp.raw.read(MAX_DOCUMENT_BYTES + 1, decode_content=True)
            return resp.status_code, data, resp.headers.get("Content-Type", "")
    except requests.Timeout:
        raise _platform_fault("PLATFORM_TIMEOUT",
                              f"The LMS did not answer in time at its {what}.") from None
    except requests.RequestException as exc:
        raise _platform_fault("PLATFORM_UNREACHABLE",
                              f"The LMS's {what} could not be reached "
                              f"({type(exc).__name__}).") from None


def _excerpt(data: bytes) -> str:
    """A short, printable excerpt of what the platform said (escaped by Jinja)."""
    text = data[:2000].decode("utf-8", "replace")
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        for key in ("errorMessage", "error_description", "error", "message", "errors"):
            if parsed.get(key):
                text = json.dumps(parsed[key]) if not isinstance(parsed[key], str) \
                    else parsed[key]
                break
    text = " ".join(text.split())
    return text[:200] + ("…" if len(text) > 200 else "")


def _json(status: int, data: bytes, what: str, *, ok=(200,)) -> object:
    if 300 <= status < 400:
        raise _platform_fault("PLATFORM_REDIRECTED",
                              f"The LMS answered its {what} with a redirect (HTTP {status}); "
                              "Pathwise does not follow redirects.")
    if status in (401, 403):
        said = _excerpt(data)
        raise RegistrationFailure(
            "REGISTRATION_TOKEN_REFUSED", 502,
            f"The LMS refused the registration token at its {what} (HTTP {status})"
            + (f": {said}" if said else "."),
            "The token is missing, already used, or expired (it lasts about an hour). "
            + RESTART)
    if status not in ok:
        said = _excerpt(data)
        raise _platform_fault(
            "PLATFORM_ERROR",
            f"The LMS answered its {what} with HTTP {status}" + (f": {said}" if said else "."))
    if len(data) > MAX_DOCUMENT_BYTES:
        raise _platform_fault("PLATFORM_ANSWER_TOO_LARGE",
                              f"The LMS's {what} answered more than "
                              f"{MAX_DOCUMENT_BYTES // 1024} KB.")
    try:
        return json.loads(data)
    except ValueError:
        raise _platform_fault("PLATFORM_NOT_JSON",
                              f"The LMS's {what} did not answer JSON.") from None


def fetch_configuration(http: requests.Session, configuration_url: str, token: str, *,
                        timeout: float, loopback_ok: bool) -> PlatformConfiguration:
    status, data, _ = _exchange(http, "GET", configuration_url, token=token, timeout=timeout,
                                loopback_ok=loopback_ok, what="OpenID configuration URL")
    document = _json(status, data, "OpenID configuration URL")
    return parse_configuration(document, configuration_url, loopback_ok=loopback_ok)


def post_registration(http: requests.Session, config: PlatformConfiguration, token: str,
                      body: dict, *, timeout: float, loopback_ok: bool) -> RegistrationResult:
    status, data, _ = _exchange(http, "POST", config.registration_endpoint, token=token,
                                timeout=timeout, loopback_ok=loopback_ok, body=body,
                                what="registration endpoint")
    return parse_response(_json(status, data, "registration endpoint", ok=(200, 201)))


# -- the form token (cookie-less: the page lives in the LMS's iframe) ------------------


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:32]


def form_token(secret: str, configuration_url: str, registration_token: str) -> str:
    return URLSafeTimedSerializer(secret, salt=FORM_SALT).dumps(
        {"c": _digest(configuration_url), "t": _digest(registration_token)})


def check_form_token(secret: str, value: str, configuration_url: str,
                     registration_token: str) -> None:
    if not value:
        raise RegistrationFailure(
            "FORM_TOKEN_MISSING", 403,
            "This registration request did not come from Pathwise's registration page.",
            RESTART)
    try:
        data = URLSafeTimedSerializer(secret, salt=FORM_SALT).loads(value,
                                                                   max_age=FORM_TOKEN_TTL)
    except SignatureExpired:
        raise RegistrationFailure("FORM_TOKEN_EXPIRED", 400,
                                  "This registration page was open for too long.",
                                  RESTART) from None
    except BadSignature:
        raise RegistrationFailure(
            "FORM_TOKEN_INVALID", 403,
            "This registration request did not come from Pathwise's registration page.",
            RESTART) from None
    if not isinstance(data, dict) or not hmac.compare_digest(
            str(data.get("c")), _digest(configuration_url)) or not hmac.compare_digest(
            str(data.get("t")), _digest(registration_token)):
        raise RegistrationFailure(
            "FORM_TOKEN_INVALID", 403,
            "This registration request does not match the page Pathwise showed.", RESTART)


# -- storing ---------------------------------------------------------------------------


def store(session: Session, config: PlatformConfiguration, result: RegistrationResult, *,
          accept_first_deployment: bool) -> Platform:
    """The platform row (new, or the same issuer + client_id refreshed) and its
    deployment when the platform returned one. The caller commits."""
    platform = session.scalar(
        select(Platform).where(Platform.issuer == config.issuer,
                               Platform.client_id == result.client_id)
        .options(selectinload(Platform.deployments)))
    info = {
        "openid_configuration": config.configuration_url,
        "registration_endpoint": config.registration_endpoint,
        "product_family_code": config.product_family_code,
        "version": config.version,
        "scopes": result.scopes,
        "placements": sorted({p for m in result.messages for p in m.get("placements") or []
                              if isinstance(p, str)}),
        "deployment_returned": result.deployment_id is not None,
        "registered_at": utcnow().isoformat(timespec="seconds"),
    }
    if platform is None:
        platform = Platform(issuer=config.issuer, client_id=result.client_id, active=True)
        session.add(platform)
        known: set[str] = set()
    else:
        known = {d.deployment_id for d in platform.deployments}
    platform.name = config.name
    platform.auth_login_url = config.authorization_endpoint
    platform.auth_token_url = config.token_endpoint
    platform.jwks_url = config.jwks_uri
    platform.registered_via = "dynamic"
    platform.registration_info = info
    if result.deployment_id is not None:
        platform.accept_first_deployment = False
        if result.deployment_id not in known:
            platform.deployments.append(Deployment(deployment_id=result.deployment_id,
                                                   active=True))
    else:
        platform.accept_first_deployment = bool(accept_first_deployment and not known)
    session.flush()
    return platform


def claim_first_deployment(session: Session, platform: Platform,
                           deployment_id: str) -> Deployment | None:
    """For a platform waiting for its first deployment: record this one and
    clear the flag in one atomic step. Of two concurrent first launches one
    claims; the other waits for it (the row lock on PostgreSQL, the writer lock
    on SQLite) and then finds the deployment when it was the same one, or
    nothing (refused) when it was another."""
    table = Platform.__table__
    claimed = session.connection().execute(
        update(table).where(table.c.id == platform.id,
                            table.c.accept_first_deployment.is_(True))
        .values(accept_first_deployment=False).returning(table.c.id)).first()
    set_committed_value(platform, "accept_first_deployment", False)
    if claimed is None:
        return find_deployment(session, platform.id, deployment_id)
    deployment = Deployment(platform_id=platform.id, deployment_id=deployment_id, active=True)
    session.add(deployment)
    session.flush()
    return deployment


# -- the administrator's secret ----------------------------------------------------------

ADMIN_TOKEN_ENV = "LTI_TOOL_ADMIN_TOKEN"
ADMIN_SESSION_TTL = 8 * 3600
ADMIN_SALT = "pathwise-admin-session"
ADMIN_CSRF_SALT = "pathwise-admin-csrf"
ADMIN_LOGIN_SALT = "pathwise-admin-login"


def admin_token(settings: Settings) -> str:
    """LTI_TOOL_ADMIN_TOKEN, or a random token kept in the instance folder
    (created on first use; `lti-tool admin-token` prints it)."""
    value = (settings.extra.get("admin_token") or os.environ.get(ADMIN_TOKEN_ENV) or "").strip()
    if value:
        return value
    return _token_from_instance(Path(settings.instance_path))


def _token_from_instance(instance: Path) -> str:
    path = instance / "admin_token"
    if path.exists():
        return path.read_text().strip()
    instance.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(32)
    try:  # O_EXCL: of two processes starting at once, the first writer wins
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as fh:
        fh.write(value)
    return value


def admin_token_matches(settings: Settings, offered: str | None) -> bool:
    expected = admin_token(settings)
    return bool(offered) and hmac.compare_digest(offered.encode(), expected.encode())


def _fingerprint(settings: Settings) -> str:
    # Sessions die when the admin token changes.
    return _digest("admin:" + admin_token(settings))


def new_admin_session(settings: Settings) -> tuple[str, str]:
    """(cookie value, session id)."""
    sid = secrets.token_urlsafe(16)
    value = URLSafeTimedSerializer(settings.secret_key, salt=ADMIN_SALT).dumps(
        {"sid": sid, "k": _fingerprint(settings)})
    return value, sid


def read_admin_session(settings: Settings, value: str | None) -> str | None:
    if not value:
        return None
    try:
        data = URLSafeTimedSerializer(settings.secret_key, salt=ADMIN_SALT).loads(
            value, max_age=ADMIN_SESSION_TTL)
    except BadSignature:
        return None
    if not isinstance(data, dict) or not hmac.compare_digest(
            str(data.get("k")), _fingerprint(settings)):
        return None
    sid = data.get("sid")
    return sid if isinstance(sid, str) else None


def admin_csrf_token(settings: Settings, sid: str) -> str:
    return URLSafeTimedSerializer(settings.secret_key, salt=ADMIN_CSRF_SALT).dumps(sid)


def admin_csrf_ok(settings: Settings, sid: str, value: str | None) -> bool:
    if not value:
        return False
    try:
        got = URLSafeTimedSerializer(settings.secret_key, salt=ADMIN_CSRF_SALT).loads(
            value, max_age=ADMIN_SESSION_TTL)
    except BadSignature:
        return False
    return isinstance(got, str) and hmac.compare_digest(got, sid)


def login_form_token(settings: Settings) -> str:
    return URLSafeTimedSerializer(settings.secret_key, salt=ADMIN_LOGIN_SALT).dumps(
        secrets.token_urlsafe(8))


def login_form_token_ok(settings: Settings, value: str | None) -> bool:
    if not value:
        return False
    try:
        URLSafeTimedSerializer(settings.secret_key, salt=ADMIN_LOGIN_SALT).loads(
            value, max_age=3600)
    except BadSignature:
        return False
    return True
