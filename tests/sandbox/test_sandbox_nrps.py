"""Names and Role Provisioning Service."""

from __future__ import annotations

import uuid
from urllib.parse import quote

MEMBERSHIPS = "application/vnd.ims.lti-nrps.v2.membershipcontainer+json"
NRPS_SCOPE = "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly"
LEARNER = "http://purl.imsglobal.org/vocab/lis/v2/membership#Learner"
INSTRUCTOR = "http://purl.imsglobal.org/vocab/lis/v2/membership#Instructor"


def _url(sb) -> str:
    if sb.flavor == "canvas":
        return f"{sb.base_url}/api/lti/courses/{sb.course_id}/names_and_roles"
    return f"{sb.base_url}/mod/lti/services.php/CourseSection/{sb.course_id}/bindings/3/memberships"


def test_memberships_need_the_nrps_scope(sandbox):
    ags_only = sandbox.token("https://purl.imsglobal.org/spec/lti-ags/scope/score")
    resp = sandbox.client.get(
        sandbox.path(_url(sandbox)), headers={"Authorization": f"Bearer {ags_only}"}
    )
    assert resp.status_code == 401
    assert sandbox.client.get(sandbox.path(_url(sandbox))).status_code == 401


def test_canvas_memberships_and_link_pagination(canvas):
    token = canvas.token(NRPS_SCOPE)
    headers = {"Authorization": f"Bearer {token}", "Accept": MEMBERSHIPS}
    full = canvas.client.get(canvas.path(_url(canvas)), headers=headers)
    assert full.status_code == 200 and full.mimetype == MEMBERSHIPS
    body = full.get_json()
    assert body["id"] == _url(canvas)
    assert len(body["context"]["id"]) == 40
    members = body["members"]
    assert len(members) == 7
    assert members[0]["roles"] == [INSTRUCTOR]
    assert all(m["roles"] == [LEARNER] for m in members[1:])
    for m in members:
        uuid.UUID(m["user_id"])
        assert len(m["lti11_legacy_user_id"]) == 40 and m["status"] == "Active"
    page = canvas.client.get(canvas.path(_url(canvas)) + "?limit=3", headers=headers)
    assert len(page.get_json()["members"]) == 3
    link = page.headers["Link"]
    assert f'<{_url(canvas)}?page=2&per_page=3>; rel="next"' in link
    assert "limit=" not in link  # Canvas strips `limit` from the links (A10)
    last = canvas.client.get(canvas.path(_url(canvas)) + "?page=3&per_page=3", headers=headers)
    assert len(last.get_json()["members"]) == 1 and 'rel="next"' not in last.headers["Link"]
    learners = canvas.client.get(
        canvas.path(_url(canvas)) + f"?role={quote(LEARNER, safe='')}", headers=headers
    )
    assert len(learners.get_json()["members"]) == 6


def test_moodle_memberships_short_roles_and_offset_next_link(moodle):
    token = moodle.token(NRPS_SCOPE)
    headers = {"Authorization": f"Bearer {token}"}
    full = moodle.client.get(moodle.path(_url(moodle)), headers=headers)
    assert full.status_code == 200
    body = full.get_json()
    assert body["context"] == {
        "id": str(moodle.course_id),
        "label": "MATH5",
        "title": "Math 5 \u2014 Fractions",
    }
    assert "Link" not in full.headers
    members = body["members"]
    assert members[0]["roles"] == ["Instructor"] and members[0]["user_id"] == str(moodle.teacher_id)
    assert {tuple(m["roles"]) for m in members[1:]} == {("Learner",)}
    assert all(m["ext_user_username"] and m["lis_person_sourcedid"] == "" for m in members)
    page = moodle.client.get(moodle.path(_url(moodle)) + "?limit=2", headers=headers)
    assert len(page.get_json()["members"]) == 2
    assert page.headers["Link"] == f'<{_url(moodle)}?limit=2&from=2>; rel="next"'
    tail = moodle.client.get(moodle.path(_url(moodle)) + "?limit=2&from=6", headers=headers)
    assert len(tail.get_json()["members"]) == 1 and "Link" not in tail.headers
    bad_accept = moodle.client.get(
        moodle.path(_url(moodle)), headers={**headers, "Accept": "text/html"}
    )
    assert bad_accept.status_code == 400
    learners = moodle.client.get(moodle.path(_url(moodle)) + "?role=Learner", headers=headers)
    assert len(learners.get_json()["members"]) == 6
