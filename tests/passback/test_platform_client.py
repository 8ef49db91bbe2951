"""The LMS service client: response classification, Link parsing, URL and host
rules (pure), then tokens, scores, line items and rosters against the sandbox
LMS over real HTTP, and network faults against tiny local servers."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import jwt
import pytest
from sqlalchemy import select
from werkzeug.wrappers import Request, Response

from lti_tool.db import session_scope
from lti_tool.passback import platform_client as pc
from lti_tool.passback.models import ServiceToken
from lti_tool.passback.platform_client import (
    MT_LINEITEM,
    MT_LINEITEM_CONTAINER,
    MT_MEMBERSHIPS,
    MT_RESULT_CONTAINER,
    MT_SCORE,
    SCOPE_LINEITEM,
    SCOPE_LINEITEM_READONLY,
    SCOPE_NRPS,
    SCOPE_RESULT_READONLY,
    SCOPE_SCORE,
    ServiceError,
    check_host,
    classify,
    client_for,
    parse_link_header,
    parse_retry_after,
    service_url,
)
from tests.passback.conftest import make_client, register

FLAVORS = ["canvas", "moodle"]

# -- classify: every row of security.md 4.4, with both platforms' real wordings -----------------

CANVAS_SUPERSEDED = json.dumps({"errors": {"type": "bad_request", "message": (
    "Provided timestamp of 2025-06-12T18:54:36.736+00:00 before last updated timestamp "
    "of 2025-06-12T18:55:00.000+00:00")}})
MOODLE_409 = json.dumps({"status": 409, "reason": (
    "Refusing score with an earlier timestamp for item 12 and user 7"), "request": {
    "method": "POST", "url": "/mod/lti/services.php/2/lineitems/12/lineitem/scores?type_id=3",
    "accept": "*/*", "contentType": MT_SCORE}})
MOODLE_INCORRECT = json.dumps({"status": 400, "reason": (
    'Incorrect score received{"userId":"3","scoreGiven":3,"scoreMaximum":4,'
    '"timestamp":"2025-06-12T18:54:36.736Z"}'), "request": {"method": "POST"}})


def canvas_error(status_type: str, message: str) -> str:
    return json.dumps({"errors": {"type": status_type, "message": message}})


CLASSIFY_ROWS = [
    # success
    (200, "", {}, None, None),
    (201, "{}", {}, None, None),
    (204, "", {}, None, None),
    # superseded
    (400, CANVAS_SUPERSEDED, {}, "canvas", "superseded"),
    (400, CANVAS_SUPERSEDED, {}, None, "superseded"),
    (409, MOODLE_409, {}, "moodle", "superseded"),
    (409, MOODLE_409, {}, None, "superseded"),
    (409, "conflict", {}, "canvas", "malformed"),  # Canvas never answers 409 to a score
    # rate limits
    (429, "429 Too Many Requests (Rate Limit Exceeded)\n", {"Retry-After": "120"}, "canvas",
     "rate_limit"),
    (429, "", {}, None, "rate_limit"),
    (403, "403 Forbidden (Rate Limit Exceeded)\n", {"X-Rate-Limit-Remaining": "0.0"}, "canvas",
     "rate_limit"),
    (503, "busy", {"Retry-After": "30"}, None, "rate_limit"),
    (503, "busy", {"retry-after": "30"}, None, "rate_limit"),
    # transient
    (503, "maintenance", {}, None, "transient"),
    (500, "Internal Server Error", {}, None, "transient"),
    (502, "<html>Bad Gateway</html>", {}, None, "transient"),
    (504, "", {}, None, "transient"),
    # token
    (401, canvas_error("unauthorized", "Access token expired"), {}, "canvas", "token"),
    (401, canvas_error("unauthorized", "Access token invalid - signature likely incorrect"),
     {}, "canvas", "token"),
    (401, canvas_error("unauthorized", "Insufficient permissions"), {}, "canvas", "token"),
    (401, json.dumps({"status": 401, "reason": "Invalid or expired access token"}), {},
     "moodle", "token"),
    (401, "", {}, None, "token"),
    # config
    (401, canvas_error("unauthorized", "Invalid Developer Key"), {}, "canvas", "config"),
    (401, canvas_error("unauthorized",
                       "Access Token not linked to a Tool associated with this Context"),
     {}, "canvas", "config"),
    (401, canvas_error("unauthorized", "Unknown or inactive Developer Key"), {}, "canvas",
     "config"),
    # line item gone
    (404, canvas_error("not_found", "Context not found"), {}, "canvas", "lineitem_dead"),
    (404, json.dumps({"status": 404, "reason": "Not Found: Course 2 doesn't exist"}), {},
     "moodle", "lineitem_dead"),
    (412, canvas_error("precondition_failed", "Tool does not have permission to view line_item"),
     {}, "canvas", "lineitem_dead"),
    # user not gradable
    (422, canvas_error("unprocessable_entity", "User not found in course or is not a student"),
     {}, "canvas", "user_not_gradable"),
    (400, MOODLE_INCORRECT, {}, "moodle", "user_not_gradable"),
    # closed
    (422, canvas_error("unprocessable_entity", "This course has concluded. AGS requests will "
                       "no longer be accepted for this course."), {}, "canvas", "closed"),
    (422, canvas_error("unprocessable_entity", "The maximum number of allowed attempts has "
                       "been reached for this submission"), {}, "canvas", "closed"),
    (422, "max attempts reached", {}, None, "closed"),
    # malformed
    (422, canvas_error("unprocessable_entity", "ScoreMaximum not supplied when ScoreGiven "
                       "present."), {}, "canvas", "malformed"),
    (400, canvas_error("bad_request", "param is missing or the value is empty: userId"), {},
     "canvas", "malformed"),
    (400, json.dumps({"status": 400, "reason": "No handler found for /mod/lti/services.php"}),
     {}, "moodle", "malformed"),
    (403, json.dumps({"status": 403, "reason": "Not allowed in context"}), {}, "moodle",
     "malformed"),
    (405, "", {}, None, "malformed"),
    (413, "Payload Too Large", {}, None, "malformed"),
    (302, "", {"Location": "https://evil.example/"}, None, "malformed"),
    # anything else
    (101, "", {}, None, "unknown"),
]


@pytest.mark.parametrize(("status", "body", "headers", "hint", "expected"), CLASSIFY_ROWS)
def test_classify(status, body, headers, hint, expected):
    assert classify(status, body, headers, flavor_hint=hint) == expected


def test_retry_after_as_seconds_or_http_date():
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(" 0 ") == 0.0
    now = time.time()
    later = format_datetime(datetime.fromtimestamp(now + 90, timezone.utc), usegmt=True)
    assert 88 <= parse_retry_after(later, now=now) <= 91
    past = format_datetime(datetime.fromtimestamp(now - 90, timezone.utc), usegmt=True)
    assert parse_retry_after(past, now=now) == 0.0
    for bad in (None, "", "soon", "nan", "inf"):
        assert parse_retry_after(bad) is None


def test_service_error_carries_kind_status_and_retry_after():
    err = ServiceError("rate_limit", "slow down", status=429, retry_after=120.0)
    assert (err.kind, err.status, err.retry_after, err.detail) == (
        "rate_limit", 429, 120.0, "slow down")
    assert "rate_limit" in str(err) and "429" in str(err)
    with pytest.raises(ValueError):
        ServiceError("bogus")


# -- Link headers --------------------------------------------------------------------------------

CANVAS_LINK = (
    '<https://school.instructure.com/api/lti/courses/1234/line_items?page=1&per_page=10>; '
    'rel="current",<https://school.instructure.com/api/lti/courses/1234/line_items?page=2&'
    'per_page=10>; rel="next",<https://school.instructure.com/api/lti/courses/1234/line_items?'
    'page=1&per_page=10>; rel="first",<https://school.instructure.com/api/lti/courses/1234/'
    'line_items?page=3&per_page=10>; rel="last"')
MOODLE_BASE = "https://moodle.example.edu/mod/lti/services.php/2/lineitems?type_id=3&limit=2"
MOODLE_LINK = (f"<{MOODLE_BASE}&from=0>; rel=\u201cfirst\u201d, <{MOODLE_BASE}&from=2>; "
               f"rel=\u201ccanonical\u201d, <{MOODLE_BASE}&from=4>; rel=\u201cnext\u201d, "
               f"<{MOODLE_BASE}&from=5>; rel=\u201clast\u201d")


def test_link_header_canvas():
    links = parse_link_header(CANVAS_LINK)
    assert links["next"].endswith("line_items?page=2&per_page=10")
    assert set(links) == {"current", "next", "first", "last"}
    assert links["last"].endswith("page=3&per_page=10")


def test_link_header_moodle_curly_quotes_also_as_received_over_http():
    assert parse_link_header(MOODLE_LINK)["next"] == f"{MOODLE_BASE}&from=4"
    # http.client hands header values over as latin-1: UTF-8 quotes arrive as mojibake.
    mojibake = MOODLE_LINK.encode("utf-8").decode("latin-1")
    assert parse_link_header(mojibake)["next"] == f"{MOODLE_BASE}&from=4"
    assert parse_link_header(mojibake)["canonical"] == f"{MOODLE_BASE}&from=2"


@pytest.mark.parametrize(("header", "expected"), [
    ("<https://a.example/x?p=2>; rel=next", {"next": "https://a.example/x?p=2"}),
    ('<https://a.example/x?p=2>; rel="next"', {"next": "https://a.example/x?p=2"}),
    ("<https://a.example/x?p=2>; rel='next'", {"next": "https://a.example/x?p=2"}),
    ('<https://a.example/x?p=2>;REL="Next"', {"next": "https://a.example/x?p=2"}),
    ('  <https://a.example/x?p=2>  ;  rel = "next"  ,  ', {"next": "https://a.example/x?p=2"}),
    ('<https://a.example/x?ids=1,2,3&p=2>; rel="next", <https://a.example/x?ids=1,2,3>; '
     'rel="prev"', {"next": "https://a.example/x?ids=1,2,3&p=2",
                    "prev": "https://a.example/x?ids=1,2,3"}),
    ('<https://a.example/2>; rel="next last"', {"next": "https://a.example/2",
                                                "last": "https://a.example/2"}),
    ('<https://a.example/2>; title="page, two"; rel="next"', {"next": "https://a.example/2"}),
    ('<https://a.example/2>; rel="next", <https://a.example/3>; rel="next"',
     {"next": "https://a.example/2"}),
    ("<https://a.example/2>", {}),
    ("", {}),
    (None, {}),
    ("garbage; rel=next", {}),
])
def test_link_header_tolerance(header, expected):
    assert parse_link_header(header) == expected


# -- service_url and check_host -----------------------------------------------------------------


@pytest.mark.parametrize(("base", "suffix", "expected"), [
    ("https://m.example/mod/lti/services.php/2/lineitems/7/lineitem?type_id=3", "/scores",
     "https://m.example/mod/lti/services.php/2/lineitems/7/lineitem/scores?type_id=3"),
    ("https://m.example/mod/lti/services.php/2/lineitems/7/lineitem?type_id=3", "/results",
     "https://m.example/mod/lti/services.php/2/lineitems/7/lineitem/results?type_id=3"),
    ("https://c.example/api/lti/courses/1/line_items/5", "/scores",
     "https://c.example/api/lti/courses/1/line_items/5/scores"),
    ("https://c.example/api/lti/courses/1/line_items/5/", "scores",
     "https://c.example/api/lti/courses/1/line_items/5/scores"),
    ("https://c.example/li/5?a=1&b=2#frag", "/scores", "https://c.example/li/5/scores?a=1&b=2"),
])
def test_service_url(base, suffix, expected):
    assert service_url(base, suffix) == expected


ALLOWED = ["https://school.example", "http://127.0.0.1:5100"]


@pytest.mark.parametrize("url", [
    "https://school.example/api/lti/courses/1/line_items",
    "https://SCHOOL.example:443/api/lti/courses/1/line_items?page=2",
    "http://127.0.0.1:5100/mod/lti/services.php/2/lineitems?type_id=3",
])
def test_check_host_allows_the_platforms_origins(url):
    check_host(url, ALLOWED)


@pytest.mark.parametrize("url", [
    "https://evil.example/api/lti/courses/1/line_items",              # other host
    "https://school.example.evil.example/x",                          # suffix trick
    "https://school.example@evil.example/",                           # userinfo trick
    "https://user:pw@school.example/x",                               # any userinfo
    "https://school.example:8443/x",                                  # port change
    "http://school.example/x",                                        # http downgrade
    "https://127.0.0.1:5100/x",                                       # scheme change
    "http://127.0.0.1:5101/x",                                        # other port
    "http://169.254.169.254/latest/meta-data/",                       # metadata service
    "https://school.example\\@evil.example/",                         # backslash confusion
    "https://school.example /x",                                      # whitespace
    "javascript:alert(1)",
    "//school.example/x",
    "",
])
def test_check_host_refuses(url):
    with pytest.raises(ServiceError) as err:
        check_host(url, ALLOWED)
    assert err.value.kind == "forbidden_host"


def test_check_host_needs_an_allowed_origin_of_the_same_scheme():
    with pytest.raises(ServiceError):
        check_host("http://school.example/x", ["https://school.example"])
    check_host("https://school.example/x", "https://school.example/any/path")  # a lone string
    with pytest.raises(ServiceError):
        check_host("https://school.example/x", [])


# -- against the sandbox LMS over HTTP -------------------------------------------------------------


def now_ts() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@pytest.mark.parametrize("flavor", FLAVORS)
def test_token_fetched_once_and_shared_by_processes_through_the_database(
        flavor, served, database_url, tool_sign):
    lms = served(flavor)
    pid = lms.register_with(database_url)
    signed: list[dict] = []

    def sign(claims: dict) -> str:
        signed.append(claims)
        return tool_sign(claims)

    first = make_client(lms, pid, database_url, sign)
    token = first.token([SCOPE_LINEITEM, SCOPE_SCORE])
    assert first.token([SCOPE_SCORE, SCOPE_LINEITEM]) == token  # scope order is irrelevant
    # Another process: its own memory cache and pool, the same database.
    second = make_client(lms, pid, database_url, sign)
    assert second.token([SCOPE_SCORE, SCOPE_LINEITEM, SCOPE_SCORE]) == token
    second.line_items(lms.lineitems_url, allowed_origins=[lms.base_url])
    assert len(lms.token_calls()) == 2  # the shared pair + lineitem alone; never repeated
    second.line_items(lms.lineitems_url, allowed_origins=[lms.base_url])
    make_client(lms, pid, database_url, sign).line_items(lms.lineitems_url,
                                                         allowed_origins=[lms.base_url])
    assert len(lms.token_calls()) == 2

    # Each token request carried a fresh, well-formed client assertion.
    assert len(signed) == 2
    for claims in signed:
        assert claims["iss"] == claims["sub"] == lms.client_id
        assert claims["aud"] == lms.token_url
        assert claims["exp"] - claims["iat"] == 300
    assert signed[0]["jti"] != signed[1]["jti"]
    assert all(c["content_type"] == "application/x-www-form-urlencoded"
               for c in lms.token_calls())

    with session_scope(database_url) as session:
        rows = {r.scopes: r for r in session.scalars(select(ServiceToken))}
    assert set(rows) == {f"{SCOPE_LINEITEM} {SCOPE_SCORE}", SCOPE_LINEITEM}
    row = rows[f"{SCOPE_LINEITEM} {SCOPE_SCORE}"]
    assert row.access_token == token and row.platform_id == pid
    expires = row.expires_at if row.expires_at.tzinfo else row.expires_at.replace(
        tzinfo=timezone.utc)
    assert timedelta(minutes=58) < expires - datetime.now(timezone.utc) <= timedelta(hours=1)


def test_two_registrations_sharing_an_issuer_get_their_own_tokens(served, database_url,
                                                                 tool_sign):
    lms = served("canvas")  # every hosted Canvas school has iss https://canvas.instructure.com
    other_client_id = "10000000000999"
    lms.add_registration(other_client_id, 88)
    school_a = lms.register_with(database_url)
    school_b = lms.register_with(database_url, client_id=other_client_id)
    a = client_for(_platform(school_a, lms, lms.client_id), tool_sign, database_url)
    b = client_for(_platform(school_b, lms, other_client_id), tool_sign, database_url)
    assert a is not b and a.issuer == b.issuer
    token_a, token_b = a.token([SCOPE_LINEITEM]), b.token([SCOPE_LINEITEM])
    assert token_a != token_b
    assert jwt.decode(token_a, options={"verify_signature": False})["sub"] == lms.client_id
    assert jwt.decode(token_b, options={"verify_signature": False})["sub"] == other_client_id
    origins = [lms.base_url]
    a.create_line_item(lms.lineitems_url, {"label": "A", "scoreMaximum": 1},
                       allowed_origins=origins)
    assert [i["label"] for i in a.line_items(lms.lineitems_url, allowed_origins=origins)] == ["A"]
    assert b.line_items(lms.lineitems_url, allowed_origins=origins) == []
    assert len(lms.token_calls()) == 2


def _platform(pid: int, lms, client_id: str):
    class P:  # the attributes client_for reads from a Platform row
        id = pid
        issuer = lms.issuer
        auth_token_url = lms.token_url
        auth_audience = None

    P.client_id = client_id
    return P


@pytest.mark.parametrize("flavor", FLAVORS)
def test_a_401_refreshes_the_token_once_then_succeeds(flavor, served, database_url, tool_sign):
    lms = served(flavor)
    pid = lms.register_with(database_url)
    with session_scope(database_url) as session:  # a token the LMS no longer knows
        session.add(ServiceToken(platform_id=pid, scopes=SCOPE_LINEITEM,
                                 access_token="stale-token",
                                 expires_at=datetime.now(timezone.utc) + timedelta(hours=1)))
    client = make_client(lms, pid, database_url, tool_sign)
    assert client.line_items(lms.lineitems_url, allowed_origins=[lms.base_url]) == []
    gets = lms.calls("GET")
    assert [g["authorization"] == "Bearer stale-token" for g in gets] == [True, False]
    assert len(lms.token_calls()) == 1
    with session_scope(database_url) as session:
        fresh = session.scalars(select(ServiceToken)).one().access_token
    assert fresh != "stale-token" and gets[1]["authorization"] == f"Bearer {fresh}"


@pytest.mark.parametrize("flavor", FLAVORS)
def test_score_round_trip(flavor, served, database_url, tool_sign):
    lms = served(flavor)
    client = make_client(lms, lms.register_with(database_url), database_url, tool_sign)
    origins = [lms.base_url]
    members = client.members(lms.nrps_url, allowed_origins=origins)
    student = next(m for m in members if any(r.endswith("Learner") for r in m["roles"]))
    teacher = next(m for m in members if any(r.endswith("Instructor") for r in m["roles"]))

    item = client.create_line_item(
        lms.lineitems_url, {"label": "Fractions mastery", "scoreMaximum": 4,
                            "resourceId": "pl_1", "tag": "mastery"}, allowed_origins=origins)
    if flavor == "moodle":
        assert item["id"].endswith("/lineitem?type_id=3")
    score = {"userId": student["user_id"], "scoreGiven": 3, "scoreMaximum": 4,
             "comment": "Mastered 3 of 4 skills", "timestamp": now_ts(),
             "activityProgress": "Completed", "gradingProgress": "FullyGraded"}
    resp = client.post_score(item["id"], score, allowed_origins=origins)
    assert resp.status_code == 200

    (posted,) = lms.calls("POST", "/scores")
    assert posted["content_type"] == MT_SCORE
    assert posted["user_agent"] == "Pathwise-LTI/1.0 (+grade passback)"
    assert posted["query"] == ("type_id=3" if flavor == "moodle" else "")
    (created,) = lms.calls("POST", "/lineitems" if flavor == "moodle" else "/line_items")
    assert created["content_type"] == MT_LINEITEM
    assert all(c["accept"] == MT_MEMBERSHIPS for c in lms.calls("GET", "/memberships")
               + lms.calls("GET", "/names_and_roles"))

    results = client.request("GET", service_url(item["id"], "/results"),
                             scopes=[SCOPE_RESULT_READONLY], allowed_origins=origins,
                             accept=MT_RESULT_CONTAINER).json()
    (result,) = results
    assert result["userId"] == student["user_id"]
    assert result["resultScore"] == 3.0
    assert result["comment"] == "Mastered 3 of 4 skills"

    # The identical resend after a lost answer: Canvas accepts the equal timestamp,
    # Moodle refuses it with 409, which means "already there".
    if flavor == "canvas":
        assert client.post_score(item["id"], score, allowed_origins=origins).status_code == 200
    else:
        with pytest.raises(ServiceError) as err:
            client.post_score(item["id"], score, allowed_origins=origins)
        assert (err.value.kind, err.value.status) == ("superseded", 409)

    with pytest.raises(ServiceError) as err:
        client.post_score(item["id"], {**score, "userId": teacher["user_id"]},
                          allowed_origins=origins)
    assert err.value.kind == "user_not_gradable"
    assert err.value.status == (422 if flavor == "canvas" else 400)
    assert "{" not in err.value.detail  # Moodle's echo of our request body is cut off

    with pytest.raises(ServiceError) as err:
        client.post_score(lms.lineitem_url(99999), score, allowed_origins=origins)
    assert (err.value.kind, err.value.status) == ("lineitem_dead", 404)


@pytest.mark.parametrize("flavor", FLAVORS)
def test_line_items_follow_every_page_and_keep_type_id(flavor, served, database_url,
                                                       tool_sign):
    lms = served(flavor)
    client = make_client(lms, lms.register_with(database_url), database_url, tool_sign)
    origins = [lms.base_url]
    for n in range(5):
        client.create_line_item(lms.lineitems_url,
                                {"label": f"Skill {n}", "scoreMaximum": 4, "tag": "unit-3",
                                 "resourceId": f"skill_{n}"}, allowed_origins=origins)
    client.create_line_item(lms.lineitems_url, {"label": "Other", "scoreMaximum": 1},
                            allowed_origins=origins)
    items = client.line_items(lms.lineitems_url, allowed_origins=origins, tag="unit-3", limit=2,
                              scopes=[SCOPE_LINEITEM_READONLY, SCOPE_SCORE])
    assert [i["label"] for i in items] == [f"Skill {n}" for n in range(5)]
    gets = lms.calls("GET")
    assert len(gets) == 3
    assert all(g["accept"] == MT_LINEITEM_CONTAINER for g in gets)
    if flavor == "moodle":
        assert all("type_id=3" in g["query"] for g in gets)
    one = client.line_items(lms.lineitems_url, allowed_origins=origins, resource_id="skill_3")
    assert [i["label"] for i in one] == ["Skill 3"]
    # Only the read-only scope was granted: the read used a lineitem.readonly token.
    with session_scope(database_url) as session:
        scopes = set(session.scalars(select(ServiceToken.scopes)))
    assert SCOPE_LINEITEM_READONLY in scopes
    with pytest.raises(ServiceError) as err:
        client.line_items(lms.lineitems_url, allowed_origins=origins, scopes=[SCOPE_SCORE])
    assert err.value.kind == "config"


@pytest.mark.parametrize("flavor", FLAVORS)
def test_members_follow_every_page(flavor, served, http_db, tool_sign):
    lms = served(flavor)
    client = make_client(lms, lms.register_with(http_db, f"c-{uuid.uuid4().hex}"), http_db,
                         tool_sign, client_id=lms.client_id)
    members = client.members(lms.nrps_url, allowed_origins=[lms.base_url], limit=3)
    assert len(members) == 7 and len({m["user_id"] for m in members}) == 7
    assert len(lms.calls("GET")) == 3
    assert client.members(lms.nrps_url, allowed_origins=[lms.base_url]) == members


@pytest.mark.parametrize("flavor", FLAVORS)
def test_a_next_link_to_another_host_is_refused_and_gets_no_token(
        flavor, served, local_server, http_db, tool_sign):
    lms = served(flavor)
    evil = local_server(lambda request: Response("[]", mimetype=MT_LINEITEM_CONTAINER))
    client = make_client(lms, lms.register_with(http_db, f"c-{uuid.uuid4().hex}"), http_db,
                         tool_sign, client_id=lms.client_id)
    origins = [lms.base_url]
    for n in range(3):
        client.create_line_item(lms.lineitems_url, {"label": f"S{n}", "scoreMaximum": 1},
                                allowed_origins=origins)
    lms.tamper = lambda headers: [(k, v.replace(lms.base_url, evil.url) if k == "Link" else v)
                                  for k, v in headers]
    with pytest.raises(ServiceError) as err:
        client.line_items(lms.lineitems_url, allowed_origins=origins, limit=2)
    assert err.value.kind == "forbidden_host" and "not an address this LMS uses" in str(err.value)
    # Even an origin the platform may use is refused when it is not the first page's.
    with pytest.raises(ServiceError) as err:
        client.line_items(lms.lineitems_url, allowed_origins=[*origins, evil.url], limit=2)
    assert err.value.kind == "forbidden_host" and "next page" in err.value.detail
    assert len(lms.calls("GET")) == 2  # each time the first page only
    assert evil.requests == []


# -- faults against tiny local servers ---------------------------------------------------------


def fake_lms(local_server, route):
    """A local LMS: /token issues tokens, everything else goes to `route`."""
    def handler(request: Request) -> Response:
        if request.path == "/token":
            return srv.issue_token()
        return route(request)

    srv = local_server(handler)
    return srv


def local_client(srv, http_db, tool_sign, **kwargs):
    pid = register(http_db, issuer="https://lms.example", client_id=f"c-{uuid.uuid4().hex}",
                   token_url=f"{srv.url}/token")
    return make_client(f"{srv.url}/token", pid, http_db, tool_sign, **kwargs)


def test_a_redirect_is_never_followed(local_server, http_db, tool_sign):
    evil = local_server(lambda request: Response("{}"))
    srv = fake_lms(local_server, lambda request: Response(
        "", status=302, headers={"Location": f"{evil.url}/steal"}))
    client = local_client(srv, http_db, tool_sign)
    with pytest.raises(ServiceError) as err:
        client.post_score(f"{srv.url}/li/1", {"userId": "1"}, allowed_origins=[srv.url])
    assert (err.value.kind, err.value.status) == ("malformed", 302)
    assert "redirect" in err.value.detail
    assert evil.requests == []


def test_connection_refused_is_transient(local_server, http_db, tool_sign):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    srv = fake_lms(local_server, lambda request: Response("[]"))
    client = local_client(srv, http_db, tool_sign)
    with pytest.raises(ServiceError) as err:
        client.line_items(f"{closed}/li", allowed_origins=[closed])
    assert (err.value.kind, err.value.status) == ("transient", None)
    # The token endpoint down is transient too.
    down = make_client(f"{closed}/token", client.platform_id, http_db, tool_sign,
                       client_id="x")
    with pytest.raises(ServiceError) as err:
        down.token([SCOPE_SCORE])
    assert err.value.kind == "transient"


def test_a_slow_answer_past_the_read_timeout_is_transient(local_server, http_db, tool_sign):
    def slow(request: Request) -> Response:
        time.sleep(1.0)
        return Response("[]")

    srv = fake_lms(local_server, slow)
    client = local_client(srv, http_db, tool_sign, timeout=(1.0, 0.3))
    client.token([SCOPE_LINEITEM])
    started = time.monotonic()
    with pytest.raises(ServiceError) as err:
        client.line_items(f"{srv.url}/li", allowed_origins=[srv.url])
    assert err.value.kind == "transient" and "did not answer" in err.value.detail
    assert time.monotonic() - started < 0.9


def test_at_most_concurrency_requests_in_flight(local_server, http_db, tool_sign):
    def slow(request: Request) -> Response:
        time.sleep(0.2)
        return Response("{}")

    srv = fake_lms(local_server, slow)
    client = local_client(srv, http_db, tool_sign, concurrency=2)
    errors: list[BaseException] = []

    def call() -> None:
        try:
            client.request("GET", f"{srv.url}/slow", scopes=[SCOPE_NRPS],
                           allowed_origins=[srv.url])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert errors == []
    assert len([r for r in srv.requests if r["path"] == "/slow"]) == 6
    assert srv.max_in_flight == 2
    assert srv.tokens_issued == 1  # six threads, one token request


def test_a_second_401_is_a_token_error_and_a_key_problem_is_config(local_server, http_db,
                                                                    tool_sign):
    answers = {"/expired": (401, {"errors": {"message": "Access token expired"}}),
               "/devkey": (401, {"errors": {"message": "Invalid Developer Key"}})}
    srv = fake_lms(local_server, lambda request: Response(
        json.dumps(answers[request.path][1]), status=answers[request.path][0]))
    client = local_client(srv, http_db, tool_sign)
    with pytest.raises(ServiceError) as err:
        client.request("GET", f"{srv.url}/expired", scopes=[SCOPE_NRPS],
                       allowed_origins=[srv.url])
    assert (err.value.kind, err.value.status) == ("token", 401)
    assert srv.tokens_issued == 2 and len([r for r in srv.requests
                                           if r["path"] == "/expired"]) == 2
    with pytest.raises(ServiceError) as err:
        client.request("GET", f"{srv.url}/devkey", scopes=[SCOPE_NRPS],
                       allowed_origins=[srv.url])
    assert err.value.kind == "config" and "Invalid Developer Key" in err.value.detail
    assert srv.tokens_issued == 2  # no refresh for a configuration problem


def test_rate_limits_carry_retry_after(local_server, http_db, tool_sign):
    later = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=60), usegmt=True)
    answers = {
        "/429": Response("429 Too Many Requests (Rate Limit Exceeded)\n", status=429,
                         headers={"Retry-After": "120", "X-Rate-Limit-Remaining": "0.0"}),
        "/403": Response("403 Forbidden (Rate Limit Exceeded)\n", status=403),
        "/503": Response("", status=503, headers={"Retry-After": later}),
    }
    srv = fake_lms(local_server, lambda request: answers[request.path])
    client = local_client(srv, http_db, tool_sign)
    got = {}
    for path in answers:
        with pytest.raises(ServiceError) as err:
            client.request("GET", f"{srv.url}{path}", scopes=[SCOPE_NRPS],
                           allowed_origins=[srv.url])
        got[path] = err.value
    assert {p: e.kind for p, e in got.items()} == dict.fromkeys(answers, "rate_limit")
    assert got["/429"].retry_after == 120.0 and got["/429"].rate_limit_remaining == 0.0
    assert got["/403"].retry_after is None
    assert 55 <= got["/503"].retry_after <= 61


@pytest.mark.parametrize(("status", "body", "kind"), [
    (400, {"error": "invalid_scope", "error_description": "Scopes not allowed"}, "config"),
    (400, {"error": "invalid_client", "error_description": "the 'aud' is invalid"}, "config"),
    (401, {"error": "invalid_client"}, "config"),
    (500, "oops", "transient"),
    (429, "slow down", "rate_limit"),
    (200, {"access_token": "abc", "token_type": "mac", "expires_in": 3600}, "token"),
    (200, {"access_token": "", "token_type": "Bearer"}, "token"),
    (200, {"access_token": "a b", "token_type": "Bearer"}, "token"),
    (200, {"access_token": "abc", "token_type": "Bearer", "expires_in": "soon"}, "token"),
    (200, "not json", "token"),
])
def test_token_endpoint_answers(local_server, http_db, tool_sign, status, body, kind):
    srv = local_server(lambda request: Response(
        body if isinstance(body, str) else json.dumps(body), status=status,
        mimetype="application/json"))
    client = make_client(f"{srv.url}/token", register(
        http_db, issuer="https://lms.example", client_id=f"c-{uuid.uuid4().hex}",
        token_url=f"{srv.url}/token"), http_db, tool_sign)
    with pytest.raises(ServiceError) as err:
        client.token([SCOPE_SCORE])
    assert err.value.kind == kind
    assert len(srv.requests) == 1  # no retry loop


def test_token_answer_without_expires_in_defaults_to_an_hour(local_server, http_db, tool_sign):
    srv = local_server(lambda request: Response(json.dumps(
        {"access_token": "abc123", "token_type": "bearer"}), mimetype="application/json"))
    client = local_client(srv, http_db, tool_sign)
    assert client.token([SCOPE_SCORE]) == "abc123"
    with session_scope(http_db) as session:
        row = session.scalars(select(ServiceToken).where(
            ServiceToken.platform_id == client.platform_id)).one()
        expires = row.expires_at.replace(tzinfo=timezone.utc) if row.expires_at.tzinfo is None \
            else row.expires_at
    assert timedelta(minutes=59) < expires - datetime.now(timezone.utc) <= timedelta(hours=1)


def test_the_token_never_reaches_logs_or_details(local_server, http_db, tool_sign, caplog):
    srv = fake_lms(local_server, lambda request: Response(
        json.dumps({"errors": {"message": f"bad request {request.headers['Authorization']}"}}),
        status=400))
    client = local_client(srv, http_db, tool_sign)
    caplog.set_level(logging.DEBUG)
    token = client.token([SCOPE_SCORE])
    with pytest.raises(ServiceError) as err:
        client.post_score(f"{srv.url}/li/1", {"userId": "1"}, allowed_origins=[srv.url])
    assert err.value.kind == "malformed"
    for text in (err.value.detail, str(err.value), repr(err.value), caplog.text):
        assert token not in text


def test_responses_are_size_capped(local_server, http_db, tool_sign, monkeypatch):
    monkeypatch.setattr(pc, "MAX_BODY", 1000)
    srv = fake_lms(local_server, lambda request: Response("[" + "1," * 2000 + "1]"))
    client = local_client(srv, http_db, tool_sign)
    client.token([SCOPE_LINEITEM])
    with pytest.raises(ServiceError) as err:
        client.line_items(f"{srv.url}/li", allowed_origins=[srv.url])
    assert err.value.kind == "unknown" and "too large" in err.value.detail


def test_client_for_shares_one_client_per_platform_and_database(http_db, tool_sign):
    class P:
        id = 7001
        issuer = "https://canvas.instructure.com"
        client_id = "10000000000001"
        auth_token_url = "https://sso.canvaslms.com/login/oauth2/token"
        auth_audience = None

    first = client_for(P, tool_sign, http_db)
    assert client_for(P, tool_sign, http_db) is first
    assert first.flavor == "canvas" and first.concurrency == 4

    def rotated(claims: dict) -> str:
        return tool_sign(claims)

    assert client_for(P, rotated, http_db) is first and first.sign is rotated

    class Q(P):
        id = 7002

    assert client_for(Q, tool_sign, http_db) is not first
    P.auth_token_url = "https://school.instructure.com/login/oauth2/token"
    assert client_for(P, tool_sign, http_db) is not first  # a changed registration

    seen: list[pc.PlatformClient] = []
    threads = [threading.Thread(target=lambda: seen.append(client_for(Q, tool_sign, http_db)))
               for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(c) for c in seen}) == 1
