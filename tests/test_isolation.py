"""Tenant isolation: a person of one platform, deployment or course never reads
or changes another's data, whatever URL, id or form field they send.

One world per database backend, built once through the pages (module scope,
so the ~200 refused requests below stay fast):

  A  Canvas, deployment 1, context "ctx-shared"  teacher t-1, students s-1, s-2
  B  Moodle,  deployment 3, context "ctx-shared"  teacher t-1, students s-1, s-2
  C  Canvas, deployment 1, context "ctx-second"  teacher t-1, students s-1, s-3
  D  Canvas, deployment 2, context "ctx-shared"  teacher t-1, student s-1

The same `sub` on Canvas is one person in A, C and D (user key = platform +
sub) and a different person on Moodle. Every course holds standards,
playlists with every item kind (a quick check, a checkpoint, a choice board),
and A and B also evidence, an override, goals with comments, a learner
profile, reflection requests, a reassessment request, a reteach assignment,
progress, a target, a quick-check attempt and a placement (bound to the LMS
link, no LMS call needed).

Every route that takes an id in its URL is in ROUTES (a test fails when
app.url_map grows an int route the table does not cover). Each row is tried
as: the other platform's same-sub person (cross_platform), the other
deployment's (cross_deployment), the same person in another course of the same
deployment (cross_course), course A's session on B's ids (reverse_platform),
A's student on teacher pages (student) and, for student-owned rows, another
student of A (other_student). Each refusal must be 403/404 (404 across
tenants, security.md §3.8; never 200, never 500), must not show the victim's
marker text, and must leave every table's row count and content hash
unchanged. FORM_ATTACKS does the same for ids carried in forms and query
strings (hidden fields, copy/assign targets, mixed ids)."""

from __future__ import annotations

import hashlib
import io
import time
import uuid
from dataclasses import dataclass, field
from urllib.parse import parse_qs

import pytest
import sqlalchemy as sa
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from werkzeug.datastructures import MultiDict
from werkzeug.routing import IntegerConverter

from lti_tool import create_app
from lti_tool.db import get_engine, session_scope
from lti_tool.launch.registrations import add_platform
from lti_tool.launch.tool_session import SALT
from lti_tool.models import Base
from tests.support.databases import empty_database, wipe
from tests.support.flows import login, post_launch, session_token
from tests.support.platform import LIS, LTI, TestPlatform, canvas_flavor, moodle_flavor

TOOL_URL = "https://tool.test"
SHARED_CONTEXT = "ctx-shared"
DEPLOYMENT_2 = "dep-2"
MARKERS = {"A": "ZQAmark", "B": "ZQBmark", "C": "ZQCmark", "D": "ZQDmark"}
QUESTIONS = ("Q: What is 3/4 of 12?\n= 9\nWhy: 12 / 4 x 3\n"
             "Q: Which is larger?\n- 1/2\n* 3/4\n- 2/3\n")
# Operational counters, not anybody's data: a refused request may count
# toward a rate limit or a metric.
NOT_TENANT_DATA = {"rate_limit_counter", "metric_series"}
TABLES = [t.name for t in Base.metadata.sorted_tables if t.name not in NOT_TENANT_DATA]
DL_SETTINGS = "https://purl.imsglobal.org/spec/lti-dl/claim/deep_linking_settings"


# -- the world -------------------------------------------------------------------------
@dataclass
class CourseWorld:
    key: str
    pk: int
    marker: str
    platform: TestPlatform
    tokens: dict[str, str] = field(default_factory=dict)
    ids: dict[str, int] = field(default_factory=dict)


@dataclass
class World:
    app: object
    url: str
    client: object          # no cookies: only the token in the request counts
    courses: dict[str, CourseWorld]
    secret: str
    last: dict | None = None  # the snapshot after the last refused request

    def before(self) -> dict:
        """The tables now: refusals change nothing, so the snapshot taken after
        the previous refusal still holds (tests that write reset it)."""
        if self.last is None:
            self.last = snapshot(self.url)
        return self.last

    def ns(self) -> dict[str, int]:
        """Every id of every course as {course}_{name}: A_playlist, B_s1, C_course..."""
        out = {}
        for key, course in self.courses.items():
            out[f"{key}_course"] = course.pk
            out.update({f"{key}_{name}": value for name, value in course.ids.items()})
        return out


def _rows(url: str, sql: str, **params) -> list:
    with get_engine(url).connect() as conn:
        return conn.execute(sa.text(sql), params).all()


def _one(url: str, sql: str, **params):
    rows = _rows(url, sql, **params)
    assert len(rows) == 1, (sql, params, rows)
    return rows[0][0]


def snapshot(url: str) -> dict[str, tuple[int, str]]:
    """(row count, hash of every row) for every table of the tool."""
    engine = get_engine(url)
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            sql = " UNION ALL ".join(
                f"SELECT '{t}', COUNT(*), md5(COALESCE(string_agg(x::text, '|' "
                f"ORDER BY x::text), '')) FROM \"{t}\" x" for t in TABLES)
            return {name: (count, digest) for name, count, digest in conn.execute(sa.text(sql))}
        out = {}
        for name, count, text in conn.exec_driver_sql(_SQLITE_SNAPSHOT):
            out[name] = (count, hashlib.sha256((text or "").encode()).hexdigest())
        return out


def _sqlite_snapshot_sql() -> str:
    """One statement: each table's rows, every column quoted, in key order."""
    parts = []
    for name in TABLES:
        table = Base.metadata.tables[name]
        row = " || ',' || ".join(f'quote("{c.name}")' for c in table.columns)
        order = ", ".join(f'"{c.name}"' for c in table.primary_key.columns) or "rowid"
        parts.append(f"SELECT '{name}', (SELECT COUNT(*) FROM \"{name}\"), "
                     f"(SELECT group_concat(r, '|') FROM (SELECT {row} AS r FROM \"{name}\" "
                     f"ORDER BY {order}))")
    return " UNION ALL ".join(parts)


_SQLITE_SNAPSHOT = _sqlite_snapshot_sql()


def changed_tables(before: dict, after: dict) -> dict:
    return {t: (before.get(t), after.get(t)) for t in set(before) | set(after)
            if before.get(t) != after.get(t)}


def _launch(client, platform: TestPlatform, *, role: str, sub: str, name: str,
            context_id: str, course_title: str, deployment_id: str | None = None,
            link_id: str | None = None, deep_linking: bool = False,
            full_name: str | None = None, **claims) -> str:
    """A login and a signed launch; `name` gives the given and family names,
    `full_name` (default `name`) the displayed one. Returns the session token."""
    dep = deployment_id or platform.flavor.deployment_id
    started = login(client, platform, lti_deployment_id=dep)
    given, family = name.split()
    overrides = {
        "sub": sub, "name": full_name or name, "given_name": given, "family_name": family,
        LTI + "deployment_id": dep,
        LTI + "context": {"id": context_id, "label": course_title[:20], "title": course_title,
                          "type": [LIS + "course#CourseOffering"]},
        LTI + "resource_link": {"id": link_id or str(uuid.uuid4()), "title": "Playlist"},
        **claims,
    }
    body = platform.claims(started.nonce, role=role, **overrides)
    if deep_linking:
        body[LTI + "message_type"] = "LtiDeepLinkingRequest"
        body[DL_SETTINGS] = {"deep_link_return_url": "https://school.instructure.com/dl",
                             "accept_types": ["ltiResourceLink"],
                             "accept_presentation_document_targets": ["iframe"],
                             "accept_multiple": True}
        body.pop(LTI + "resource_link")
    return session_token(post_launch(client, platform.sign(body), started.state))


class Builder:
    """Fills one course through its pages as its teacher and students."""

    def __init__(self, client, url: str, course: CourseWorld):
        self.client, self.url, self.c = client, url, course

    def post(self, path: str, who: str = "teacher", expect: int | None = 303, **data):
        response = self.client.post(path, data={"t": self.c.tokens[who], **data})
        if expect is not None:
            assert response.status_code == expect, (path, who, response.status_code,
                                                    response.get_data(as_text=True)[:800])
        return response

    def new_id(self, table: str, action, where: str = "", **params) -> int:
        sql = f"SELECT id FROM {table} {where}"
        before = {r[0] for r in _rows(self.url, sql, **params)}
        action()
        (new,) = {r[0] for r in _rows(self.url, sql, **params)} - before
        return new

    def standards(self) -> None:
        m = self.c.marker
        csv = ("code,title,description,group\n"
               f"R.1,Read closely {m},Cite evidence {m},Reading\n"
               f"R.2,Main idea {m},Find the central idea,Reading\n"
               f"W.1,Argue {m},Write an argument,Writing\n")
        r = self.client.post("/course/standards", data={
            "t": self.c.tokens["teacher"], "file": (io.BytesIO(csv.encode()), "s.csv")},
            content_type="multipart/form-data")
        assert r.status_code == 200, r.get_data(as_text=True)[:500]
        for code, sid in _rows(self.url, "SELECT code, id FROM standard WHERE course_id = :c",
                               c=self.c.pk):
            self.c.ids[{"R.1": "r1", "R.2": "r2", "W.1": "w1"}[code]] = sid

    def item(self, pid: int, **fields) -> int:
        fields.setdefault("tag", "must_do")
        return self.new_id("playlist_item", lambda: self.post(
            f"/course/playlists/{pid}/items/new", **fields), "WHERE playlist_id = :p", p=pid)

    def playlists(self) -> None:
        m, ids = self.c.marker, self.c.ids
        ids["playlist"] = pid = self.new_id(
            "playlist", lambda: self.post("/course/playlists", title=f"Fractions {m}",
                                          description=f"Unit {m}",
                                          standards=[ids["r1"], ids["r2"]]),
            "WHERE course_id = :c", c=self.c.pk)
        ids["resource"] = self.item(pid, kind="resource", title=f"Strips {m}",
                                    url="https://example.org/strips", standards=[ids["r1"]])
        ids["reading"] = self.item(pid, kind="reading", title=f"Reading {m}",
                                   body=f"<p>Read {m}</p>", standards=[ids["r1"]])
        ids["practice"] = self.item(pid, kind="practice", title=f"Practice {m}",
                                    standards=[ids["r1"]])
        ids["quick"] = self.item(pid, kind="quick_check", title=f"Quick {m}",
                                 standards=[ids["r1"]], questions=QUESTIONS)
        ids["checkpoint"] = self.item(pid, kind="checkpoint", title=f"Checkpoint {m}",
                                      standards=[ids["r2"]], body=f"Explain {m}")
        ids["board"] = self.item(pid, kind="choice_board", title=f"Board {m}",
                                 tag="challenge", min_choices="1")
        ids["option"] = self.item(pid, kind="practice", title=f"Poster {m}",
                                  board_id=str(ids["board"]), standards=[ids["w1"]])
        self.post(f"/course/playlists/{pid}/publish", published="1")
        # A draft reteach playlist, only for the students it is assigned to.
        ids["reteach"] = rid = self.new_id(
            "playlist", lambda: self.post("/course/playlists", title=f"Reteach {m}",
                                          standards=[ids["r2"]]),
            "WHERE course_id = :c", c=self.c.pk)
        ids["reteach_quick"] = self.item(rid, kind="quick_check", title=f"Again {m}",
                                         standards=[ids["r2"]], questions=QUESTIONS)

    def student_data(self) -> None:
        m, ids = self.c.marker, self.c.ids
        s1, s2 = ids["s1"], ids["s2"]
        pid = ids["playlist"]
        ids["evidence_s1"] = self.new_id(
            "evidence", lambda: self.post(
                f"/course/standards/{ids['r1']}/evidence", expect=200, source="checkpoint",
                assessed_at="2026-09-01", **{f"score-{s1}": "2"}),
            "WHERE course_id = :c", c=self.c.pk)
        ids["evidence_s2"] = self.new_id(
            "evidence", lambda: self.post(
                f"/course/standards/{ids['r1']}/evidence", expect=200, source="checkpoint",
                assessed_at="2026-09-01", **{f"score-{s2}": "3"}),
            "WHERE course_id = :c", c=self.c.pk)
        self.post(f"/course/students/{s1}/standards/{ids['r2']}", action="override",
                  value="3", note=f"Observed {m}")
        ids["assignment"] = self.new_id(
            "assignment", lambda: self.post(
                f"/course/standards/{ids['r2']}/assign", kind="playlist",
                playlist_id=str(ids["reteach"]), students=[str(s2)], note=f"Retry {m}"),
            "WHERE course_id = :c", c=self.c.pk)
        ids["goal_s1"] = self.new_id(
            "goal", lambda: self.post("/my/goals", "s1", text=f"Goal one {m}",
                                      standard_id=str(ids["r1"])),
            "WHERE course_id = :c", c=self.c.pk)
        ids["goal_s2"] = self.new_id(
            "goal", lambda: self.post("/my/goals", "s2", text=f"Goal two {m}"),
            "WHERE course_id = :c", c=self.c.pk)
        self.post("/course/goals", goal_id=str(ids["goal_s1"]), comment=f"Nice {m}")
        self.post("/my/profile", "s1", strengths=f"Strength {m}", needs=f"Needs {m}")
        self.post("/course/reflections", student_ids=[str(s1), str(s2)], prompt=f"Why {m}?")
        for who in ("s1", "s2"):
            ids[f"reflection_{who}"] = _one(
                self.url, "SELECT id FROM reflection WHERE course_id = :c AND student_id = :s",
                c=self.c.pk, s=ids[who])
        ids["reassessment"] = self.new_id(
            "reassessment_request", lambda: self.post(
                f"/my/mastery/{ids['r1']}", "s1", expect=200,
                reflection=f"I practised a lot {m}"),
            "WHERE course_id = :c", c=self.c.pk)
        self.post(f"/my/playlists/{pid}/items/{ids['quick']}/check", "s1", expect=200,
                  **{"q-0": "9", "q-1": "1"})
        self.post(f"/my/playlists/{pid}/items/{ids['resource']}/progress", "s1",
                  status="started")
        self.post(f"/my/playlists/{pid}/target", "s1", target_date="2099-06-01")
        # The activity the teacher launched from shows the playlist (no LMS call).
        ids["placement"] = self.new_id(
            "placement", lambda: self.post("/course/link/bind", playlist_id=str(pid)),
            "WHERE course_id = :c", c=self.c.pk)


def _course_pk(url: str, client_id: str, deployment_id: str, context_id: str) -> int:
    return _one(url, "SELECT c.id FROM course c JOIN deployment d ON d.id = c.deployment_pk "
                "JOIN platform p ON p.id = d.platform_id WHERE p.client_id = :cl "
                "AND d.deployment_id = :dep AND c.context_id = :ctx",
                cl=client_id, dep=deployment_id, ctx=context_id)


def _build_world(url: str, keys_dir, jwks_server, instance) -> World:
    secret = "isolation-" + uuid.uuid4().hex
    app = create_app({"instance_path": instance, "database_url": url, "keys_dir": keys_dir,
                      "base_url": TOOL_URL, "secret_key": secret,
                      "jwks_refetch_interval": 0})
    jwks_server.mode = "ok"
    jwks_server.jwks["keys"].clear()
    canvas = TestPlatform(canvas_flavor(), jwks_server, TOOL_URL)
    moodle = TestPlatform(moodle_flavor(), jwks_server, TOOL_URL)
    with session_scope(url) as session:
        add_platform(session, **{**canvas.registration(),
                                 "deployment_ids": [canvas.flavor.deployment_id,
                                                    DEPLOYMENT_2]})
        add_platform(session, **moodle.registration())
    launcher = app.test_client()
    layout = {  # key: (platform, deployment, context, students)
        "A": (canvas, canvas.flavor.deployment_id, SHARED_CONTEXT, ("s-1", "s-2")),
        "B": (moodle, moodle.flavor.deployment_id, SHARED_CONTEXT, ("s-1", "s-2")),
        "C": (canvas, canvas.flavor.deployment_id, "ctx-second", ("s-1", "s-3")),
        "D": (canvas, DEPLOYMENT_2, SHARED_CONTEXT, ("s-1",)),
    }
    names = {"t-1": "Grace Hopper", "s-1": "Ada Lovelace", "s-2": "Alan Turing",
             "s-3": "Mary Jackson"}
    courses: dict[str, CourseWorld] = {}
    for key, (platform, dep, ctx, students) in layout.items():
        marker = MARKERS[key]
        common = dict(context_id=ctx, course_title=f"Course {marker}", deployment_id=dep,
                      link_id=f"link-{key}")
        tokens = {"teacher": _launch(launcher, platform, role="teacher", sub="t-1",
                                     name=names["t-1"], **common)}
        for sub in students:
            tokens["s" + sub[2:]] = _launch(launcher, platform, role="student", sub=sub,
                                            name=names[sub], **common)
        course = CourseWorld(key, _course_pk(url, platform.flavor.client_id, dep, ctx),
                             marker, platform, tokens)
        course.ids["platform"] = _one(url, "SELECT id FROM platform WHERE client_id = :c",
                                      c=platform.flavor.client_id)
        for sub, uid in _rows(url, "SELECT u.sub, u.id FROM lti_user u JOIN enrollment e "
                              "ON e.user_id = u.id WHERE e.course_id = :c", c=course.pk):
            course.ids["teacher" if sub == "t-1" else "s" + sub[2:]] = uid
        courses[key] = course
    a = courses["A"]
    a.tokens["teacher_unbound"] = _launch(
        launcher, canvas, role="teacher", sub="t-1", name=names["t-1"],
        context_id=SHARED_CONTEXT, course_title=f"Course {a.marker}",
        link_id="link-A-unbound")
    a.tokens["dl"] = _launch(launcher, canvas, role="teacher", sub="t-1", name=names["t-1"],
                             context_id=SHARED_CONTEXT, course_title=f"Course {a.marker}",
                             deep_linking=True)
    for key, course in courses.items():
        builder = Builder(launcher, url, course)
        builder.standards()
        builder.playlists()
        if key in ("A", "B"):
            builder.student_data()
    return World(app, url, app.test_client(use_cookies=False), courses, secret)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def world(request, tool_keys_dir, jwks_server, tmp_path_factory):
    url = empty_database(request, request.param)
    built = _build_world(url, tool_keys_dir, jwks_server,
                         tmp_path_factory.mktemp("isolation-instance"))
    yield built
    metrics = built.app.extensions.get("pathwise_metrics")
    if metrics is not None:  # before the database goes, not at interpreter exit
        metrics.flush_quietly()
    wipe(url)


# -- the route table -------------------------------------------------------------------
CROSS = ("cross_platform", "cross_deployment", "cross_course", "reverse_platform")
TEACHER_KINDS = (*CROSS, "student")
STUDENT_KINDS = CROSS


@dataclass(frozen=True)
class Route:
    method: str
    rule: str                       # exactly as in app.url_map
    args: tuple = ()                # (url argument, id name of the victim course)
    form: tuple = ()                # (field, value template), templates use victim ids
    query: tuple = ()
    who: str = "teacher"            # whose page: teacher | student
    kinds: tuple = TEACHER_KINDS
    attacker: str | None = None     # other_student: which student of A attacks
    label: str = ""
    allowed: tuple = (403, 404)
    bearer: bool = False            # send the session token as Authorization: Bearer

    def name(self) -> str:
        return f"{self.method} {self.rule}{' ' + self.label if self.label else ''}"


PL = "/course/playlists/<int:playlist_id>"
ITEM = PL + "/items/<int:item_id>"
MY = "/my/playlists/<int:playlist_id>"
MYITEM = MY + "/items/<int:item_id>"
P = ("playlist_id", "playlist")
STD = ("standard_id", "r1")


def T(method, rule, args=(), form=(), query=(), label=""):  # noqa: N802 - a table row
    return Route(method, rule, tuple(args), tuple(form), tuple(query), label=label)


def ADMIN(method, rule, args=(), form=(), label="", bearer=False):  # noqa: N802
    """The administrator's pages: no LTI session of any role opens them."""
    return Route(method, rule, tuple(args), tuple(form), label=label, bearer=bearer,
                 allowed=(401, 403, 404))


def S(method, rule, args=(), form=(), query=(), label=""):  # noqa: N802
    return Route(method, rule, tuple(args), tuple(form), tuple(query), who="student",
                 kinds=STUDENT_KINDS, label=label)


def O(method, rule, args=(), form=(), attacker="s1", label=""):  # noqa: N802, E743
    return Route(method, rule, tuple(args), tuple(form), who="student",
                 kinds=("other_student",), attacker=attacker, label=label)


# Read-only rows first, then changes, deletions last (should a hole let one
# through, the rows before it still test an intact world).
ROUTES: list[Route] = [
    # -- teacher pages, GET
    T("GET", "/course/placements/<int:placement_id>", [("placement_id", "placement")]),
    T("GET", PL, [P]),
    T("GET", PL + "/export.json", [P]),
    T("GET", PL + "/items/new", [P]),
    T("GET", ITEM, [P, ("item_id", "reading")]),
    T("GET", ITEM + "/assess", [P, ("item_id", "checkpoint")]),
    T("GET", PL + "/preview", [P], query=[("student", "{s2}")]),
    T("GET", PL + "/progress", [P]),
    T("GET", "/course/standards/<int:standard_id>/evidence", [STD]),
    T("GET", "/course/standards/<int:standard_id>/groups", [STD]),
    T("GET", "/course/standards/<int:standard_id>/groups", [STD], query=[("format", "csv")],
      label="csv"),
    T("GET", "/course/students/<int:student_id>/profile", [("student_id", "s2")]),
    T("GET", "/course/students/<int:student_id>/standards/<int:standard_id>",
      [("student_id", "s2"), STD]),
    T("GET", "/course/standards", query=[("edit", "{r1}")], label="edit"),
    # -- student pages, GET
    S("GET", "/my/mastery/<int:standard_id>", [STD]),
    S("GET", MY, [P]),
    S("GET", MYITEM, [P, ("item_id", "resource")]),
    S("GET", MYITEM, [P, ("item_id", "quick")], label="quick check"),
    S("GET", "/my/reflections", query=[("item_id", "{checkpoint}")], label="item"),
    # -- teacher pages, changes
    T("POST", "/course/placements/<int:placement_id>", [("placement_id", "placement")],
      [("action", "save"), ("rule", "average"), ("score_maximum", "50")]),
    T("POST", "/course/placements/<int:placement_id>/sync", [("placement_id", "placement")]),
    T("POST", PL, [P], [("title", "Hijacked"), ("description", "x")]),
    T("POST", PL + "/publish", [P], [("published", "0")]),
    T("POST", PL + "/copy", [P], [("course_id", "{attacker_course}")]),
    T("POST", PL + "/items/new", [P], [("kind", "practice"), ("tag", "must_do"),
                                       ("title", "Hijacked")]),
    T("POST", ITEM, [P, ("item_id", "resource")],
      [("kind", "resource"), ("tag", "must_do"), ("title", "Hijacked"),
       ("url", "https://example.org/hijacked")]),
    T("POST", ITEM + "/move", [P, ("item_id", "resource")], [("direction", "down")]),
    T("POST", ITEM + "/assess", [P, ("item_id", "checkpoint")],
      [("score-{s2}-{r2}", "4"), ("assessed_at", "2026-09-05")]),
    T("POST", "/course/standards/<int:standard_id>/assign", [("standard_id", "r2")],
      [("kind", "reassessment"), ("students", "{s2}")]),
    T("POST", "/course/standards/<int:standard_id>/evidence", [STD],
      [("score-{s2}", "4"), ("source", "checkpoint"), ("assessed_at", "2026-09-02")]),
    T("POST", "/course/standards/<int:standard_id>/method", [STD], [("method", "highest")]),
    T("POST", "/course/students/<int:student_id>/standards/<int:standard_id>",
      [("student_id", "s2"), STD],
      [("score", "4"), ("source", "observation"), ("assessed_at", "2026-09-03")],
      label="evidence"),
    T("POST", "/course/students/<int:student_id>/standards/<int:standard_id>",
      [("student_id", "s2"), STD],
      [("action", "override"), ("value", "1"), ("note", "Hijacked")], label="override"),
    T("POST", "/course/assignments/<int:assignment_id>/cancel",
      [("assignment_id", "assignment")], [("standard_id", "{r2}")]),
    # -- student pages, changes
    S("POST", "/my/goals/<int:goal_id>/met", [("goal_id", "goal_s1")], [("met", "1")]),
    S("POST", "/my/mastery/<int:standard_id>", [STD],
      [("reflection", "I practised this a great deal.")]),
    S("POST", MYITEM + "/check", [P, ("item_id", "quick")], [("q-0", "9"), ("q-1", "1")]),
    S("POST", MYITEM + "/progress", [P, ("item_id", "practice")], [("status", "started")]),
    S("POST", MY + "/target", [P], [("target_date", "2099-07-01")]),
    # -- another student's rows in the same course
    O("POST", "/my/goals/<int:goal_id>/met", [("goal_id", "goal_s1")], [("met", "1")],
      attacker="s2"),
    O("GET", MY, [("playlist_id", "reteach")], label="assigned to s2"),
    O("GET", MYITEM, [("playlist_id", "reteach"), ("item_id", "reteach_quick")],
      label="assigned to s2"),
    O("POST", MYITEM + "/check", [("playlist_id", "reteach"), ("item_id", "reteach_quick")],
      [("q-0", "9"), ("q-1", "1")], label="assigned to s2"),
    O("POST", MYITEM + "/progress", [("playlist_id", "reteach"),
                                     ("item_id", "reteach_quick")],
      [("status", "started")], label="assigned to s2"),
    O("POST", MY + "/target", [("playlist_id", "reteach")], [("target_date", "2099-07-01")],
      label="assigned to s2"),
    # -- the administrator's registrations: not for any LTI session
    ADMIN("POST", "/admin/registrations/<int:platform_id>/active",
          [("platform_id", "platform")], [("active", "0")]),
    ADMIN("POST", "/admin/registrations/<int:platform_id>/active",
          [("platform_id", "platform")], [("active", "0")], label="bearer", bearer=True),
    # -- deletions last
    T("POST", ITEM + "/delete", [P, ("item_id", "option")]),
]

# (attacker, victim) courses per kind
KIND_COURSES = {"cross_platform": ("B", "A"), "cross_deployment": ("D", "A"),
                "cross_course": ("C", "A"), "reverse_platform": ("A", "B"),
                "student": ("A", "A"), "other_student": ("A", "A")}

# reverse_platform (A's token on B's ids) mirrors cross_platform; it runs on
# the pages that show something, where a leak would be read.
CASES = [pytest.param(route, kind, id=f"{kind}:{route.name()}")
         for route in ROUTES for kind in route.kinds
         if kind != "reverse_platform" or route.method == "GET"]


def _fill(template: str, ns: dict) -> str:
    return template.format(**ns)


def _request(world: World, method: str, path: str, token: str, form: list, query: list,
             bearer: bool = False):
    headers = {"Authorization": f"Bearer {token}"} if bearer else {}
    if method == "GET":
        return world.client.get(path, query_string=[("t", token), *query], headers=headers)
    return world.client.post(path, query_string=query or None, headers=headers,
                             data=MultiDict([("t", token), *form]))


def _assert_refused(world: World, response, allowed: set[int], victim_markers: list[str],
                    before: dict, what: str) -> None:
    body = response.get_data(as_text=True)
    assert response.status_code != 500, f"{what}: 500\n{body[:1500]}"
    assert response.status_code in allowed, (
        f"{what}: expected one of {sorted(allowed)}, got {response.status_code} "
        f"(Location: {response.headers.get('Location')})\n{body[:1500]}")
    for marker in victim_markers:
        assert marker not in body, f"{what}: the refusal shows the victim's data ({marker})"
    after = world.last = snapshot(world.url)
    changed = changed_tables(before, after)
    assert not changed, f"{what}: a refused request changed tables {sorted(changed)}"


@pytest.mark.parametrize(("route", "kind"), CASES)
def test_route_refuses_other_tenants_and_roles(world, route: Route, kind: str):
    attacker_key, victim_key = KIND_COURSES[kind]
    attacker, victim = world.courses[attacker_key], world.courses[victim_key]
    if kind == "other_student":
        token = attacker.tokens[route.attacker]
    elif kind == "student":
        token = attacker.tokens["s1"]
    else:
        token = attacker.tokens["teacher" if route.who == "teacher" else "s1"]
    ns = {**victim.ids, "attacker_course": attacker.pk}
    path = route.rule
    for arg, id_name in route.args:
        path = path.replace(f"<int:{arg}>", str(victim.ids[id_name]))
    assert "<" not in path, f"unfilled URL argument in {route.rule}"
    form = [(_fill(k, ns), _fill(v, ns)) for k, v in route.form]
    query = [(k, _fill(v, ns)) for k, v in route.query]
    before = world.before()
    response = _request(world, route.method, path, token, form, query, route.bearer)
    # Another student's row inside the same course: the victim's text is the
    # course's too, so only status and writes are checked.
    markers = [] if attacker_key == victim_key else [victim.marker]
    allowed = set(route.allowed)
    if kind in CROSS and route.allowed == (403, 404):
        allowed = {404}  # §3.8: another tenant's ids are not found, not "forbidden"
    _assert_refused(world, response, allowed, markers, before,
                    f"{kind} {route.method} {path} {form or ''}{query or ''}")


def test_every_int_id_route_is_in_the_table(world):
    """A new route with an <int:...> argument must get rows in ROUTES."""
    covered = {(r.rule, r.method) for r in ROUTES}
    in_app = set()
    for rule in world.app.url_map.iter_rules():
        if any(isinstance(c, IntegerConverter) for c in rule._converters.values()):
            for method in rule.methods - {"HEAD", "OPTIONS"}:
                in_app.add((rule.rule, method))
    missing = sorted(in_app - covered)
    assert not missing, ("routes with an int id that test_isolation.ROUTES does not cover "
                         f"(add rows for them): {missing}")
    known = {rule.rule for rule in world.app.url_map.iter_rules()}
    stale = sorted({r.rule for r in ROUTES} - known)
    assert not stale, f"ROUTES lists rules the app no longer has: {stale}"
    # Each teacher row is tried by a student; every row across tenants.
    for route in ROUTES:
        if route.who == "teacher":
            assert "student" in route.kinds and set(CROSS) <= set(route.kinds), route
        elif route.kinds != ("other_student",):
            assert set(CROSS) <= set(route.kinds), route


# -- ids in forms and query strings ------------------------------------------------------
@dataclass(frozen=True)
class FormAttack:
    label: str
    who: str                        # a token of course A
    method: str
    path: str                       # templates over World.ns(): {A_playlist}, {B_s1}...
    form: tuple = ()
    allowed: tuple = (400, 403, 404)
    foreign: str = "B"              # whose marker must not show


def F(label, who, method, path, form=(), allowed=(400, 403, 404), foreign="B"):  # noqa: N802
    return FormAttack(label, who, method, path, tuple(form), tuple(allowed), foreign)


NEW_ITEM = "/course/playlists/{A_playlist}/items/new"
FORM_ATTACKS = [
    # The copy form's course_id: only courses of the same deployment this person teaches.
    F("copy to the other platform's course", "teacher", "POST",
      "/course/playlists/{A_playlist}/copy", [("course_id", "{B_course}")]),
    F("copy to the same teacher's course in another deployment", "teacher", "POST",
      "/course/playlists/{A_playlist}/copy", [("course_id", "{D_course}")], foreign="D"),
    F("copy to a course that does not exist", "teacher", "POST",
      "/course/playlists/{A_playlist}/copy", [("course_id", "999999")]),
    F("a student copies to a course of theirs", "s1", "POST",
      "/course/playlists/{A_playlist}/copy", [("course_id", "{C_course}")], foreign="C"),
    # Assign: playlist and students of other courses.
    F("assign another platform's playlist", "teacher", "POST",
      "/course/standards/{A_r2}/assign",
      [("kind", "playlist"), ("playlist_id", "{B_reteach}"), ("students", "{A_s1}")]),
    F("assign another course's playlist (same deployment)", "teacher", "POST",
      "/course/standards/{A_r2}/assign",
      [("kind", "playlist"), ("playlist_id", "{C_reteach}"), ("students", "{A_s1}")],
      foreign="C"),
    F("assign to another platform's student", "teacher", "POST",
      "/course/standards/{A_r2}/assign",
      [("kind", "reassessment"), ("students", "{B_s1}")]),
    F("assign to another course's student (same deployment)", "teacher", "POST",
      "/course/standards/{A_r2}/assign",
      [("kind", "playlist"), ("playlist_id", "{A_reteach}"), ("students", "{C_s3}")],
      foreign="C"),
    # Authoring with another course's standards and items.
    F("new playlist aligned to another platform's standard", "teacher", "POST",
      "/course/playlists", [("title", "Forged"), ("standards", "{B_r1}")]),
    F("playlist edited to another course's standard", "teacher", "POST",
      "/course/playlists/{A_playlist}", [("title", "Forged"), ("standards", "{C_r1}")],
      foreign="C"),
    F("item aligned to another platform's standard", "teacher", "POST", NEW_ITEM,
      [("kind", "practice"), ("tag", "must_do"), ("title", "Forged"),
       ("standards", "{B_r1}")]),
    F("item locked behind another deployment's standard", "teacher", "POST", NEW_ITEM,
      [("kind", "practice"), ("tag", "must_do"), ("title", "Forged"),
       ("prereq_standards", "{D_r1}")], foreign="D"),
    F("item waiting on another platform's item", "teacher", "POST", NEW_ITEM,
      [("kind", "practice"), ("tag", "must_do"), ("title", "Forged"),
       ("prereq_items", "{B_resource}")]),
    F("option on another platform's choice board", "teacher", "POST", NEW_ITEM,
      [("kind", "practice"), ("tag", "must_do"), ("title", "Forged"),
       ("board_id", "{B_board}")]),
    F("item edited to wait on another course's item", "teacher", "POST",
      "/course/playlists/{A_playlist}/items/{A_practice}",
      [("kind", "practice"), ("tag", "must_do"), ("title", "Forged"),
       ("prereq_items", "{C_resource}")], foreign="C"),
    # Mixed ids: one of the course, one of another.
    F("another platform's item under this course's playlist", "teacher", "GET",
      "/course/playlists/{A_playlist}/items/{B_reading}"),
    F("another platform's student on this course's standard", "teacher", "GET",
      "/course/students/{B_s1}/standards/{A_r1}"),
    F("this course's student on another platform's standard", "teacher", "GET",
      "/course/students/{A_s1}/standards/{B_r1}"),
    F("another course's student's profile (same deployment)", "teacher", "GET",
      "/course/students/{C_s3}/profile", foreign="C"),
    F("the teacher's own 'student profile'", "teacher", "GET",
      "/course/students/{A_teacher}/profile", foreign="B"),
    F("preview as another platform's student", "teacher", "GET",
      "/course/playlists/{A_playlist}/preview?student={B_s1}"),
    F("evidence for another platform's student", "teacher", "POST",
      "/course/students/{B_s1}/standards/{A_r1}",
      [("score", "4"), ("source", "observation"), ("assessed_at", "2026-09-03")]),
    F("another platform's quick check under this course's playlist", "s1", "POST",
      "/my/playlists/{A_playlist}/items/{B_quick}/check", [("q-0", "9"), ("q-1", "1")]),
    F("progress on another course's item under this course's playlist", "s1", "POST",
      "/my/playlists/{A_playlist}/items/{C_practice}/progress", [("status", "done")],
      foreign="C"),
    # Superseding evidence that is not this student's on this standard.
    F("supersede another platform's evidence", "teacher", "POST",
      "/course/students/{A_s1}/standards/{A_r1}",
      [("score", "3"), ("source", "observation"), ("assessed_at", "2026-09-04"),
       ("supersedes", "{B_evidence_s1}")]),
    F("supersede another student's evidence", "teacher", "POST",
      "/course/students/{A_s1}/standards/{A_r1}",
      [("score", "3"), ("source", "observation"), ("assessed_at", "2026-09-04"),
       ("supersedes", "{A_evidence_s2}")]),
    # Score fields for people outside the course are ignored: nothing written.
    F("class evidence for another platform's student", "teacher", "POST",
      "/course/standards/{A_r1}/evidence",
      [("score-{B_s1}", "4"), ("source", "checkpoint"), ("assessed_at", "2026-09-02")],
      allowed=(200, 400, 404)),
    F("checkpoint score for another course's student", "teacher", "POST",
      "/course/playlists/{A_playlist}/items/{A_checkpoint}/assess",
      [("score-{C_s3}-{A_r2}", "4"), ("assessed_at", "2026-09-02")],
      allowed=(200, 400, 404), foreign="C"),
    # Hidden ids in agency and grades forms.
    F("decide another platform's reassessment request", "teacher", "POST",
      "/course/reassessments", [("request_id", "{B_reassessment}"),
                                ("decision", "accepted")]),
    F("comment on another platform's goal", "teacher", "POST", "/course/goals",
      [("goal_id", "{B_goal_s1}"), ("comment", "Forged")]),
    F("ask another platform's student to reflect", "teacher", "POST", "/course/reflections",
      [("student_ids", "{B_s1}"), ("prompt", "Forged")]),
    F("ask another course's student to reflect (same deployment)", "teacher", "POST",
      "/course/reflections", [("student_ids", "{C_s3}"), ("prompt", "Forged")],
      foreign="C"),
    F("answer another platform's reflection request", "s1", "POST", "/my/reflections",
      [("reflection_id", "{B_reflection_s1}"), ("text", "Forged")]),
    F("answer another student's reflection request", "s1", "POST", "/my/reflections",
      [("reflection_id", "{A_reflection_s2}"), ("text", "Forged")], foreign="B"),
    F("reflect on another platform's checkpoint", "s1", "POST", "/my/reflections",
      [("item_id", "{B_checkpoint}"), ("text", "Forged")]),
    F("reflect on another course's checkpoint (same person)", "s1", "POST",
      "/my/reflections", [("item_id", "{C_checkpoint}"), ("text", "Forged")], foreign="C"),
    F("open another course's checkpoint reflection form", "s1", "GET",
      "/my/reflections?item_id={C_checkpoint}", foreign="C"),
    F("goal on another platform's standard", "s1", "POST", "/my/goals",
      [("text", "Forged"), ("standard_id", "{B_r1}")]),
    F("goal on another deployment's standard (same person)", "s1", "POST", "/my/goals",
      [("text", "Forged"), ("standard_id", "{D_r1}")], foreign="D"),
    F("edit form of another platform's standard", "teacher", "GET",
      "/course/standards?edit={B_r1}"),
    # Placing: the LMS link may only show a playlist of its own course.
    F("bind the link to another platform's playlist", "teacher_unbound", "POST",
      "/course/link/bind", [("playlist_id", "{B_playlist}")]),
    F("bind the link to another course's draft playlist", "teacher_unbound", "POST",
      "/course/link/bind", [("playlist_id", "{C_reteach}")], foreign="C"),
    F("deep link another platform's playlist", "dl", "POST", "/dl/return",
      [("playlist", "{B_playlist}")]),
    F("deep link (and so publish) another course's draft", "dl", "POST", "/dl/return",
      [("playlist", "{C_reteach}")], foreign="C"),
]


@pytest.mark.parametrize("attack", [pytest.param(a, id=a.label) for a in FORM_ATTACKS])
def test_ids_in_forms_and_queries_stay_in_the_course(world, attack: FormAttack):
    ns = world.ns()
    path = _fill(attack.path, ns)
    path, _, raw_query = path.partition("?")
    query = list(parse_qs(raw_query).items())
    query = [(k, v[0]) for k, v in query]
    form = [(_fill(k, ns), _fill(v, ns)) for k, v in attack.form]
    token = world.courses["A"].tokens[attack.who]
    before = world.before()
    response = _request(world, attack.method, path, token, form, query)
    _assert_refused(world, response, set(attack.allowed),
                    [world.courses[attack.foreign].marker], before,
                    f"{attack.label}: {attack.method} {path} {form}{query}")


# -- people, courses and sessions ---------------------------------------------------------
def _page(world: World, path: str, token: str) -> str:
    response = world.client.get(path, query_string={"t": token})
    assert response.status_code == 200, (path, response.status_code)
    return response.get_data(as_text=True)


def test_same_sub_and_context_on_two_platforms_are_different_people_and_courses(world):
    url = world.url
    platforms = dict(_rows(url, "SELECT client_id, id FROM platform"))
    canvas, moodle = platforms[canvas_flavor().client_id], platforms[moodle_flavor().client_id]
    for sub in ("t-1", "s-1", "s-2"):
        rows = _rows(url, "SELECT platform_id, id FROM lti_user WHERE sub = :s", s=sub)
        assert sorted(p for p, _ in rows) == sorted([canvas, moodle]), (sub, rows)
        assert len({uid for _, uid in rows}) == 2
    shared = _rows(url, "SELECT id, deployment_pk FROM course WHERE context_id = :c",
                   c=SHARED_CONTEXT)
    assert len(shared) == 3 and len({d for _, d in shared}) == 3  # A, B, D
    a, b, c, d = (world.courses[k] for k in "ABCD")
    # Canvas's t-1 is one person teaching A, C and D; Moodle's t-1 only B.
    assert a.ids["teacher"] == c.ids["teacher"] == d.ids["teacher"] != b.ids["teacher"]
    assert a.ids["s1"] == c.ids["s1"] == d.ids["s1"] != b.ids["s1"]
    enrolled = _rows(url, "SELECT course_id FROM enrollment WHERE user_id IN (:t, :s1, :s2)",
                     t=b.ids["teacher"], s1=b.ids["s1"], s2=b.ids["s2"])
    assert {row[0] for row in enrolled} == {b.pk}

    # Every student-owned row belongs to a course the student is enrolled in,
    # on the student's own platform; every standard/item reference stays inside.
    for table in ("evidence", "rollup", "goal", "learner_profile", "reflection",
                  "reassessment_request", "assignment", "item_progress", "playlist_target",
                  "quick_check_attempt", "mastery_override"):
        crossing = _rows(url, f"""
            SELECT t.id FROM {table} t
            JOIN lti_user u ON u.id = t.student_id
            JOIN course c ON c.id = t.course_id
            JOIN deployment d ON d.id = c.deployment_pk
            WHERE u.platform_id <> d.platform_id OR NOT EXISTS (
                SELECT 1 FROM enrollment e WHERE e.user_id = t.student_id
                AND e.course_id = t.course_id AND e.role = 'student')""")
        assert crossing == [], (table, crossing)
    for table in ("evidence", "rollup", "goal", "reassessment_request", "assignment",
                  "mastery_override"):
        crossing = _rows(url, f"""SELECT t.id FROM {table} t JOIN standard s
            ON s.id = t.standard_id WHERE s.course_id <> t.course_id""")
        assert crossing == [], (table, crossing)
    course_of_standard = dict(_rows(url, "SELECT id, course_id FROM standard"))
    for pid, course_id, std_ids in _rows(url, "SELECT id, course_id, standard_ids "
                                         "FROM playlist"):
        assert all(course_of_standard[s] == course_id for s in _json(std_ids)), pid
    items = _rows(url, "SELECT i.id, p.course_id, i.standard_ids, i.prereq_standard_ids "
                  "FROM playlist_item i JOIN playlist p ON p.id = i.playlist_id")
    for item_id, course_id, *lists in items:
        assert all(course_of_standard[s] == course_id for lst in lists
                   for s in _json(lst)), item_id

    # Each course's pages show its own data only.
    others = lambda key: [m for k, m in MARKERS.items() if k != key]  # noqa: E731
    for key in ("A", "B"):
        course = world.courses[key]
        for path, who in (("/course/gradebook", "teacher"), ("/course/goals", "teacher"),
                          ("/course/reflections", "teacher"), ("/course/reassessments",
                                                               "teacher"),
                          ("/course/standards", "teacher"), ("/home", "s1"),
                          ("/my/mastery", "s1"), ("/my/goals", "s1"), ("/my/profile", "s1"),
                          ("/my/reflections", "s1")):
            body = _page(world, path, course.tokens[who])
            assert course.marker in body, (key, path)
            for marker in others(key):
                assert marker not in body, (key, path, marker)
    # The same Canvas student in course C sees C's playlists, not A's.
    home = _page(world, "/home", c.tokens["s1"])
    assert "Fractions " + c.marker in home and a.marker not in home


def _json(value) -> list:
    import json

    return json.loads(value) if isinstance(value, str) else list(value or [])


def _flip(token: str, index: int) -> str:
    ch = token[index]
    return token[:index] + ("A" if ch != "A" else "B") + token[index + 1:]


def test_tampered_forged_and_expired_tokens_open_nothing(world):
    a = world.courses["A"]
    good = a.tokens["teacher"]
    payload, stamp, signature = good.split(".")
    serializer = URLSafeTimedSerializer(world.secret, salt=SALT)
    session_id = serializer.loads(good)
    class ThreeHoursAgo(TimestampSigner):  # older than the token TTL (one hour)
        def get_timestamp(self) -> int:
            return int(time.time()) - 3 * 3600

    stale = URLSafeTimedSerializer(world.secret, salt=SALT, signer=ThreeHoursAgo)
    bad = {
        "payload char": _flip(good, len(payload) // 2),
        "timestamp char": _flip(good, len(payload) + 2),
        "signature char": _flip(good, len(good) - len(signature) // 2),
        "truncated": good[:-4],
        "appended": good + "x",
        "other secret": URLSafeTimedSerializer("not-the-secret", salt=SALT).dumps(session_id),
        "other salt": URLSafeTimedSerializer(world.secret, salt="other").dumps(session_id),
        "unknown session": serializer.dumps("no-such-session"),
        "not a string": serializer.dumps({"id": session_id}),
        "expired": stale.dumps(session_id),
    }
    assert all(token != good for token in bad.values())
    pid = a.ids["playlist"]
    before = snapshot(world.url)
    for label, token in bad.items():
        for method, path, form in (
                ("GET", "/home", {}), ("GET", "/course/gradebook", {}),
                ("GET", f"/course/playlists/{pid}", {}),
                ("POST", f"/course/playlists/{pid}/publish", {"published": "0"}),
                ("POST", "/course/standards", {"code": "X.1", "title": "Forged"})):
            if method == "GET":
                response = world.client.get(path, query_string={"t": token})
            else:
                response = world.client.post(path, data={"t": token, **form})
            assert response.status_code == 401, (label, method, path, response.status_code)
            assert a.marker not in response.get_data(as_text=True), (label, path)
        header = world.client.get("/course/gradebook",
                                  headers={"Authorization": f"Bearer {token}"})
        assert header.status_code == 401, (label, "bearer", header.status_code)
    assert not changed_tables(before, snapshot(world.url))
    # The untouched token still works: the refusals above were about the token.
    assert world.client.get("/course/gradebook", query_string={"t": good}).status_code == 200


def test_a_courses_token_on_another_courses_pages_shows_its_own_course(world):
    """The session decides the course: course-less URLs with A's token show A,
    and a token of C (the same Canvas teacher) shows C, never A."""
    a, c = world.courses["A"], world.courses["C"]
    for path in ("/course/gradebook", "/course/playlists", "/course/standards",
                 "/course/goals", "/course/reflections", "/course/reassessments",
                 "/course/settings", "/home"):
        mine = _page(world, path, c.tokens["teacher"])
        if path in ("/course/gradebook", "/course/playlists", "/course/standards", "/home"):
            assert c.marker in mine, path
        # A may be named as a course to copy playlists to, nothing more.
        assert a.marker not in mine.replace(f"Course {a.marker}", ""), path
    # gradebook.csv and standards.csv are per course too.
    for path in ("/course/gradebook.csv", "/course/standards.csv"):
        body = world.client.get(path, query_string={"t": c.tokens["teacher"]}) \
            .get_data(as_text=True)
        assert a.marker not in body, path


def test_hidden_fields_cannot_name_another_student(world):
    """A student's forms write only the session's own rows, whatever student or
    course ids are added to them."""
    world.last = None  # this test writes (the student's own rows)
    a = world.courses["A"]
    s1, s2 = a.ids["s1"], a.ids["s2"]
    url = world.url
    goals_s2 = _rows(url, "SELECT * FROM goal WHERE student_id = :s ORDER BY id", s=s2)
    profile_s2 = _rows(url, "SELECT * FROM learner_profile WHERE student_id = :s", s=s2)
    requests_s2 = _rows(url, "SELECT * FROM reassessment_request WHERE student_id = :s", s=s2)
    targets_s2 = _rows(url, "SELECT * FROM playlist_target WHERE student_id = :s", s=s2)
    extra = {"student_id": str(s2), "user_id": str(s2), "student": str(s2),
             "course_id": str(world.courses["B"].pk)}
    token = a.tokens["s1"]
    r = world.client.post("/my/goals", data={"t": token, "text": "Mine, not Alan's",
                                             **extra})
    assert r.status_code == 303
    assert _rows(url, "SELECT student_id, course_id FROM goal WHERE text = :x",
                 x="Mine, not Alan's") == [(s1, a.pk)]
    r = world.client.post("/my/profile", data={"t": token, "strengths": "Mine only",
                                               **extra})
    assert r.status_code == 303
    assert _rows(url, "SELECT student_id, course_id FROM learner_profile WHERE "
                 "strengths = 'Mine only'") == [(s1, a.pk)]
    r = world.client.post(f"/my/mastery/{a.ids['w1']}", data={
        "t": token, "reflection": "I practised arguments every day.", **extra})
    assert r.status_code == 200
    assert _rows(url, "SELECT student_id, course_id FROM reassessment_request WHERE "
                 "standard_id = :w", w=a.ids["w1"]) == [(s1, a.pk)]
    r = world.client.post(f"/my/playlists/{a.ids['playlist']}/target",
                          data={"t": token, "target_date": "2099-08-01", **extra})
    assert r.status_code == 303
    assert _rows(url, "SELECT * FROM goal WHERE student_id = :s ORDER BY id", s=s2) == goals_s2
    assert _rows(url, "SELECT * FROM learner_profile WHERE student_id = :s", s=s2) == \
        profile_s2
    assert _rows(url, "SELECT * FROM reassessment_request WHERE student_id = :s", s=s2) == \
        requests_s2
    assert _rows(url, "SELECT * FROM playlist_target WHERE student_id = :s", s=s2) == \
        targets_s2
    # Nothing landed in the course named in the form.
    b = world.courses["B"]
    for table in ("goal", "learner_profile", "reassessment_request", "playlist_target"):
        assert _rows(url, f"SELECT COUNT(*) FROM {table} WHERE course_id = :c AND "
                     "student_id = :s", c=b.pk, s=s1) == [(0,)], table


def test_a_resource_link_id_reused_in_another_course_does_not_take_its_placement(world):
    """A signed launch from course C carrying the resource link id of A's placed
    activity (same deployment) must not move A's activity into C, nor point
    A's placement at C's gradebook columns."""
    world.last = None  # this test writes (a launch)
    a = world.courses["A"]
    url = world.url
    placement_sql = ("SELECT course_id, resource_link_pk, playlist_id, lineitems_url, "
                     "lineitem_url, rule, passback_enabled FROM placement WHERE id = :p")
    link_sql = ("SELECT r.course_id FROM resource_link r JOIN placement p "
                "ON p.resource_link_pk = r.id WHERE p.id = :p")
    placement_before = _rows(url, placement_sql, p=a.ids["placement"])
    line_items_before = _rows(url, "SELECT * FROM line_item WHERE placement_id = :p",
                              p=a.ids["placement"])
    assert _rows(url, link_sql, p=a.ids["placement"]) == [(a.pk,)]
    launcher = world.app.test_client()
    canvas = a.platform
    elsewhere = "https://school.instructure.com/api/lti/courses/9999"
    started = login(launcher, canvas, lti_deployment_id=canvas.flavor.deployment_id)
    body = canvas.claims(started.nonce, role="teacher", **{
        "sub": "t-1", "name": "Grace Hopper", "given_name": "Grace", "family_name": "Hopper",
        LTI + "context": {"id": "ctx-second", "label": "C", "title": f"Course {MARKERS['C']}",
                          "type": [LIS + "course#CourseOffering"]},
        LTI + "resource_link": {"id": "link-A", "title": "Playlist"},
        "https://purl.imsglobal.org/spec/lti-ags/claim/endpoint": {
            "scope": ["https://purl.imsglobal.org/spec/lti-ags/scope/lineitem",
                      "https://purl.imsglobal.org/spec/lti-ags/scope/score"],
            "lineitems": elsewhere + "/line_items",
            "lineitem": elsewhere + "/line_items/77"}})
    response = post_launch(launcher, canvas.sign(body), started.state)
    # Refused (the link id belongs to another course), with a page that says so.
    assert response.status_code == 409, response.status_code
    assert "RESOURCE_LINK_CONFLICT" in response.get_data(as_text=True)
    problems = []
    placement_after = _rows(url, placement_sql, p=a.ids["placement"])
    if placement_after != placement_before:
        problems.append(f"a launch from course C rewrote course A's placement: "
                        f"{placement_before} -> {placement_after}")
    line_items_after = _rows(url, "SELECT * FROM line_item WHERE placement_id = :p",
                             p=a.ids["placement"])
    if line_items_after != line_items_before:
        problems.append(f"course A's placement got line items from course C's launch: "
                        f"{line_items_after}")
    link_course = _rows(url, link_sql, p=a.ids["placement"])
    if link_course != [(a.pk,)]:
        problems.append(f"course A's LMS activity now belongs to course {link_course} "
                        f"(C is {world.courses['C'].pk})")
    assert not problems, "\n".join(problems)
