"""The gradebook pages through real launches: teachers import standards,
record evidence, see the gradebook; students see only their own mastery."""

from __future__ import annotations

import io
import re

import pytest
import sqlalchemy as sa

from lti_tool.db import get_engine
from tests.support.flows import launch, launch_as, session_token
from tests.support.platform import LIS, LTI

CSV = ("code,title,description,group\n"
       "R.1,Read closely,Cite evidence from the text,Reading\n"
       "R.2,Main idea,Find the central idea,Reading\n"
       "W.1,Argue,Write an argument,Writing\n")


@pytest.fixture
def people(app, canvas):
    """A teacher and two students of one Canvas course, each with a token."""
    client = app.test_client()
    return {
        "client": client,
        "teacher": launch_as(client, canvas, "teacher", "t-1", "Grace Hopper"),
        "ada": launch_as(client, canvas, "student", "s-1", "Ada Lovelace"),
        "alan": launch_as(client, canvas, "student", "s-2", "Alan Turing"),
    }


def _import(client, token, data=CSV, name="standards.csv"):
    return client.post("/course/standards", data={
        "t": token, "file": (io.BytesIO(data.encode()), name)},
        content_type="multipart/form-data")


def _ids(database_url, table, column="id", where=""):
    with get_engine(database_url).connect() as conn:
        return conn.execute(sa.text(f"SELECT {column} FROM {table} {where} ORDER BY id")) \
            .scalars().all()


def test_teacher_imports_records_and_sees_the_gradebook(people, database_url):
    client, teacher = people["client"], people["teacher"]
    response = _import(client, teacher)
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    assert "3 standard(s) added" in response.get_data(as_text=True)
    r1 = _ids(database_url, "standard", where="WHERE code = 'R.1'")[0]
    students = dict(zip(["ada", "alan"], _ids(database_url, "lti_user",
                                              where="WHERE sub LIKE 's-%'"), strict=True))
    for day, (ada, alan) in enumerate([("2", "1"), ("3", "2"), ("4", "")], start=1):
        saved = client.post(f"/course/standards/{r1}/evidence", data={
            "t": teacher, "assessed_at": f"2026-09-0{day}", "source": "checkpoint",
            f"score-{students['ada']}": ada, f"score-{students['alan']}": alan})
        assert saved.status_code == 200, saved.get_data(as_text=True)[:500]
    page = client.get(f"/course/gradebook?t={teacher}")
    body = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "Ada Lovelace" in body and "Alan Turing" in body
    # Ada: 2, 3, 4 decaying at 65% -> 3.53 (Mastery); Alan: 1, 2 -> 1.65 (Below Mastery).
    assert re.search(r"Mastery <span class=\"value\">3.53", body)
    assert re.search(r"Below Mastery <span class=\"value\">1.65", body)
    assert "<svg" in body and "No evidence" in body
    csv_export = client.get(f"/course/gradebook.csv?t={teacher}").get_data(as_text=True)
    assert "R.1 value,R.1 level" in csv_export and "3.53,Mastery" in csv_export

    detail = client.get(f"/course/students/{students['ada']}/standards/{r1}?t={teacher}")
    text = detail.get_data(as_text=True)
    assert detail.status_code == 200 and "<svg" in text and "3.53" in text
    assert "65%" in text  # the calculation explained with its parameters

    changed = client.post("/course/settings", data={"t": teacher, "method": "highest",
                                                   "weight": "0.65", "n": "3",
                                                   "mastery_points": "3"})
    assert changed.status_code == 200 and "recalculated" in changed.get_data(as_text=True)
    body = client.get(f"/course/gradebook?t={teacher}").get_data(as_text=True)
    assert re.search(r"Exceeds Mastery <span class=\"value\">4", body)


def test_bad_csv_imports_nothing_and_says_why(people, database_url):
    response = _import(people["client"], people["teacher"],
                       "code,title\nR.1,Read\nR.1,Again\n")
    assert response.status_code == 400
    assert "line 3" in response.get_data(as_text=True)
    assert _ids(database_url, "standard") == []


def test_bad_scores_save_nothing(people, database_url):
    client, teacher = people["client"], people["teacher"]
    _import(client, teacher)
    r1 = _ids(database_url, "standard")[0]
    ada, alan = _ids(database_url, "lti_user", where="WHERE sub LIKE 's-%'")
    response = client.post(f"/course/standards/{r1}/evidence", data={
        "t": teacher, "source": "checkpoint", f"score-{ada}": "3", f"score-{alan}": "9"})
    assert response.status_code == 400
    assert "outside" in response.get_data(as_text=True)
    assert _ids(database_url, "evidence") == []


def test_override_needs_a_reason(people, database_url):
    client, teacher = people["client"], people["teacher"]
    _import(client, teacher)
    r1 = _ids(database_url, "standard")[0]
    ada = _ids(database_url, "lti_user", where="WHERE sub = 's-1'")[0]
    response = client.post(f"/course/students/{ada}/standards/{r1}", data={
        "t": teacher, "action": "override", "value": "3", "note": ""})
    assert response.status_code == 400 and "note is required" in response.get_data(as_text=True)
    assert _ids(database_url, "mastery_override") == []


def test_student_sees_only_their_own_mastery(people, database_url):
    client, teacher = people["client"], people["teacher"]
    _import(client, teacher)
    r1 = _ids(database_url, "standard")[0]
    ada, alan = _ids(database_url, "lti_user", where="WHERE sub LIKE 's-%'")
    client.post(f"/course/standards/{r1}/evidence", data={
        "t": teacher, "source": "checkpoint", f"score-{ada}": "2", f"score-{alan}": "4"})
    mine = client.get(f"/my/mastery?t={people['ada']}").get_data(as_text=True)
    assert "R.1" in mine and "Near Mastery" in mine and "Exceeds" not in mine
    detail = client.get(f"/my/mastery/{r1}?t={people['ada']}").get_data(as_text=True)
    assert "one more score" in detail.lower() or "more score" in detail.lower()
    assert "Alan" not in detail
    for url in (f"/course/gradebook?t={people['ada']}",
                f"/course/students/{alan}/standards/{r1}?t={people['ada']}",
                f"/course/gradebook.csv?t={people['ada']}"):
        assert client.get(url).status_code == 403


def test_reassessment_request_reaches_the_teacher(people, database_url):
    client, teacher = people["client"], people["teacher"]
    _import(client, teacher)
    r1 = _ids(database_url, "standard")[0]
    short = client.post(f"/my/mastery/{r1}", data={"t": people["ada"], "reflection": "x"})
    assert short.status_code == 400
    sent = client.post(f"/my/mastery/{r1}", data={
        "t": people["ada"], "reflection": "I practised finding evidence in three texts."})
    assert sent.status_code == 200 and "sent to your teacher" in sent.get_data(as_text=True)
    queue = client.get(f"/course/reassessments?t={teacher}").get_data(as_text=True)
    assert "three texts" in queue and "Ada Lovelace" in queue
    request_id = _ids(database_url, "reassessment_request")[0]
    decided = client.post("/course/reassessments", data={
        "t": teacher, "request_id": request_id, "decision": "accepted"})
    assert decided.status_code == 303
    assert _ids(database_url, "reassessment_request", "status") == ["accepted"]


def test_changes_need_the_token_in_the_form(people, database_url):
    client, teacher = people["client"], people["teacher"]
    # The session cookie alone (what a cross-site form would carry) is not enough.
    response = client.post("/course/standards", data={"code": "X.1", "title": "Forged"})
    assert response.status_code == 401
    cross = client.post("/course/standards", data={"t": teacher, "code": "X.1",
                                                   "title": "Forged"},
                        headers={"Sec-Fetch-Site": "cross-site"})
    assert cross.status_code == 403
    assert _ids(database_url, "standard") == []


def test_other_courses_standards_are_not_found(people, app, canvas, database_url):
    client, teacher = people["client"], people["teacher"]
    response, _ = launch(client, canvas, role="teacher", sub="t-9", name="Katherine Johnson",
                         **{LTI + "context": {"id": "other-course", "title": "Science"},
                            LTI + "roles": [LIS + "membership#Instructor"]})
    other = session_token(response)
    _import(client, other, "code,title\nS.1,Science standard\n")
    s1 = _ids(database_url, "standard", where="WHERE code = 'S.1'")[0]
    assert client.get(f"/course/standards/{s1}/evidence?t={teacher}").status_code == 404


def test_evidence_csv_import_is_all_or_nothing(people, database_url):
    client, teacher = people["client"], people["teacher"]
    _import(client, teacher)
    bad = ("student,standard,score,date\n"
           "Ada Lovelace,R.1,3,2026-09-01\n"
           "Nobody Here,R.1,3,2026-09-01\n"
           "s-2,R.9,7,yesterday\n")
    response = client.post("/course/evidence/import", data={
        "t": teacher, "file": (io.BytesIO(bad.encode()), "evidence.csv")},
        content_type="multipart/form-data")
    body = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "line 3" in body and "line 4" in body and "R.9" in body
    assert _ids(database_url, "evidence") == []
    good = ("student,standard,score,date\n"
            "Ada Lovelace,R.1,2,2026-09-01\n"
            "s-1,R.1,4,2026-09-02\n"
            "ALAN TURING,W.1,3,2026-09-03\n")
    response = client.post("/course/evidence/import", data={
        "t": teacher, "file": (io.BytesIO(good.encode()), "evidence.csv")},
        content_type="multipart/form-data")
    assert response.status_code == 200 and "3 piece(s)" in response.get_data(as_text=True)
    values = _ids(database_url, "rollup", "value")
    assert sorted(values) == [3.0, 3.3]  # Ada R.1: 2 then 4 -> 3.3; Alan W.1: 3


def test_regroup_and_per_standard_method(people, database_url):
    client, teacher = people["client"], people["teacher"]
    _import(client, teacher)
    r1 = _ids(database_url, "standard")[0]
    ada, alan = _ids(database_url, "lti_user", where="WHERE sub LIKE 's-%'")
    for score_ada, score_alan in (("4", "1"), ("2", "2")):
        client.post(f"/course/standards/{r1}/evidence", data={
            "t": teacher, "source": "checkpoint", f"score-{ada}": score_ada,
            f"score-{alan}": score_alan})
    groups = client.get(f"/course/standards/{r1}/groups?t={teacher}").get_data(as_text=True)
    assert groups.index("Near Mastery") < groups.index("Ada Lovelace")
    csv_groups = client.get(f"/course/standards/{r1}/groups?format=csv&t={teacher}")
    assert "Below Mastery,Alan Turing" in csv_groups.get_data(as_text=True)
    response = client.post(f"/course/standards/{r1}/method", data={"t": teacher,
                                                                  "method": "highest"})
    assert response.status_code == 303
    assert sorted(_ids(database_url, "rollup", "value")) == [2.0, 4.0]
    bad = client.post(f"/course/standards/{r1}/method", data={"t": teacher,
                                                             "method": "median"})
    assert bad.status_code == 400


def test_teacher_edits_a_standard_and_the_scale(people, database_url):
    client, teacher = people["client"], people["teacher"]
    _import(client, teacher)
    r1 = _ids(database_url, "standard")[0]
    form = client.get(f"/course/standards?edit={r1}&t={teacher}").get_data(as_text=True)
    assert "Edit R.1" in form and 'value="Read closely"' in form
    client.post("/course/standards", data={"t": teacher, "code": "R.1",
                                           "title": "Read very closely", "group": "Reading"})
    assert _ids(database_url, "standard", "title", "WHERE code = 'R.1'") == \
        ["Read very closely"]
    levels = {"t": teacher, "form": "scale", "count": "3",
              "label-0": "Got it", "points-0": "3", "colour-0": "#127a3a", "pattern-0": "solid",
              "label-1": "Getting there", "points-1": "2", "colour-1": "#ffe066",
              "pattern-1": "dots",
              "label-2": "Not yet", "points-2": "1", "colour-2": "#b3261e",
              "pattern-2": "crosshatch"}
    saved = client.post("/course/settings", data=levels)
    assert saved.status_code == 200 and "Scale saved" in saved.get_data(as_text=True)
    assert _ids(database_url, "scale_level", "label") == ["Got it", "Getting there", "Not yet"]
    bad = client.post("/course/settings", data={**levels, "pattern-1": "none",
                                                 "points-2": "2"})
    body = bad.get_data(as_text=True)
    assert bad.status_code == 400 and "pattern" in body and "already has 2 points" in body
    assert _ids(database_url, "scale_level", "label") == ["Got it", "Getting there", "Not yet"]


CASE_PACKAGE = """{
 "CFDocument": {"identifier": "doc-1", "title": "Grade 5 Math"},
 "CFItems": [
  {"identifier": "strand-nf", "fullStatement": "Number and Operations: Fractions"},
  {"identifier": "nf-1", "humanCodingScheme": "5.NF.1",
   "fullStatement": "Add and subtract fractions with unlike denominators."},
  {"identifier": "nf-2", "humanCodingScheme": "5.NF.2", "abbreviatedStatement": "Word problems",
   "fullStatement": "Solve word problems involving addition and subtraction of fractions."}
 ],
 "CFAssociations": [
  {"associationType": "isChildOf", "originNodeURI": {"identifier": "strand-nf"},
   "destinationNodeURI": {"identifier": "doc-1"}},
  {"associationType": "isChildOf", "originNodeURI": {"identifier": "nf-1"},
   "destinationNodeURI": {"identifier": "strand-nf"}, "sequenceNumber": 1},
  {"associationType": "isChildOf", "originNodeURI": {"identifier": "nf-2"},
   "destinationNodeURI": {"identifier": "strand-nf"}, "sequenceNumber": 2}
 ]
}"""


def test_case_package_import(people, database_url):
    response = _import(people["client"], people["teacher"], CASE_PACKAGE, "framework.json")
    body = response.get_data(as_text=True)
    assert response.status_code == 200, body[:600]
    assert "2 standard(s) added" in body and "Number and Operations: Fractions" in body
    assert _ids(database_url, "standard", "code") == ["5.NF.1", "5.NF.2"]
    assert _ids(database_url, "standard", "title", "WHERE code = '5.NF.2'") == ["Word problems"]
    broken = _import(people["client"], people["teacher"], '{"CFItems": [', "broken.json")
    assert broken.status_code == 400
