"""Login initiation, the authorization endpoint and id_token claims, per flavour."""

from __future__ import annotations

import json
import re
import time
import uuid

import jwt

LTI = "https://purl.imsglobal.org/spec/lti/claim/"
AGS = "https://purl.imsglobal.org/spec/lti-ags/claim/endpoint"
NRPS = "https://purl.imsglobal.org/spec/lti-nrps/claim/namesroleservice"
DL = "https://purl.imsglobal.org/spec/lti-dl/claim/deep_linking_settings"
ROLE = "http://purl.imsglobal.org/vocab/lis/v2/"
HEX40 = re.compile(r"^[0-9a-f]{40}$")


# -- login initiation -----------------------------------------------------------------------


def test_canvas_login_initiation_fields(canvas):
    login = canvas.start_launch(canvas.student_id, canvas.nav_path())
    assert list(login) == [
        "iss",
        "login_hint",
        "client_id",
        "lti_deployment_id",
        "target_link_uri",
        "lti_message_hint",
        "canvas_environment",
        "canvas_region",
        "lti_storage_target",
    ]
    assert login["iss"] == "https://canvas.instructure.com"
    assert HEX40.match(login["login_hint"])
    assert re.match(r"^\d{14}$", login["client_id"])
    assert re.match(r"^87:[0-9a-f]{40}$", login["lti_deployment_id"])
    assert login["target_link_uri"] == f"{canvas.tool.url}/lti/launch"
    assert login["canvas_environment"] == "prod"
    assert login["lti_storage_target"] == "post_message_forwarding"
    hint = jwt.get_unverified_header(login["lti_message_hint"])
    assert hint["alg"] == "HS256"
    payload = jwt.decode(login["lti_message_hint"], options={"verify_signature": False})
    assert 0 < payload["exp"] - time.time() <= 300
    assert payload["context_type"] == "Course" and payload["include_storage_target"] is True


def test_moodle_login_initiation_fields(moodle):
    login = moodle.start_launch(moodle.student_id, moodle.nav_path())
    assert list(login) == [
        "iss",
        "target_link_uri",
        "login_hint",
        "lti_message_hint",
        "client_id",
        "lti_deployment_id",
    ]
    assert login["iss"] == moodle.base_url
    assert login["login_hint"] == str(moodle.student_id)
    assert re.match(r"^[A-Za-z0-9]{15}$", login["client_id"])
    assert login["lti_deployment_id"] == "3"
    hint = json.loads(login["lti_message_hint"])
    assert hint["cmid"] == 5 and hint["launchid"].startswith("ltilaunch5_")


# -- authorization endpoint -------------------------------------------------------------------


def test_non_matching_redirect_uri_is_an_error_page_without_post_back(sandbox):
    login = sandbox.start_launch(sandbox.student_id, sandbox.nav_path())
    evil = "https://evil.example/steal"
    resp = sandbox.authorize(login, redirect_uri=evil, scope="bad-scope")
    assert resp.status_code == 400
    page = resp.get_data(as_text=True)
    assert "Invalid redirect_uri" in page
    assert "<form" not in page and evil not in page
    # Near misses are not exact matches either.
    near = sandbox.authorize(login, redirect_uri=f"{sandbox.tool.url}/lti/launch/")
    assert near.status_code == 400 and "<form" not in near.get_data(as_text=True)


def test_unknown_client_id_is_an_error_page(sandbox):
    login = sandbox.start_launch(sandbox.student_id, sandbox.nav_path())
    resp = sandbox.authorize(login, client_id="not-a-client")
    assert resp.status_code == 400
    assert "<form" not in resp.get_data(as_text=True)


def test_bad_scope_is_posted_back_with_state(sandbox):
    login = sandbox.start_launch(sandbox.student_id, sandbox.nav_path())
    resp = sandbox.authorize(login, scope="profile", state="my-state")
    assert resp.status_code == 200
    action, fields = sandbox.parse_form(resp.get_data(as_text=True))
    assert action == f"{sandbox.tool.url}/lti/launch"
    assert fields["error"] == (
        "invalid_request_object" if sandbox.flavor == "canvas" else "invalid_scope"
    )
    assert fields["error_description"]
    assert fields["state"] == "my-state"
    assert "id_token" not in fields


def test_other_request_errors_are_posted_back(sandbox):
    login = sandbox.start_launch(sandbox.student_id, sandbox.nav_path())
    for override, in_error in (
        ({"response_type": "code"}, "unsupported_response_type"),
        ({"response_mode": "query"}, "invalid_request"),
        ({"prompt": "login"}, "invalid_request"),
    ):
        resp = sandbox.authorize(login, **override)
        _action, fields = sandbox.parse_form(resp.get_data(as_text=True))
        assert fields["error"] == in_error, override
    missing_nonce = sandbox.authorize(login, nonce=None)
    _action, fields = sandbox.parse_form(missing_nonce.get_data(as_text=True))
    assert fields["error"] in ("invalid_request_object", "invalid_request")
    assert "nonce" in fields["error_description"]


def test_message_hint_is_single_use(sandbox):
    login = sandbox.start_launch(sandbox.student_id, sandbox.nav_path())
    first = sandbox.authorize(login)
    assert "id_token" in sandbox.parse_form(first.get_data(as_text=True))[1]
    second = sandbox.authorize(login)
    _action, fields = sandbox.parse_form(second.get_data(as_text=True))
    assert "id_token" not in fields
    expected = "launch_no_longer_valid" if sandbox.flavor == "canvas" else "invalid_request"
    assert fields["error"] == expected


def test_login_hint_must_match_the_hinted_user(sandbox):
    login = sandbox.start_launch(sandbox.student_id, sandbox.nav_path())
    teacher_hint = str(sandbox.teacher_id)
    if sandbox.flavor == "canvas":
        teacher_login = sandbox.start_launch(sandbox.teacher_id, sandbox.nav_path())
        teacher_hint = teacher_login["login_hint"]
    resp = sandbox.authorize(login, login_hint=teacher_hint)
    _action, fields = sandbox.parse_form(resp.get_data(as_text=True))
    assert fields["error"] == ("login_required" if sandbox.flavor == "canvas" else "access_denied")


def test_canvas_refuses_a_forged_message_hint_without_post_back(canvas):
    login = canvas.start_launch(canvas.student_id, canvas.nav_path())
    payload = jwt.decode(login["lti_message_hint"], options={"verify_signature": False})
    forged = jwt.encode(payload, "x" * 32, algorithm="HS256")
    resp = canvas.authorize(login, lti_message_hint=forged)
    assert resp.status_code == 400
    assert "<form" not in resp.get_data(as_text=True)


def test_canvas_authorize_redirect_bounces_to_authorize(canvas):
    login = canvas.start_launch(canvas.student_id, canvas.nav_path())
    resp = canvas.app.test_client().post(
        "/api/lti/authorize_redirect", data=canvas.auth_params(login)
    )
    assert resp.status_code == 302
    location = resp.headers["Location"]
    assert location.startswith(f"{canvas.base_url}/api/lti/authorize?")
    assert canvas.query_of(location)["lti_message_hint"] == login["lti_message_hint"]
    # Following it (a GET, no cookies) completes the launch.
    follow = canvas.app.test_client().get(canvas.path(location))
    assert "id_token" in canvas.parse_form(follow.get_data(as_text=True))[1]


def test_launch_works_without_the_sandbox_cookie(sandbox):
    # `authorize` uses a brand-new client: the user is identified by the hints only.
    _header, claims, _fields = sandbox.id_token(sandbox.student_id, sandbox.nav_path())
    expected_sub = str(sandbox.student_id) if sandbox.flavor == "moodle" else None
    if expected_sub:
        assert claims["sub"] == expected_sub


# -- id_token claims --------------------------------------------------------------------------


def test_canvas_student_id_token_claims(canvas):
    header, claims, fields = canvas.id_token(canvas.student_id, canvas.nav_path())
    assert header["alg"] == "RS256" and header["typ"] == "JWT"
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", header["kid"])
    assert fields["lti_storage_target"] == "post_message_forwarding"
    assert fields["utf8"] == "\u2713"  # Rails form fields a tool must ignore
    assert claims["iss"] == "https://canvas.instructure.com"
    assert claims["aud"] == canvas.client_id and claims["azp"] == canvas.client_id
    assert claims["exp"] - claims["iat"] == 3600
    uuid.UUID(claims["sub"])
    assert claims[LTI + "message_type"] == "LtiResourceLinkRequest"
    assert claims[LTI + "version"] == "1.3.0"
    assert claims[LTI + "deployment_id"] == canvas.info["deployment_id"]
    roles = claims[LTI + "roles"]
    assert roles == sorted(roles)
    assert roles == [
        ROLE + "institution/person#Student",
        ROLE + "membership#Learner",
        ROLE + "system/person#User",
    ]
    context = claims[LTI + "context"]
    assert HEX40.match(context["id"])
    assert context["type"] == ["http://purl.imsglobal.org/vocab/lis/v2/course#CourseOffering"]
    # course_navigation: no resource link of its own, so the context id stands in (A4).
    assert claims[LTI + "resource_link"]["id"] == context["id"]
    assert claims["https://www.instructure.com/placement"] == "course_navigation"
    assert HEX40.match(claims[LTI + "lti11_legacy_user_id"])
    ags = claims[AGS]
    assert ags["lineitems"] == f"{canvas.base_url}/api/lti/courses/{canvas.course_id}/line_items"
    assert "lineitem" not in ags
    assert "https://purl.imsglobal.org/spec/lti-ags/scope/score" in ags["scope"]
    assert claims[NRPS] == {
        "context_memberships_url": (
            f"{canvas.base_url}/api/lti/courses/{canvas.course_id}/names_and_roles"
        ),
        "service_versions": ["2.0"],
    }
    custom = claims[LTI + "custom"]
    assert custom["canvas_course_id"] == str(canvas.course_id)
    assert custom["section_sourcedid"] == "$CourseSection.sourcedId"  # sent literally
    assert claims[LTI + "tool_platform"]["product_family_code"] == "canvas"
    assert claims["name"] and claims["email"]


def test_canvas_teacher_roles(canvas):
    _header, claims, _fields = canvas.id_token(canvas.teacher_id, canvas.nav_path())
    assert claims[LTI + "roles"] == [
        ROLE + "institution/person#Instructor",
        ROLE + "membership#Instructor",
        ROLE + "system/person#User",
    ]


def test_moodle_student_id_token_claims(moodle):
    header, claims, fields = moodle.id_token(moodle.student_id, moodle.nav_path())
    assert re.match(r"^[0-9a-f]{20}$", header["kid"])
    assert set(fields) == {"id_token", "state"}
    assert claims["iss"] == moodle.base_url
    assert claims["aud"] == moodle.client_id
    assert "azp" not in claims
    assert claims["exp"] - claims["iat"] == 60
    assert claims["sub"] == str(moodle.student_id)
    assert claims[LTI + "deployment_id"] == "3"
    assert claims[LTI + "roles"] == [ROLE + "membership#Learner"]
    assert claims[LTI + "context"] == {
        "id": str(moodle.course_id),
        "label": "MATH5",
        "title": "Math 5 \u2014 Fractions",
        "type": ["CourseSection"],
    }
    assert claims[LTI + "resource_link"]["id"] == "5"
    assert claims[LTI + "ext"]["lms"] == "moodle-2"
    assert claims[LTI + "lis"] == {"person_sourcedid": "", "course_section_sourcedid": ""}
    custom = claims[LTI + "custom"]
    assert custom["courseid"] == custom["courseId"] == str(moodle.course_id)
    services = f"{moodle.base_url}/mod/lti/services.php"
    memberships = f"{services}/CourseSection/{moodle.course_id}/bindings/3/memberships"
    assert custom["context_memberships_url"] == memberships
    assert claims[NRPS] == {
        "context_memberships_url": memberships,
        "service_versions": ["1.0", "2.0"],
    }
    assert (
        claims[AGS]["lineitems"]
        == f"{moodle.base_url}/mod/lti/services.php/{moodle.course_id}/lineitems?type_id=3"
    )
    assert claims[AGS]["scope"] == sorted(claims[AGS]["scope"])
    assert claims[LTI + "tool_platform"]["product_family_code"] == "moodle"


def test_moodle_teacher_is_instructor_only(moodle):
    _header, claims, _fields = moodle.id_token(moodle.teacher_id, moodle.nav_path())
    assert claims[LTI + "roles"] == [ROLE + "membership#Instructor"]


def test_canvas_deep_linking_request_claims(canvas):
    _header, claims, _fields = canvas.id_token(canvas.teacher_id, canvas.dl_path())
    assert claims[LTI + "message_type"] == "LtiDeepLinkingRequest"
    assert LTI + "resource_link" not in claims
    settings = claims[DL]
    assert settings["accept_types"] == ["ltiResourceLink"]
    assert settings["accept_presentation_document_targets"] == ["iframe", "window"]
    assert settings["accept_multiple"] is False and settings["auto_create"] is False
    assert settings["accept_media_types"] == "application/vnd.ims.lti.v1.ltilink"
    assert "data" not in settings and "accept_lineitem" not in settings
    assert settings["deep_link_return_url"].startswith(
        f"{canvas.base_url}/courses/{canvas.course_id}/deep_linking_response?data="
    )
    assert claims["https://www.instructure.com/placement"] == "assignment_selection"


def test_moodle_deep_linking_request_claims(moodle):
    _header, claims, _fields = moodle.id_token(moodle.teacher_id, moodle.dl_path())
    assert claims[LTI + "message_type"] == "LtiDeepLinkingRequest"
    assert LTI + "resource_link" not in claims
    settings = claims[DL]
    assert settings["accept_presentation_document_targets"] == ["frame", "iframe", "window"]
    assert settings["accept_multiple"] is True
    for flag in ("accept_copy_advice", "accept_unsigned", "auto_create", "can_confirm"):
        assert settings[flag] is False
    query = moodle.query_of(settings["deep_link_return_url"])
    assert query["course"] == str(moodle.course_id) and query["id"] == "3" and query["sesskey"]
    assert "lineitem" not in claims[AGS]


def test_students_cannot_start_deep_linking(sandbox):
    client = sandbox.app.test_client()
    sandbox.sign_in(client, sandbox.student_id)
    assert client.get(sandbox.dl_path()).status_code == 403
