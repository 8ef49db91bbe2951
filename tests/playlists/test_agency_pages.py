"""Goals, reflections and learner profiles through real launches: students
write their own, teachers read and comment, nobody reaches another's rows."""

from __future__ import annotations

import io
from datetime import date, timedelta

import pytest
import sqlalchemy as sa

from lti_tool.db import get_engine
from tests.support.flows import launch_as
from tests.support.platform import LIS, LTI

CSV = "code,title\nR.1,Read closely\nW.1,Argue\n"


def _sql(database_url, query: str, **params) -> list:
    with get_engine(database_url).connect() as conn:
        return conn.execute(sa.text(query), params).all()


def _user(database_url, sub: str) -> int:
    return _sql(database_url, "SELECT id FROM lti_user WHERE sub = :sub", sub=sub)[0][0]


def _count(database_url, table: str) -> int:
    return _sql(database_url, f"SELECT COUNT(*) FROM {table}")[0][0]


@pytest.fixture
def people(app, canvas):
    client = app.test_client()
    return {
        "client": client,
        "teacher": launch_as(client, canvas, "teacher", "t-1", "Grace Hopper"),
        "ada": launch_as(client, canvas, "student", "s-1", "Ada Lovelace"),
        "alan": launch_as(client, canvas, "student", "s-2", "Alan Turing"),
    }


def _elsewhere(client, canvas, role: str, sub: str, name: str) -> str:
    """Someone launched from another course of the same LMS."""
    lis = LIS + ("membership#Instructor" if role == "teacher" else "membership#Learner")
    return launch_as(client, canvas, role, sub, name,
               **{LTI + "context": {"id": "other-course", "title": "Science"},
                  LTI + "roles": [lis]})


def _body(response) -> str:
    return response.get_data(as_text=True)


def test_goal_set_met_and_commented(people, database_url):
    client, teacher, ada = people["client"], people["teacher"], people["ada"]
    imported = client.post("/course/standards", data={
        "t": teacher, "file": (io.BytesIO(CSV.encode()), "standards.csv")},
        content_type="multipart/form-data")
    assert imported.status_code == 200
    w1 = _sql(database_url, "SELECT id FROM standard WHERE code = 'W.1'")[0][0]
    due = (date.today() + timedelta(days=14)).isoformat()
    form = client.get(f"/my/goals?t={ada}")
    assert form.status_code == 200 and 'type="date"' in _body(form) and "W.1" in _body(form)
    added = client.post("/my/goals", data={"t": ada, "text": "Write a <b>strong</b> claim",
                                           "standard_id": str(w1), "due_date": due})
    assert added.status_code == 303, _body(added)[:500]
    page = _body(client.get(added.headers["Location"]))
    assert "Write a &lt;b&gt;strong&lt;/b&gt; claim" in page and "<b>strong" not in page
    assert f"Due {due}" in page and "W.1" in page and "Your goal was added" in page
    goal_id = _sql(database_url, "SELECT id FROM goal")[0][0]

    met = client.post(f"/my/goals/{goal_id}/met", data={"t": ada, "met": "1"})
    assert met.status_code == 303
    assert _sql(database_url, "SELECT met_at FROM goal")[0][0] is not None

    goals = client.get(f"/course/goals?t={teacher}")
    assert goals.status_code == 200
    assert "Ada Lovelace" in _body(goals) and "Alan Turing" in _body(goals)
    assert "strong&lt;/b&gt; claim" in _body(goals)
    commented = client.post("/course/goals", data={
        "t": teacher, "goal_id": str(goal_id), "comment": "Great evidence & reasoning."})
    assert commented.status_code == 303 and commented.headers["Location"].endswith(
        f"#goal-{goal_id}")
    mine = _body(client.get(f"/my/goals?t={ada}"))
    assert "Great evidence &amp; reasoning." in mine and "Grace Hopper" in mine
    assert "Reopen" in mine
    reopened = client.post(f"/my/goals/{goal_id}/met", data={"t": ada, "met": "0"})
    assert reopened.status_code == 303
    assert _sql(database_url, "SELECT met_at FROM goal")[0][0] is None


def test_learner_profile_is_the_students_own(people, canvas, database_url):
    client, teacher, ada, alan = (people[k] for k in ("client", "teacher", "ada", "alan"))
    assert client.get(f"/my/profile?t={ada}").status_code == 200
    saved = client.post("/my/profile", data={"t": ada, "strengths": "Maps <i>and</i> drawing",
                                             "show_learning": "A poster\nor a talk"})
    assert saved.status_code == 303
    assert "Maps &lt;i&gt;and&lt;/i&gt; drawing" in _body(client.get(saved.headers["Location"]))
    ada_id = _user(database_url, "s-1")
    seen = client.get(f"/course/students/{ada_id}/profile?t={teacher}")
    assert seen.status_code == 200
    assert "Maps &lt;i&gt;and&lt;/i&gt; drawing" in _body(seen)
    assert "A poster<br>or a talk" in _body(seen)

    before = _sql(database_url, "SELECT strengths, updated_at FROM learner_profile")
    as_teacher = client.post("/my/profile", data={"t": teacher, "strengths": "Teacher text"})
    assert as_teacher.status_code == 403 and "Only the student" in _body(as_teacher)
    assert client.get(f"/my/profile?t={teacher}").status_code == 403
    assert _sql(database_url, "SELECT strengths, updated_at FROM learner_profile") == before
    assert _count(database_url, "learner_profile") == 1

    assert client.get(f"/course/students/{ada_id}/profile?t={alan}").status_code == 403
    assert "Maps" not in _body(client.get(f"/my/profile?t={alan}"))
    other_teacher = _elsewhere(client, canvas, "teacher", "t-9", "Katherine Johnson")
    assert client.get(f"/course/students/{ada_id}/profile?t={other_teacher}"
                      ).status_code == 404
    teacher_id = _user(database_url, "t-1")
    assert client.get(f"/course/students/{teacher_id}/profile?t={teacher}").status_code == 404


def test_another_students_goal_is_out_of_reach(people, canvas, database_url):
    client, ada, alan = people["client"], people["ada"], people["alan"]
    client.post("/my/goals", data={"t": ada, "text": "Read daily"})
    goal_id = _sql(database_url, "SELECT id FROM goal")[0][0]
    assert client.post(f"/my/goals/{goal_id}/met", data={"t": alan, "met": "1"}
                       ).status_code == 403
    stranger = _elsewhere(client, canvas, "student", "s-9", "Mary Jackson")
    assert client.post(f"/my/goals/{goal_id}/met", data={"t": stranger, "met": "1"}
                       ).status_code == 404
    other_teacher = _elsewhere(client, canvas, "teacher", "t-9", "Katherine Johnson")
    commented = client.post("/course/goals", data={"t": other_teacher, "goal_id": goal_id,
                                                   "comment": "Hello"})
    assert commented.status_code == 404
    assert "Read daily" not in _body(client.get(f"/my/goals?t={alan}"))
    assert _sql(database_url, "SELECT met_at FROM goal")[0][0] is None
    assert _count(database_url, "goal_comment") == 0


def test_reflection_requested_by_teacher_and_answered(people, database_url):
    client, teacher, ada, alan = (people[k] for k in ("client", "teacher", "ada", "alan"))
    page = _body(client.get(f"/course/reflections?t={teacher}"))
    assert "Ada Lovelace" in page and 'name="everyone"' in page
    asked = client.post("/course/reflections", data={
        "t": teacher, "prompt": "What helped you <most>?", "everyone": "1"})
    assert asked.status_code == 303
    assert _count(database_url, "reflection") == 2
    mine = _body(client.get(f"/my/reflections?t={ada}"))
    assert "What helped you &lt;most&gt;?" in mine
    ada_request = _sql(database_url, "SELECT r.id FROM reflection r JOIN lti_user u "
                                     "ON u.id = r.student_id WHERE u.sub = 's-1'")[0][0]
    refused = client.post("/my/reflections", data={"t": alan, "reflection_id": ada_request,
                                                   "text": "Answering for Ada"})
    assert refused.status_code == 403
    answered = client.post("/my/reflections", data={
        "t": ada, "reflection_id": ada_request, "text": "Worked examples."})
    assert answered.status_code == 303
    assert "Worked examples." in _body(client.get(answered.headers["Location"]))
    answers = _body(client.get(f"/course/reflections?t={teacher}"))
    assert "Worked examples." in answers and "Not answered yet" in answers
    assert "Answering for Ada" not in answers

    # A checkpoint of a playlist of this course: reflect after it.
    course_id = _sql(database_url, "SELECT course_id FROM reflection")[0][0]
    with get_engine(database_url).begin() as conn:
        playlist = conn.execute(sa.text(
            "INSERT INTO playlist (course_id, title, description, standard_ids, published, "
            "position, created_at, updated_at) VALUES (:c, 'Fractions', '', '[]', true, 0, "
            "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP) RETURNING id"), {"c": course_id}).scalar()
        item = conn.execute(sa.text(
            "INSERT INTO playlist_item (playlist_id, position, kind, tag, title, body, "
            "embeddable, standard_ids, prereq_standard_ids, prereq_item_ids, min_choices, "
            "questions, updated_at) VALUES (:p, 0, 'checkpoint', 'must_do', 'Checkpoint A', "
            "'', false, '[]', '[]', '[]', 1, '[]', CURRENT_TIMESTAMP) RETURNING id"),
            {"p": playlist}).scalar()
    form = client.get(f"/my/reflections?item_id={item}&t={ada}")
    assert form.status_code == 200 and "Reflect on “Checkpoint A”" in _body(form)
    after = client.post("/my/reflections", data={"t": ada, "item_id": str(item),
                                                 "text": "Fractions need common parts."})
    assert after.status_code == 303
    assert "After “Checkpoint A”" in _body(client.get(after.headers["Location"]))


def test_bad_input_writes_nothing_and_says_why(people, database_url):
    client, teacher, ada = people["client"], people["teacher"], people["ada"]
    past = (date.today() - timedelta(days=3)).isoformat()
    cases = [
        ("/my/goals", {"t": ada, "text": "  "}, "Write your goal.", "text"),
        ("/my/goals", {"t": ada, "text": "Read", "due_date": past}, "The date has passed",
         "due_date"),
        ("/my/goals", {"t": ada, "text": "x" * 10_000}, "500 characters", "text"),
        ("/my/profile", {"t": ada, "needs": "x" * 10_000}, "3,000 characters", "needs"),
        ("/my/reflections", {"t": ada, "item_id": "", "reflection_id": ""},
         "Answer one request", None),
        ("/course/reflections", {"t": teacher, "prompt": "Why?"}, "at least one student",
         "students"),
        ("/course/reflections", {"t": teacher, "prompt": "q" * 10_000, "everyone": "1"},
         "500 characters", "prompt"),
    ]
    for url, data, message, field in cases:
        response = client.post(url, data=data)
        body = _body(response)
        assert response.status_code == 400, (url, data.keys(), body[:300])
        assert message in body, (url, message)
        if field:
            assert f'id="{field}-error"' in body and f'{field}-error"' in body.split(
                f'id="{field}-error"')[0], field  # the field points at its message
    for table in ("goal", "learner_profile", "reflection"):
        assert _count(database_url, table) == 0
    client.post("/course/reflections", data={"t": teacher, "prompt": "Why?", "everyone": "1"})
    rid = _sql(database_url, "SELECT MIN(id) FROM reflection")[0][0]
    ada_rid = _sql(database_url, "SELECT r.id FROM reflection r JOIN lti_user u "
                                 "ON u.id = r.student_id WHERE u.sub = 's-1'")[0][0]
    too_long = client.post("/my/reflections", data={"t": ada, "reflection_id": ada_rid,
                                                    "text": "r" * 10_000})
    assert too_long.status_code == 400 and "3,000 characters" in _body(too_long)
    assert f'aria-describedby="limit-hint text-{ada_rid}-error"' in _body(too_long)
    assert _sql(database_url, "SELECT COUNT(*) FROM reflection WHERE answered_at IS NOT NULL"
                )[0][0] == 0
    assert rid is not None


def test_changes_need_the_token_and_the_same_site(people, database_url):
    client, ada = people["client"], people["ada"]
    # The session cookie alone (what a forged cross-site form carries) is not enough.
    assert client.post("/my/goals", data={"text": "Forged"}).status_code == 401
    assert client.post("/my/profile", data={"strengths": "Forged"}).status_code == 401
    cross = client.post("/my/goals", data={"t": ada, "text": "Forged"},
                        headers={"Sec-Fetch-Site": "cross-site"})
    assert cross.status_code == 403
    assert _count(database_url, "goal") == 0 and _count(database_url, "learner_profile") == 0
    assert client.get(f"/course/goals?t={ada}").status_code == 403
    assert client.get(f"/course/reflections?t={ada}").status_code == 403


def test_goals_panel_for_the_playlist_page(app, people, database_url):
    from types import SimpleNamespace

    from flask import render_template

    from lti_tool.db import session_scope
    from lti_tool.playlists import agency

    client, ada, teacher = people["client"], people["ada"], people["teacher"]
    for text in ("Finish <the> fractions playlist", "Read daily"):
        client.post("/my/goals", data={"t": ada, "text": text})
    client.post("/course/reflections", data={"t": teacher, "prompt": "How?", "everyone": "1"})
    met = _sql(database_url, "SELECT MAX(id) FROM goal")[0][0]
    client.post(f"/my/goals/{met}/met", data={"t": ada, "met": "1"})
    course_id = _sql(database_url, "SELECT course_id FROM goal")[0][0]
    ada_id = _user(database_url, "s-1")
    with session_scope(database_url) as s, app.test_request_context():
        html = render_template(
            "playlists/_goals_panel.html", current=SimpleNamespace(token="tok"),
            goals=agency.goals_for(s, course_id, ada_id),
            reflection_requests=agency.open_reflection_requests(s, course_id, ada_id))
    assert "Finish &lt;the&gt; fractions playlist" in html and "Read daily" not in html
    assert "1 goal met" in html and "/my/goals?t=tok" in html
    assert "asked you 1 question" in html and "/my/reflections?t=tok" in html
    home = _body(client.get(f"/home?t={ada}"))
    assert "Finish &lt;the&gt; fractions playlist" in home
