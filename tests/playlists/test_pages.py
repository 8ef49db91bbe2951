"""Playlists through real launches: a teacher builds a playlist with every
item kind and publishes it; two students with different evidence see
different paths; a quick check records evidence and unlocks the next item;
the teacher assesses a checkpoint, watches the class and assigns a reteach
playlist from the regroup view. Every refusal changes nothing."""

from __future__ import annotations

import io
import json
import re

import pytest
import sqlalchemy as sa

from lti_tool.db import get_engine
from tests.support.flows import launch_as
from tests.support.platform import LTI

CSV = ("code,title,description,group\n"
       "R.1,Read closely,Cite evidence from the text,Reading\n"
       "R.2,Main idea,Find the central idea,Reading\n"
       "W.1,Argue,Write an argument,Writing\n")
QUESTIONS = ("Q: What is 3/4 of 12?\n= 9\nWhy: 12 ÷ 4 × 3\n"
             "Q: Which is larger?\n- 1/2\n* 3/4\n- 2/3\n")


def _rows(url, sql, **params):
    with get_engine(url).connect() as conn:
        return conn.execute(sa.text(sql), params).all()


def _one(url, sql, **params):
    return _rows(url, sql, **params)[0][0]


def _count(url, table) -> int:
    return _one(url, f"SELECT COUNT(*) FROM {table}")


def _snapshot(url) -> dict[str, int]:
    return {t: _count(url, t) for t in (
        "playlist", "playlist_item", "item_progress", "evidence", "rollup",
        "quick_check_attempt", "playlist_target", "assignment")}


@pytest.fixture
def school(app, canvas, database_url):
    client = app.test_client()
    people = {
        "client": client, "url": database_url,
        "teacher": launch_as(client, canvas, "teacher", "t-1", "Grace Hopper"),
        "ada": launch_as(client, canvas, "student", "s-1", "Ada Lovelace"),
        "alan": launch_as(client, canvas, "student", "s-2", "Alan Turing"),
    }
    r = client.post("/course/standards", data={
        "t": people["teacher"], "file": (io.BytesIO(CSV.encode()), "s.csv")},
        content_type="multipart/form-data")
    assert r.status_code == 200
    people["std"] = dict(_rows(database_url, "SELECT code, id FROM standard"))
    people["sid"] = dict(_rows(database_url, "SELECT sub, id FROM lti_user"))
    return people


def _post(s, path, who="teacher", **data):
    data = {"t": s[who], **data}
    return s["client"].post(path, data=data)


def _get(s, url, who="teacher", **params):
    return s["client"].get(url, query_string={"t": s[who], **params})


def _add(s, pid, **fields) -> int:
    before = {r[0] for r in _rows(s["url"], "SELECT id FROM playlist_item")}
    fields.setdefault("tag", "must_do")
    r = _post(s, f"/course/playlists/{pid}/items/new", **fields)
    assert r.status_code == 303, r.get_data(as_text=True)[:800]
    (new,) = {r[0] for r in _rows(s["url"], "SELECT id FROM playlist_item")} - before
    return new


def _build(s) -> dict:
    """A playlist with every item kind: R.1 teaching, a quick check on R.1,
    a checkpoint on R.2 locked until mastery of R.1, a choice board."""
    std = s["std"]
    r = _post(s, "/course/playlists", title="Fractions", description="Unit 3",
              standards=[std["R.1"], std["R.2"]])
    assert r.status_code == 303
    pid = _one(s["url"], "SELECT id FROM playlist")
    ids = {"pid": pid}
    ids["resource"] = _add(s, pid, kind="resource", title="Fraction strips",
                           url="https://example.org/strips", standards=[std["R.1"]])
    ids["reading"] = _add(s, pid, kind="reading", title="How fractions work",
                          body="<p>Read this.</p><script>alert(1)</script>",
                          standards=[std["R.1"]])
    ids["video"] = _add(s, pid, kind="video", title="Fractions video", tag="may_do",
                        url="https://www.youtube.com/watch?v=dQw4w9WgXcQ")
    ids["practice"] = _add(s, pid, kind="practice", title="Practice set",
                           standards=[std["R.1"]])
    ids["quick"] = _add(s, pid, kind="quick_check", title="Quick check R.1",
                        standards=[std["R.1"]], questions=QUESTIONS)
    ids["checkpoint"] = _add(s, pid, kind="checkpoint", title="Checkpoint R.2",
                             standards=[std["R.2"]], prereq_standards=[std["R.1"]],
                             body="Explain the main idea to your teacher.")
    ids["board"] = _add(s, pid, kind="choice_board", title="Show what you know",
                        tag="challenge", min_choices="1")
    ids["opt_a"] = _add(s, pid, kind="practice", title="Make a poster",
                        board_id=str(ids["board"]), standards=[std["W.1"]])
    ids["opt_b"] = _add(s, pid, kind="practice", title="Record a podcast",
                        board_id=str(ids["board"]), standards=[std["W.1"]])
    return ids


def _published_quick_check(s) -> tuple[dict, int, str]:
    """_build's playlist, published; with the address its quick check posts to."""
    ids = _build(s)
    pid = ids["pid"]
    assert _post(s, f"/course/playlists/{pid}/publish", published="1").status_code == 303
    return ids, pid, f"/my/playlists/{pid}/items/{ids['quick']}/check"


def _path_page(s, who, pid) -> str:
    r = _get(s, f"/my/playlists/{pid}", who)
    assert r.status_code == 200, r.get_data(as_text=True)[:500]
    return r.get_data(as_text=True)


def _entry(html: str, item_id: int) -> str:
    match = re.search(rf'<li id="item-{item_id}" class="entry ([^"]*)"', html)
    assert match, f"item {item_id} not on the page"
    return match.group(1)


def test_teacher_builds_publishes_and_students_see_different_paths(school):
    s = school
    ids = _build(s)
    pid = ids["pid"]
    # Unpublished: students cannot open it and do not see it.
    assert _get(s, f"/my/playlists/{pid}", "ada").status_code == 404
    assert "Fractions" not in _get(s, "/home", "ada").get_data(as_text=True)
    assert _post(s, f"/course/playlists/{pid}/publish", published="1").status_code == 303
    assert "Fractions" in _get(s, "/home", "ada").get_data(as_text=True)

    # The teacher records Mastery on R.1 for Ada only.
    r = _post(s, f"/course/standards/{s['std']['R.1']}/evidence", assessed_at="2026-09-01",
              source="observation", **{f"score-{s['sid']['s-1']}": "4"})
    assert r.status_code == 200

    ada = _path_page(s, "ada", pid)
    alan = _path_page(s, "alan", pid)
    # Ada tested out of the R.1 items; Alan must do them.
    assert "state-mastered_optional" in _entry(ada, ids["resource"])
    assert "Mastered — optional" in ada
    assert "state-available" in _entry(alan, ids["resource"])
    # The checkpoint is locked for Alan until R.1 mastery, open for Ada.
    assert "state-locked" in _entry(alan, ids["checkpoint"])
    assert "Unlocks when you reach Mastery on R.1" in alan
    assert "state-available" in _entry(ada, ids["checkpoint"])
    # Next up is highlighted: Alan's first must-do item, Ada's checkpoint.
    assert "recommended" in _entry(alan, ids["resource"])
    assert "recommended" in _entry(ada, ids["checkpoint"])
    # The choice board shows its options nested under it; sanitized reading.
    assert "Make a poster" in alan and "Record a podcast" in alan
    item = _get(s, f"/my/playlists/{pid}/items/{ids['reading']}", "alan")
    body = item.get_data(as_text=True)
    assert "<p>Read this.</p>" in body and "<script>alert(1)" not in body
    video = _get(s, f"/my/playlists/{pid}/items/{ids['video']}", "alan")
    assert "youtube-nocookie.com/embed/dQw4w9WgXcQ" in video.get_data(as_text=True)
    assert "frame-src 'self' https://www.youtube-nocookie.com" in \
        video.headers["Content-Security-Policy"]
    # The teacher sees any student's path.
    preview = _get(s, f"/course/playlists/{pid}/preview", student=s["sid"]["s-2"])
    assert preview.status_code == 200
    assert "Unlocks when you reach Mastery on R.1" in preview.get_data(as_text=True)


def test_quick_check_records_evidence_and_unlocks_the_checkpoint(school):
    s = school
    ids, pid, url = _published_quick_check(s)

    # An unanswered question: 400, the message names it, nothing written.
    before = _snapshot(s["url"])
    r = _post(s, url, "alan", **{"q-0": "9"})
    assert r.status_code == 400
    assert "question(s) 2 are empty" in r.get_data(as_text=True)
    assert _snapshot(s["url"]) == before

    # One of two right: 2 points (Approaching), still locked.
    r = _post(s, url, "alan", **{"q-0": "8", "q-1": "1"})
    assert r.status_code == 200, r.get_data(as_text=True)[:500]
    assert "You answered 1 of 2 correctly" in r.get_data(as_text=True)
    assert "state-locked" in _entry(_path_page(s, "alan", pid), ids["checkpoint"])

    # Both right: 4 points; decaying average 0.65*4 + 0.35*2 = 3.3 ≥ 3: unlocked.
    r = _post(s, url, "alan", **{"q-0": "9", "q-1": "1"})
    assert "You answered 2 of 2 correctly" in r.get_data(as_text=True)
    evidence = _rows(s["url"], "SELECT score, source FROM evidence WHERE student_id = :sid "
                     "ORDER BY id", sid=s["sid"]["s-2"])
    assert [(e[0], e[1]) for e in evidence] == [(2.0, "quick check"), (4.0, "quick check")]
    value = _one(s["url"], "SELECT value FROM rollup WHERE student_id = :sid",
                 sid=s["sid"]["s-2"])
    assert value == pytest.approx(3.3)
    page = _path_page(s, "alan", pid)
    assert "state-available" in _entry(page, ids["checkpoint"])
    assert "state-done" in _entry(page, ids["quick"])
    # The student's own mastery page shows the quick check as evidence.
    mine = _get(s, f"/my/mastery/{s['std']['R.1']}", "alan").get_data(as_text=True)
    assert "Quick check: Quick check R.1" in mine


def test_progress_target_and_locked_items(school):
    s = school
    ids = _build(s)
    pid = ids["pid"]
    _post(s, f"/course/playlists/{pid}/publish", published="1")
    base = f"/my/playlists/{pid}/items"
    # Mark started then done.
    assert _post(s, f"{base}/{ids['resource']}/progress", "alan",
                 status="started").status_code == 303
    assert "state-in_progress" in _entry(_path_page(s, "alan", pid), ids["resource"])
    assert _post(s, f"{base}/{ids['resource']}/progress", "alan",
                 status="done").status_code == 303
    page = _path_page(s, "alan", pid)
    assert "state-done" in _entry(page, ids["resource"])
    assert "1 of 5</strong> must-do items complete (20%)" in page
    # A locked item cannot be started; a checkpoint cannot be marked done.
    before = _snapshot(s["url"])
    r = _post(s, f"{base}/{ids['checkpoint']}/progress", "alan", status="started")
    assert r.status_code == 409
    assert "Unlocks when you reach Mastery on R.1" in r.get_data(as_text=True)
    r = _post(s, f"{base}/{ids['quick']}/progress", "alan", status="done")
    assert r.status_code == 400
    r = _post(s, f"{base}/{ids['resource']}/progress", "alan", status="finished")
    assert r.status_code == 400
    assert _snapshot(s["url"]) == before
    # A choice-board option counts for its board.
    _post(s, f"{base}/{ids['opt_a']}/progress", "alan", status="done")
    assert "state-done" in _entry(_path_page(s, "alan", pid), ids["board"])
    # Target date: in the past is refused; a future one shows the pace.
    r = _post(s, f"/my/playlists/{pid}/target", "alan", target_date="2000-01-01")
    assert r.status_code == 400 and "from today onwards" in r.get_data(as_text=True)
    assert _count(s["url"], "playlist_target") == 0
    r = _post(s, f"/my/playlists/{pid}/target", "alan", target_date="2099-06-01")
    assert r.status_code == 303
    assert "on pace for 1 Jun" in _path_page(s, "alan", pid) or \
        "ahead of pace for 1 Jun" in _path_page(s, "alan", pid)


def test_checkpoint_assessment_class_progress_and_reteach_assignment(school):
    s = school
    ids = _build(s)
    pid = ids["pid"]
    std = s["std"]
    _post(s, f"/course/playlists/{pid}/publish", published="1")
    ada, alan = s["sid"]["s-1"], s["sid"]["s-2"]
    # A score outside the scale: nothing recorded at all.
    before = _snapshot(s["url"])
    r = _post(s, f"/course/playlists/{pid}/items/{ids['checkpoint']}/assess",
              **{f"score-{ada}-{std['R.2']}": "3", f"score-{alan}-{std['R.2']}": "9"})
    assert r.status_code == 400 and "outside" in r.get_data(as_text=True)
    assert _snapshot(s["url"]) == before
    r = _post(s, f"/course/playlists/{pid}/items/{ids['checkpoint']}/assess",
              assessed_at="2026-10-01", **{f"score-{ada}-{std['R.2']}": "3",
                                           f"score-{alan}-{std['R.2']}": "1"})
    assert r.status_code == 200 and "2 score(s) recorded" in r.get_data(as_text=True)
    assert "state-done" in _entry(_path_page(s, "ada", pid), ids["checkpoint"])

    progress = _get(s, f"/course/playlists/{pid}/progress", sort="stuck")
    html = progress.get_data(as_text=True)
    assert progress.status_code == 200
    assert "Ada Lovelace" in html and "Alan Turing" in html and "<svg" in html

    # Reteach: a draft playlist assigned to those below mastery on R.2.
    _post(s, "/course/playlists", title="Main idea reteach", standards=[std["R.2"]])
    reteach = _one(s["url"], "SELECT id FROM playlist WHERE title = 'Main idea reteach'")
    _add(s, reteach, kind="reading", title="Main idea, again", body="Step by step",
         standards=[std["R.2"]])
    regroup = _get(s, f"/course/standards/{std['R.2']}/groups").get_data(as_text=True)
    assert f'value="{alan}" id="pick-{alan}" checked' in regroup
    assert f'value="{ada}" id="pick-{ada}" checked' not in regroup
    r = _post(s, f"/course/standards/{std['R.2']}/assign", kind="playlist",
              playlist_id=str(reteach), students=[str(alan)], note="Let's try again")
    assert r.status_code == 303
    # Assigning again does not duplicate.
    _post(s, f"/course/standards/{std['R.2']}/assign", kind="playlist",
          playlist_id=str(reteach), students=[str(alan)])
    assert _count(s["url"], "assignment") == 1
    home = _get(s, "/home", "alan").get_data(as_text=True)
    assert home.index("From your teacher") < home.index("My playlists</h2>")
    assert "Main idea reteach" in home and "Let&#39;s try again" in home
    # Alan may open the draft reteach playlist; Ada may not.
    assert _get(s, f"/my/playlists/{reteach}", "alan").status_code == 200
    assert _get(s, f"/my/playlists/{reteach}", "ada").status_code == 404
    assert "From your teacher" not in _get(s, "/home", "ada").get_data(as_text=True)


def test_export_import_duplicate_and_copy(school, canvas):
    s = school
    ids = _build(s)
    pid = ids["pid"]
    exported = _get(s, f"/course/playlists/{pid}/export.json")
    assert exported.status_code == 200
    doc = json.loads(exported.data)
    assert doc["format"] == "pathwise-playlist" and len(doc["items"]) == 9
    # Import into a second course this teacher teaches: standards come along.
    other = {"id": "course-2", "label": "MATH-6", "title": "Math 6"}
    teacher2 = launch_as(s["client"], canvas, "teacher", "t-1", "Grace Hopper",
                   **{LTI + "context": other})
    r = s["client"].post("/course/playlists/import", data={
        "t": teacher2, "file": (io.BytesIO(exported.data), "p.json")},
        content_type="multipart/form-data")
    assert r.status_code == 303, r.get_data(as_text=True)[:800]
    course2 = _one(s["url"], "SELECT id FROM course WHERE context_id = 'course-2'")
    assert _count(s["url"], "standard") == 6
    assert _one(s["url"], "SELECT COUNT(*) FROM playlist WHERE course_id = :c",
                c=course2) == 1
    # A broken file: 400 with every problem listed, nothing written.
    before = _snapshot(s["url"])
    doc["items"][0]["kind"] = "quiz"
    doc["items"][1]["url"] = "javascript:alert(1)"
    r = s["client"].post("/course/playlists/import", data={
        "t": teacher2, "file": (io.BytesIO(json.dumps(doc).encode()), "p.json")},
        content_type="multipart/form-data")
    assert r.status_code == 400
    text = r.get_data(as_text=True)
    assert "items[0].kind" in text and "quiz" in text
    assert _snapshot(s["url"]) == before
    # Duplicate in the same course; copy to the other course via the form.
    assert _post(s, f"/course/playlists/{pid}/copy").status_code == 303
    assert _count(s["url"], "playlist") == 3
    r = _post(s, f"/course/playlists/{pid}/copy", course_id=str(course2))
    assert r.status_code == 303
    assert _one(s["url"], "SELECT COUNT(*) FROM playlist WHERE course_id = :c",
                c=course2) == 2
    # Not to a course the teacher does not teach.
    r = _post(s, f"/course/playlists/{pid}/copy", course_id="999999")
    assert r.status_code == 400


def test_reorder_edit_and_authoring_errors(school):
    s = school
    ids = _build(s)
    pid = ids["pid"]
    order = lambda: [r[0] for r in _rows(  # noqa: E731
        s["url"], "SELECT id FROM playlist_item WHERE playlist_id = :p AND board_id IS NULL "
        "ORDER BY position", p=pid)]
    first = order()
    r = _post(s, f"/course/playlists/{pid}/items/{first[1]}/move", direction="up")
    assert r.status_code == 303
    assert order()[:2] == [first[1], first[0]]
    before = _snapshot(s["url"])
    bad = [
        dict(kind="resource", title="No link"),
        dict(kind="resource", title="Bad link", url="javascript:alert(1)"),
        dict(kind="quick_check", title="No standard", questions=QUESTIONS),
        dict(kind="quick_check", title="No questions", standards=[s["std"]["R.1"]]),
        dict(kind="practice", title="Wrong standard", standards=["999999"]),
        dict(kind="sculpture", title="Unknown kind"),
    ]
    for fields in bad:
        r = _post(s, f"/course/playlists/{pid}/items/new", tag="must_do", **fields)
        assert r.status_code in (400, 404), (fields, r.status_code)
    # A cycle: the resource waits on the practice, which waits on the resource.
    r = _post(s, f"/course/playlists/{pid}/items/{ids['resource']}", kind="resource",
              tag="must_do", title="Fraction strips", url="https://example.org/strips",
              prereq_items=[str(ids["practice"])])
    assert r.status_code == 303
    r = _post(s, f"/course/playlists/{pid}/items/{ids['practice']}", kind="practice",
              tag="must_do", title="Practice set", prereq_items=[str(ids["resource"])])
    assert r.status_code == 400 and "wait on each other" in r.get_data(as_text=True)
    assert _rows(s["url"], "SELECT prereq_item_ids FROM playlist_item WHERE id = :i",
                 i=ids["practice"])[0][0] in ([], "[]")
    assert {k: v for k, v in _snapshot(s["url"]).items()} == before
    # The editor page lists every item with keyboard-operable move buttons.
    html = _get(s, f"/course/playlists/{pid}").get_data(as_text=True)
    assert html.count(">Move up<") >= 9
    # Deleting the board takes its options with it.
    _post(s, f"/course/playlists/{pid}/items/{ids['board']}/delete")
    assert _count(s["url"], "playlist_item") == 6


def test_students_cannot_reach_teacher_pages_or_other_courses(school, canvas):
    s = school
    ids = _build(s)
    pid = ids["pid"]
    _post(s, f"/course/playlists/{pid}/publish", published="1")
    before = _snapshot(s["url"])
    for url in (f"/course/playlists/{pid}", f"/course/playlists/{pid}/progress",
                f"/course/playlists/{pid}/export.json", "/course/playlists"):
        assert _get(s, url, "ada").status_code == 403
    assert _post(s, f"/course/playlists/{pid}/publish", "ada",
                 published="0").status_code == 403
    # A student of another course: the playlist does not exist for them.
    other = {"id": "course-9", "label": "SCI", "title": "Science"}
    stranger = launch_as(s["client"], canvas, "student", "s-9", "Mary Jackson",
                   **{LTI + "context": other})
    s["stranger"] = stranger
    assert _get(s, f"/my/playlists/{pid}", "stranger").status_code == 404
    r = _post(s, f"/my/playlists/{pid}/items/{ids['quick']}/check", "stranger",
              **{"q-0": "9", "q-1": "1"})
    assert r.status_code == 404
    # No token on a change: 401; from another site: 403.
    r = s["client"].post(f"/my/playlists/{pid}/target", data={"target_date": "2099-01-01"})
    assert r.status_code == 401
    r = s["client"].post(f"/my/playlists/{pid}/target", headers={"Sec-Fetch-Site":
                                                                 "cross-site"},
                         data={"t": s["ada"], "target_date": "2099-01-01"})
    assert r.status_code == 403
    assert _snapshot(s["url"]) == before


def test_a_quick_check_and_the_path_page_stay_within_their_statement_budget(school):
    """The load benchmark's hottest requests (issue 7): every statement costs
    a worker CPU and a database round trip. A policy or playlist read twice
    in one request shows up here first."""
    s = school
    ids, pid, url = _published_quick_check(s)
    engine = get_engine(s["url"])
    seen: list[str] = []

    def hook(_conn, _cursor, statement, *_args):
        seen.append(statement)

    for request, budget in ((lambda: _post(s, url, "alan", **{"q-0": "9", "q-1": "3/4"}), 22),
                            (lambda: _get(s, f"/my/playlists/{pid}", "alan"), 13)):
        seen.clear()
        sa.event.listen(engine, "before_cursor_execute", hook)
        try:
            assert request().status_code == 200
        finally:
            sa.event.remove(engine, "before_cursor_execute", hook)
        assert len(seen) <= budget, "\n".join(" ".join(q.split())[:100] for q in seen)
