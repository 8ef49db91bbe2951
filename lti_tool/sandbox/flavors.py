"""What differs between the Canvas and the Moodle flavour of the sandbox LMS.

Everything a tool can observe on the wire that differs between the two platforms
(URLs, identifier formats, lifetimes, error envelopes, pagination) is decided here,
so the endpoint modules stay flavour-neutral and read like the spec.
Source of every value: shared/reference/platforms.md (sections A* for Canvas, B* for Moodle).
"""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass
from datetime import datetime, timezone

LTI = "https://purl.imsglobal.org/spec/lti/claim/"
AGS_CLAIM = "https://purl.imsglobal.org/spec/lti-ags/claim/endpoint"
NRPS_CLAIM = "https://purl.imsglobal.org/spec/lti-nrps/claim/namesroleservice"
DL_SETTINGS_CLAIM = "https://purl.imsglobal.org/spec/lti-dl/claim/deep_linking_settings"
DL_CONTENT_ITEMS = "https://purl.imsglobal.org/spec/lti-dl/claim/content_items"
DL_DATA = "https://purl.imsglobal.org/spec/lti-dl/claim/data"
CANVAS_PLACEMENT_CLAIM = "https://www.instructure.com/placement"

SCOPE_LINEITEM = "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem"
SCOPE_LINEITEM_READONLY = "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem.readonly"
SCOPE_RESULT_READONLY = "https://purl.imsglobal.org/spec/lti-ags/scope/result.readonly"
SCOPE_SCORE = "https://purl.imsglobal.org/spec/lti-ags/scope/score"
SCOPE_NRPS = "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly"
AGS_SCOPES = (SCOPE_LINEITEM, SCOPE_LINEITEM_READONLY, SCOPE_RESULT_READONLY, SCOPE_SCORE)
# The sandbox registers the tool with every AGS scope plus NRPS (Canvas dev key with all
# five ticked; Moodle "AGS level 2" + memberships on).
REGISTERED_SCOPES = (*AGS_SCOPES, SCOPE_NRPS)

MT_LINEITEM = "application/vnd.ims.lis.v2.lineitem+json"
MT_LINEITEM_CONTAINER = "application/vnd.ims.lis.v2.lineitemcontainer+json"
MT_SCORE = "application/vnd.ims.lis.v1.score+json"
MT_SCORE_CONTAINER = "application/vnd.ims.lis.v1.scorecontainer+json"
MT_RESULT_CONTAINER = "application/vnd.ims.lis.v2.resultcontainer+json"
MT_MEMBERSHIPS = "application/vnd.ims.lti-nrps.v2.membershipcontainer+json"
MT_MEMBERSHIPS_V1 = "application/vnd.ims.lis.v2.membershipcontainer+json"

ROLE_SYSTEM_USER = "http://purl.imsglobal.org/vocab/lis/v2/system/person#User"
ROLE_INST_STUDENT = "http://purl.imsglobal.org/vocab/lis/v2/institution/person#Student"
ROLE_INST_INSTRUCTOR = "http://purl.imsglobal.org/vocab/lis/v2/institution/person#Instructor"
ROLE_LEARNER = "http://purl.imsglobal.org/vocab/lis/v2/membership#Learner"
ROLE_INSTRUCTOR = "http://purl.imsglobal.org/vocab/lis/v2/membership#Instructor"

CANVAS_ISSUER = "https://canvas.instructure.com"


@dataclass(frozen=True)
class Flavor:
    """Base class: values shared by both platforms; subclasses override the rest."""

    name: str = ""
    label: str = ""
    id_token_lifetime: int = 3600
    # Both platforms hand out 3600 s access tokens (A8, B7).
    access_token_lifetime: int = 3600
    # Pagination defaults for line items / results and for NRPS.
    default_page_size: int | None = None
    nrps_default_page_size: int | None = None

    # -- issuer and platform endpoints -------------------------------------------------
    def issuer(self, base: str) -> str:
        raise NotImplementedError

    def auth_login_url(self, base: str) -> str:
        raise NotImplementedError

    def token_url(self, base: str) -> str:
        raise NotImplementedError

    def jwks_url(self, base: str) -> str:
        raise NotImplementedError

    # -- service URLs handed to the tool -----------------------------------------------
    def lineitems_url(self, base: str, course_id: int, type_id: int) -> str:
        raise NotImplementedError

    def lineitem_url(self, base: str, course_id: int, item_id: int, type_id: int) -> str:
        raise NotImplementedError

    def lineitem_sub_url(
        self, base: str, course_id: int, item_id: int, type_id: int, sub: str
    ) -> str:
        """`<lineitem>/scores` or `<lineitem>/results`, placed before any query string."""
        raise NotImplementedError

    def memberships_url(self, base: str, course_id: int, type_id: int) -> str:
        raise NotImplementedError

    # -- identifiers --------------------------------------------------------------------
    def new_client_id(self) -> str:
        raise NotImplementedError

    def new_kid(self) -> str:
        raise NotImplementedError


@dataclass(frozen=True)
class CanvasFlavor(Flavor):
    name: str = "canvas"
    label: str = "Canvas (sandbox)"
    id_token_lifetime: int = 3600
    default_page_size: int | None = 10
    nrps_default_page_size: int | None = 50
    max_page_size: int = 50

    def issuer(self, base: str) -> str:
        # One issuer for every hosted Canvas school; endpoints live on the school domain (A1).
        return CANVAS_ISSUER

    def auth_login_url(self, base: str) -> str:
        return f"{base}/api/lti/authorize_redirect"

    def token_url(self, base: str) -> str:
        return f"{base}/login/oauth2/token"

    def jwks_url(self, base: str) -> str:
        return f"{base}/api/lti/security/jwks"

    def lineitems_url(self, base: str, course_id: int, type_id: int) -> str:
        return f"{base}/api/lti/courses/{course_id}/line_items"

    def lineitem_url(self, base: str, course_id: int, item_id: int, type_id: int) -> str:
        return f"{base}/api/lti/courses/{course_id}/line_items/{item_id}"

    def lineitem_sub_url(
        self, base: str, course_id: int, item_id: int, type_id: int, sub: str
    ) -> str:
        return f"{self.lineitem_url(base, course_id, item_id, type_id)}/{sub}"

    def memberships_url(self, base: str, course_id: int, type_id: int) -> str:
        return f"{base}/api/lti/courses/{course_id}/names_and_roles"

    def new_client_id(self) -> str:
        # Developer-key global id: a numeric string (A1).
        return str(10000000000000 + secrets.randbelow(1000))

    def new_kid(self) -> str:
        # Canvas kids are ISO timestamps, e.g. "2018-06-18T22:33:20Z" (A1).
        return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class MoodleFlavor(Flavor):
    name: str = "moodle"
    label: str = "Moodle (sandbox)"
    # Moodle id_tokens live 60 s (B4): the tool must validate promptly.
    id_token_lifetime: int = 60
    default_page_size: int | None = None  # no `limit` -> everything, no Link header (B8)
    nrps_default_page_size: int | None = None

    def issuer(self, base: str) -> str:
        return base  # wwwroot, no trailing slash (B1)

    def auth_login_url(self, base: str) -> str:
        return f"{base}/mod/lti/auth.php"

    def token_url(self, base: str) -> str:
        return f"{base}/mod/lti/token.php"

    def jwks_url(self, base: str) -> str:
        return f"{base}/mod/lti/certs.php"

    def lineitems_url(self, base: str, course_id: int, type_id: int) -> str:
        return f"{base}/mod/lti/services.php/{course_id}/lineitems?type_id={type_id}"

    def lineitem_url(self, base: str, course_id: int, item_id: int, type_id: int) -> str:
        path = f"{base}/mod/lti/services.php/{course_id}/lineitems/{item_id}/lineitem"
        return f"{path}?type_id={type_id}"

    def lineitem_sub_url(
        self, base: str, course_id: int, item_id: int, type_id: int, sub: str
    ) -> str:
        # `?type_id=` stays a query: the extra path segment goes before it (B8).
        path = f"{base}/mod/lti/services.php/{course_id}/lineitems/{item_id}/lineitem/{sub}"
        return f"{path}?type_id={type_id}"

    def memberships_url(self, base: str, course_id: int, type_id: int) -> str:
        return (
            f"{base}/mod/lti/services.php/CourseSection/{course_id}/bindings/{type_id}/memberships"
        )

    def new_client_id(self) -> str:
        # random_string(15): letters and digits (B1).
        alphabet = string.ascii_letters + string.digits
        return "".join(secrets.choice(alphabet) for _ in range(15))

    def new_kid(self) -> str:
        return secrets.token_hex(10)  # bin2hex(random_bytes(10)): 20 hex chars (B1)


FLAVORS: dict[str, Flavor] = {"canvas": CanvasFlavor(), "moodle": MoodleFlavor()}


def get_flavor(name: str) -> Flavor:
    try:
        return FLAVORS[name]
    except KeyError:
        raise ValueError(f"unknown sandbox flavor {name!r}; use 'canvas' or 'moodle'") from None
