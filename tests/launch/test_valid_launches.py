"""Valid launches from Canvas- and Moodle-shaped LMSs (certification T1-T9,
S1-S10), what they record, and the tool session that follows."""

from __future__ import annotations

import threading
import uuid

import pytest
import sqlalchemy as sa

from lti_tool.db import get_engine, session_scope
from tests.support.flows import error_code, launch, login, post_launch, record_counts
from tests.support.platform import LIS, LTI

MEMBER = LIS + "membership#"


def _follow(client, response):
    assert response.status_code == 303, response.get_data(as_text=True)[:800]
    page = client.get(response.headers["Location"])
    assert page.status_code == 200
    return page.get_data(as_text=True)


def _no_pii(claims):
    for key in ("name", "given_name", "family_name", "email"):
        claims.pop(key, None)


CERT_LAUNCHES = [
    # (case, role, overrides, expected view)
    ("T1-instructor", "teacher", {}, "teacher"),
    ("T2-instructor-with-roles", "teacher",
     {LTI + "roles": [MEMBER + "Instructor", LIS + "institution/person#Faculty"]}, "teacher"),
    ("T3-instructor-short-role", "teacher", {LTI + "roles": ["Instructor"]}, "teacher"),
    ("T4-instructor-unknown-role", "teacher",
     {LTI + "roles": [MEMBER + "Instructor", "http://example.com/unknownrole#Unknown"]},
     "teacher"),
    ("T5-instructor-no-role", "teacher", {LTI + "roles": []}, "student"),
    ("T5b-instructor-empty-role", "teacher", {LTI + "roles": [""]}, "student"),
    ("S1-student", "student", {}, "student"),
    ("S2-student-with-roles", "student",
     {LTI + "roles": [MEMBER + "Learner", LIS + "institution/person#Student",
                      LIS + "institution/person#Mentor"]}, "student"),
    ("S3-student-short-role", "student", {LTI + "roles": ["Learner"]}, "student"),
    ("S4-student-unknown-role", "student",
     {LTI + "roles": [MEMBER + "Learner", "http://purl.imsglobal.org/uknownrole/unknown#Unknown"]},
     "student"),
    ("S5-student-no-role", "student", {LTI + "roles": [""]}, "student"),
    ("canvas-institution-instructor-who-is-a-learner", "student",
     {LTI + "roles": [LIS + "institution/person#Instructor", MEMBER + "Learner"]}, "student"),
    ("learner-subrole-named-instructor", "student",
     {LTI + "roles": [LIS + "membership/Learner#Instructor"]}, "student"),
    ("teaching-assistant", "teacher",
     {LTI + "roles": [LIS + "membership/Instructor#TeachingAssistant"]}, "teacher"),
    ("content-developer", "teacher", {LTI + "roles": [MEMBER + "ContentDeveloper"]}, "teacher"),
    ("custom-claims-do-not-grant-roles", "student",
     {LTI + "custom": {"role": "instructor", "is_admin": "true"}}, "student"),
]


@pytest.mark.parametrize("case,role,overrides,view", CERT_LAUNCHES,
                         ids=[c[0] for c in CERT_LAUNCHES])
def test_certification_launches(client, lms, case, role, overrides, view):
    response, _ = launch(client, lms, role=role, **overrides)
    page = _follow(client, response)
    if view == "teacher":
        assert "Teacher dashboard" in page and "Playlists" in page
    else:
        assert "My playlists" in page and "Teacher dashboard" not in page
    assert ("Grace Hopper" if role == "teacher" else "Ada Lovelace") in page


def test_no_role_launch_explains_least_privilege(client, canvas):
    response, _ = launch(client, canvas, role="teacher", **{LTI + "roles": []})
    page = _follow(client, response)
    assert "did not send a course role" in page


@pytest.mark.parametrize("case,mutate,greeting", [
    ("T6-email-only", lambda c: [c.pop(k) for k in ("name", "given_name", "family_name")],
     "Hello, ghopper@school.example"),
    ("T7-names-only", lambda c: c.pop("email"), "Hello, Grace Hopper"),
    ("given-and-family-only", lambda c: c.pop("name"), "Hello, Grace Hopper"),
    ("T8-no-pii", _no_pii, "Hello, there"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_names_and_privacy(client, lms, case, mutate, greeting):
    started = login(client, lms)
    claims = lms.claims(started.nonce, role="teacher")
    mutate(claims)
    page = _follow(client, post_launch(client, lms.sign(claims), started.state))
    assert greeting in page


def test_T9_launch_without_context(client, lms, database_url):
    started = login(client, lms)
    claims = lms.claims(started.nonce, role="teacher")
    claims.pop(LTI + "context")
    page = _follow(client, post_launch(client, lms.sign(claims), started.state))
    assert "outside a course" in page
    counts = record_counts(database_url)
    assert counts["course"] == 0 and counts["enrollment"] == 0 and counts["resource_link"] == 1


def test_S10_student_with_only_a_resource_link(client, canvas):
    started = login(client, canvas)
    claims = canvas.claims(started.nonce)
    for key in (LTI + "context", LTI + "launch_presentation", "name", "given_name",
                "family_name", "email"):
        claims.pop(key)
    page = _follow(client, post_launch(client, canvas.sign(claims), started.state))
    assert "My playlists" in page


def test_launch_records_user_course_enrolment_and_link(client, lms, database_url):
    response, _ = launch(client, lms, role="teacher")
    assert response.status_code == 303
    with get_engine(database_url).connect() as conn:
        user = conn.execute(sa.text("SELECT name, email FROM lti_user")).one()
        course = conn.execute(sa.text("SELECT title, label FROM course")).one()
        role = conn.execute(sa.text("SELECT role FROM enrollment")).scalar_one()
        link = conn.execute(sa.text("SELECT title FROM resource_link")).scalar_one()
    assert tuple(user) == ("Grace Hopper", "ghopper@school.example")
    assert tuple(course) == ("Math 5", "MATH-5")
    assert role == "teacher" and link == "Fractions Playlist"


def test_relaunch_updates_instead_of_duplicating(client, moodle, database_url):
    launch(client, moodle, role="student")
    launch(client, moodle, role="student", name="Ada King",
           **{LTI + "context": {"id": "2", "title": "Math 5 (renamed)", "type": ["CourseSection"]}})
    counts = record_counts(database_url)
    assert counts["lti_user"] == 1 and counts["course"] == 1 and counts["enrollment"] == 1
    with get_engine(database_url).connect() as conn:
        assert conn.execute(sa.text("SELECT name FROM lti_user")).scalar_one() == "Ada King"
        assert conn.execute(sa.text("SELECT title FROM course")).scalar_one() == \
            "Math 5 (renamed)"


def test_an_unchanged_relaunch_rewrites_no_person_course_or_enrolment(client, moodle,
                                                                      database_url):
    """A class launching at once must not queue on row locks: what did not
    change is read, not written again."""
    def stamps():
        with get_engine(database_url).connect() as conn:
            return conn.execute(sa.text(
                "SELECT u.updated_at, c.updated_at, e.updated_at FROM lti_user u "
                "JOIN enrollment e ON e.user_id = u.id JOIN course c ON c.id = e.course_id"
            )).one()

    launch(client, moodle, role="student")
    before = stamps()
    response, _ = launch(client, moodle, role="student")
    assert response.status_code == 303
    assert stamps() == before


def test_same_sub_and_context_on_two_platforms_are_different(client, canvas, moodle,
                                                             database_url):
    shared = {"sub": "123", LTI + "context": {"id": "c1", "title": "Shared id"}}
    launch(client, canvas, **shared)
    launch(client, moodle, **shared)
    counts = record_counts(database_url)
    assert counts["lti_user"] == 2 and counts["course"] == 2


def test_two_canvas_schools_share_an_issuer(client, canvas, app, database_url):
    from lti_tool.launch.registrations import add_platform

    second = {**canvas.registration(), "client_id": "10000000000077",
              "deployment_ids": ["12:" + "b" * 40]}
    with session_scope(database_url) as session:
        add_platform(session, **second)
    started = login(client, canvas, client_id="10000000000077", lti_deployment_id="12:" + "b" * 40)
    claims = canvas.claims(started.nonce, aud="10000000000077", azp="10000000000077",
                           sub="same-sub", **{LTI + "deployment_id": "12:" + "b" * 40})
    assert post_launch(client, canvas.sign(claims), started.state).status_code == 303
    launch(client, canvas, sub="same-sub")
    assert record_counts(database_url)["lti_user"] == 2


def test_concurrent_replay_has_exactly_one_winner(app, lms, database_url):
    cookie_client = app.test_client()
    started = login(cookie_client, lms)
    token = lms.sign(lms.claims(started.nonce))
    name, value = started.response.headers["Set-Cookie"].split(";")[0].split("=", 1)
    results = []
    barrier = threading.Barrier(4)

    def attempt():
        client = app.test_client()
        client.set_cookie(name, value)
        barrier.wait()
        response = client.post("/lti/launch", data={"id_token": token, "state": started.state})
        results.append(response.status_code)

    threads = [threading.Thread(target=attempt) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [303, 401, 401, 401]
    assert record_counts(database_url)["tool_session"] == 1


def test_second_page_works_with_the_signed_token_alone(app, lms):
    client = app.test_client()
    response, _ = launch(client, lms, role="teacher")
    home = client.get(response.headers["Location"])
    token = home.get_data(as_text=True).split("/account?t=")[1].split('"')[0]
    fresh = app.test_client()  # no cookies at all: a browser blocking them
    page = fresh.get(f"/account?t={token}")
    assert page.status_code == 200
    assert "Grace Hopper" in page.get_data(as_text=True)
    assert fresh.get("/account", headers={"Authorization": f"Bearer {token}"}).status_code == 200


@pytest.mark.parametrize("token", ["", "garbage", "eyJhbGciOi.fake.token"])
def test_pages_without_a_valid_session_are_refused(client, platforms, token):
    response = client.get(f"/home?t={token}")
    assert response.status_code == 401
    assert "Open Pathwise again from your course" in response.get_data(as_text=True)


def test_token_signed_with_another_secret_is_refused(app, lms, tmp_path, database_url,
                                                     tool_keys_dir):
    from lti_tool import create_app

    response, _ = launch(app.test_client(), lms)
    token = response.headers["Location"].split("t=")[1]
    other = create_app({"instance_path": tmp_path / "other", "database_url": database_url,
                        "keys_dir": tool_keys_dir, "base_url": "https://tool.test",
                        "secret_key": "another-" + uuid.uuid4().hex})
    assert other.test_client().get(f"/home?t={token}").status_code == 401


def test_session_cookie_attributes(client, canvas):
    response, _ = launch(client, canvas)
    cookie = [c for c in response.headers.getlist("Set-Cookie") if "pathwise_session" in c][0]
    for attribute in ("Secure", "HttpOnly", "SameSite=None", "Partitioned", "Path=/"):
        assert attribute in cookie


def test_pages_may_be_framed_only_by_the_launching_lms(client, canvas):
    response, _ = launch(client, canvas)
    page = client.get(response.headers["Location"])
    csp = page.headers["Content-Security-Policy"]
    ancestors = csp.split("frame-ancestors ")[1].split(";")[0].split()
    assert "'self'" in ancestors
    assert "https://school.instructure.com" in ancestors  # from the signed return_url
    assert "https://sso.canvaslms.com" in ancestors
    assert "*" not in ancestors and "https://moodle.example.edu" not in ancestors
    assert "'unsafe-inline'" not in csp.split("script-src")[1].split(";")[0]
    assert "object-src 'none'" in csp and "base-uri 'none'" in csp
    assert page.headers["X-Content-Type-Options"] == "nosniff"


def test_back_to_course_link_only_for_the_lms_origin(client, moodle):
    response, _ = launch(client, moodle, **{LTI + "launch_presentation": {
        "return_url": "https://evil.example/phish"}})
    page = _follow(client, response)
    assert "evil.example" not in page and "Back to course" not in page
    response, _ = launch(client, moodle)
    assert "Back to course" in _follow(client, response)


def test_learner_deep_linking_request_is_refused(client, canvas, database_url):
    before = record_counts(database_url)
    started = login(client, canvas)
    claims = canvas.claims(started.nonce, **{
        LTI + "message_type": "LtiDeepLinkingRequest",
        "https://purl.imsglobal.org/spec/lti-dl/claim/deep_linking_settings": {
            "deep_link_return_url": "https://school.instructure.com/dl",
            "accept_types": ["ltiResourceLink"],
            "accept_presentation_document_targets": ["iframe"]}})
    claims.pop(LTI + "resource_link")
    response = post_launch(client, canvas.sign(claims), started.state)
    assert response.status_code == 403
    assert error_code(response) == "DEEP_LINK_NOT_ALLOWED"
    assert record_counts(database_url) == before


def test_launch_is_restorable_through_pylti1p3(client, canvas, app, database_url):
    """pylti1p3 serves the services later: the saved launch restores with our
    database-backed tool configuration and the tool's own kid."""
    from lti_tool.launch import keys
    from lti_tool.launch.lti_adapter import restore_launch

    ags = {"scope": ["https://purl.imsglobal.org/spec/lti-ags/scope/score"],
           "lineitems": "https://school.instructure.com/api/lti/courses/1/line_items"}
    response, _ = launch(client, canvas, **{
        "https://purl.imsglobal.org/spec/lti-ags/claim/endpoint": ags})
    assert response.status_code == 303
    from lti_tool.launch.models import ToolSession

    keyset = keys.load(app.config["SETTINGS"].keys_dir)
    with session_scope(database_url) as session:
        row = session.scalars(sa.select(ToolSession)).one()
        restored = restore_launch(session, keyset, row.launch_claims)
        assert restored.has_ags() and restored.has_nrps()
        assert restored.get_launch_data()["sub"]
        registration = restored._registration
        assert registration.get_kid() == keyset.signing.kid
        assert registration.get_client_id() == canvas.flavor.client_id
