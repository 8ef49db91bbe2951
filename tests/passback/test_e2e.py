"""Grade passback end to end, over real HTTP, in both sandbox flavours.

The tool is served on a threaded werkzeug server with the embedded mode's
inline passback thread (worker.start_inline: the real delivery code); the
sandbox LMS (test controls on) on another port. A requests-driven browser
(tests.support.lms_driver) signs into the sandbox as seeded people and
follows every auto-submitted form between the two sites.

A teacher builds standards and a playlist in Pathwise, places it through deep
linking, turns passback on, records evidence, and the sandbox's gradebook
shows the expected score within seconds; per-standard columns; roster sync;
a learner's deep-linking launch is refused; a link added by hand asks the
teacher once which playlist it shows."""

from __future__ import annotations

import html
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lti_tool.db import dispose_engines
from lti_tool.passback.platform_client import reset_clients
from tests.support.lms_driver import (
    DL_PLACEMENT,
    Stack,
    Tool,
    build_playlist,
    build_stack,
    db_rows,
    deep_link,
    parse,
    setup_course,
    teacher_picker,
    wait_for,
)

DELIVERY_TIMEOUT = 10.0


def student_pk(stack: Stack, sandbox_user: int) -> int:
    (row,) = db_rows(stack, "SELECT id FROM lti_user WHERE sub = :sub",
                     sub=stack.sub_of(sandbox_user))
    return row[0]


def line_item(book: dict, **match) -> dict | None:
    for item in book["line_items"]:
        if all(item.get(k) == v for k, v in match.items()):
            return item
    return None


def result_of(item: dict | None, sub: str) -> dict | None:
    if item is None:
        return None
    return next((r for r in item["results"] if r["userId"] == sub), None)


def hand_added_link(stack: Stack) -> int:
    """An activity a teacher added by hand: no custom parameter, no column.
    Moodle's seeded activity 5 is one; in Canvas one is made as a module item."""
    if stack.flavor == "moodle":
        return 5
    conn = stack.sandbox_db()
    try:
        with conn:
            cur = conn.execute(
                "INSERT INTO resource_links (uuid, course_id, registration_id, title, "
                "description, url, custom, created_at) VALUES (lower(hex(randomblob(16))), ?, "
                "87, 'Pathwise (added by hand)', '', NULL, '{}', strftime('%s','now'))",
                (stack.course_id,))
        return int(cur.lastrowid)
    finally:
        conn.close()


@pytest.fixture(params=["canvas", "moodle"])
def stack(request, tmp_path: Path) -> Iterator[Stack]:
    made = build_stack(tmp_path / request.param, request.param)
    try:
        yield made
    finally:
        made.close()
        reset_clients()
        dispose_engines()


# -- the story ------------------------------------------------------------------------------
def test_deep_link_passback_per_standard_roster(stack: Stack) -> None:
    browser, picker_tool = teacher_picker(stack)
    playlist_id, std = build_playlist(stack, picker_tool)

    # 1. Deep linking: a new link in the LMS, with a gradebook column out of 20.
    link_id = deep_link(stack, browser, picker_tool, playlist_id, points="20")
    book = stack.gradebook()
    own = line_item(book, resourceId=f"pathwise-playlist-{playlist_id}")
    assert own is not None, book
    assert own["tag"] == "pathwise-mastery" and own["scoreMaximum"] == 20.0
    assert own["label"] == "Fractions unit" and own["resourceLinkId"] is not None

    # 2. The teacher opens the new link: its LMS grades page.
    page = browser.open_link(stack.course_id, link_id)
    assert page.status == 200 and "/course/placements/" in page.url, page.url
    assert "LMS grades: Fractions unit" in html.unescape(page.text)
    placement_id = int(re.search(r"/course/placements/(\d+)", page.url).group(1))
    teacher = Tool(stack.tool_url, page.token)

    # A student opens it too (lands on the playlist) and is now known to Pathwise.
    learner_id = stack.student_ids[0]
    learner = stack.browser(learner_id).open_link(stack.course_id, link_id)
    assert learner.status == 200 and f"/my/playlists/{playlist_id}" in learner.url, learner.url
    learner_pk, learner_sub = student_pk(stack, learner_id), stack.sub_of(learner_id)

    # 3. Passback on, as the page offers it: share of standards at mastery, out
    #    of the points the column was given when it was placed.
    settings = next(f for f in parse(page.text).forms if "score_maximum" in f.fields)
    assert settings.fields["rule"] == "share" and settings.fields["score_maximum"] == "20"
    assert "Save and send scores to the LMS" in page.text
    r = teacher.post(f"/course/placements/{placement_id}",
                     {**settings.fields, "action": "enable"})
    assert r.status_code == 303, r.text[:800]

    # 4. Evidence: F.1 at mastery (3), F.2 below (2) → 1 of 2 → 10 of 20.
    for code, score in (("F.1", "3"), ("F.2", "2")):
        r = teacher.post(f"/course/standards/{std[code]}/evidence",
                         {f"score-{learner_pk}": score, "source": "checkpoint"})
        assert r.status_code == 200, r.text[:500]
    started = time.monotonic()

    def delivered():
        res = result_of(line_item(stack.gradebook(), id=own["id"]), learner_sub)
        # The second evidence keeps the score at 10 but changes the comment.
        return res if res and res["scoreGiven"] == 10.0 and "F.2 (2)" in res["comment"] \
            else None

    res = wait_for(delivered, DELIVERY_TIMEOUT)
    assert time.monotonic() - started < DELIVERY_TIMEOUT
    assert res["scoreMaximum"] == 20.0 and res["grade"] == 10.0
    assert res["gradingProgress"] == "FullyGraded"
    assert res["comment"].startswith("Mastered 1 of 2 standards: F.1.")
    assert "F.2 (2)" in res["comment"]

    # 5. Per-standard: one column per standard, scored on the mastery scale.
    r = teacher.post(f"/course/placements/{placement_id}",
                     {"action": "save", "rule": "per_standard", "score_maximum": "20"})
    assert r.status_code == 303, r.text[:800]

    def per_standard():
        book = stack.gradebook()
        got = {}
        for code in ("F.1", "F.2"):
            item = line_item(book, resourceId=f"pathwise-standard-{std[code]}")
            res = result_of(item, learner_sub)
            if res is None:
                return None
            got[code] = (item, res)
        return got

    columns = wait_for(per_standard)
    for code, expected in (("F.1", 3.0), ("F.2", 2.0)):
        item, res = columns[code]
        assert item["label"] == f"Fractions unit: {code}"
        assert item["scoreMaximum"] == 4.0
        assert res["scoreGiven"] == expected and res["scoreMaximum"] == 4.0
        assert res["gradingProgress"] == "FullyGraded"
        assert res["comment"].startswith(f"{code}: {expected:g} of 4")

    # 6. Roster. The teacher's launch asked for a sync, which the worker did:
    #    students who never opened Pathwise are in the gradebook.
    never_launched = ("Kenji Watanabe", "Amara Okafor", "Liam O'Connor", "Aiyana Redcloud")

    def gradebook_page() -> str:
        page = teacher.get("/course/gradebook")
        assert page.status_code == 200
        return html.unescape(page.text)

    wait_for(lambda: all(name in gradebook_page() for name in never_launched))
    # On demand, following every page (Canvas pages by 50): 50 more students
    # enrol and one leaves the course in the LMS.
    extra = stack.add_students(50)
    leaver = stack.user_id("praghunathan")
    conn = stack.sandbox_db()
    with conn:
        conn.execute("DELETE FROM enrollments WHERE user_id = ?", (leaver,))
    conn.close()
    stack.clear_requests()
    r = teacher.post("/course/roster/sync")
    assert r.status_code == 303 and "roster=55" in r.headers["Location"], r.headers
    text = gradebook_page()
    for name in (*never_launched, f"Student {extra[0]}", f"Student {extra[-1]}"):
        assert name in text, f"{name} missing from the gradebook"
    assert "Priya Raghunathan" not in text  # marked inactive (not deleted)
    (active,) = db_rows(stack, "SELECT e.active FROM enrollment e JOIN lti_user u "
                        "ON u.id = e.user_id WHERE u.sub = :sub", sub=stack.sub_of(leaver))
    assert not active[0]
    pages = [e for e in stack.service_requests() if e["method"] == "GET"
             and ("names_and_roles" in e["path"] or "memberships" in e["path"])]
    assert len(pages) == (2 if stack.flavor == "canvas" else 1), pages

    # Nothing was stored twice with different payloads.
    assert_no_conflicting_scores(stack)


def test_students_who_join_later_get_their_score(stack: Stack) -> None:
    """Sending on (share rule): the class got its scores then. A student who
    joins afterwards gets theirs too, whether their first launch or a roster
    sync brings them in; one who has not started has mastered nothing yet."""
    course = setup_course(stack)
    by_launch, by_roster = stack.add_students(2)
    opened = stack.browser(by_launch).open_link(stack.course_id, course.link_id)
    assert opened.status == 200, opened.url
    r = course.teacher.post("/course/roster/sync")
    assert r.status_code == 303, r.text[:500]
    newcomers = {stack.sub_of(by_launch), stack.sub_of(by_roster)}

    def scored() -> dict | None:
        results = course.results()
        return results if newcomers <= set(results) else None

    results = wait_for(scored, DELIVERY_TIMEOUT)
    for sub in newcomers:
        assert results[sub]["scoreGiven"] == 0.0, results[sub]
        assert results[sub]["comment"].startswith("Mastered 0 of 2 standards"), results[sub]
    # One row each: the launch that enrolled one is not counted again by the sync.
    rows = db_rows(stack, "SELECT o.user_sub, COUNT(*) FROM score_outbox o WHERE "
                   "o.placement_id = :p GROUP BY o.user_sub", p=course.placement_id)
    assert {sub: n for sub, n in rows if sub in newcomers} == dict.fromkeys(newcomers, 1)


def assert_no_conflicting_scores(stack: Stack) -> None:
    seen: dict[tuple, dict] = {}
    for entry in stack.service_requests("/scores"):
        score = entry.get("score")
        if entry["method"] != "POST" or not score:
            continue
        key = (entry["path"], score["userId"], score["timestamp"])
        assert seen.setdefault(key, score) == score, f"{key} sent with two payloads"


def test_learner_cannot_deep_link(stack: Stack) -> None:
    from lti_tool.sandbox.claims import DEEP_LINKING_REQUEST
    from lti_tool.sandbox.oidc import create_launch

    student = stack.student_ids[0]
    browser = stack.browser(student)
    # The sandbox's own page does not offer it to a student...
    refused = browser.get(f"/courses/{stack.course_id}/launch/deep_link/"
                          f"{DL_PLACEMENT[stack.flavor]}")
    assert refused.status_code == 403
    # ...so the LMS is made to send a learner's deep-linking request anyway.
    conn = stack.sandbox_db()
    try:
        with stack.sandbox_app.app_context():
            launch = create_launch(stack.sandbox_app.extensions["lti_sandbox"], conn,
                                   user_id=student, course_id=stack.course_id,
                                   message_type=DEEP_LINKING_REQUEST,
                                   placement=DL_PLACEMENT[stack.flavor])
    finally:
        conn.close()
    page = browser.open_launch(launch["id"])
    assert page.status == 403, page.text[:500]
    assert 'data-error-code="DEEP_LINK_NOT_ALLOWED"' in page.text
    assert "Only teachers can add Pathwise content" in page.text
    assert page.token is None
    assert db_rows(stack, "SELECT COUNT(*) FROM tool_session")[0][0] == 0


def test_hand_added_link_asks_teacher_once(stack: Stack) -> None:
    browser, picker = teacher_picker(stack)
    playlist_id, std = build_playlist(stack, picker)
    link_id = hand_added_link(stack)

    page = browser.open_link(stack.course_id, link_id)
    assert page.status == 200 and "/home" in page.url, page.url
    assert "Which playlist does this activity show?" in page.text
    teacher = Tool(stack.tool_url, page.token)
    r = teacher.post("/course/link/bind", {"playlist_id": str(playlist_id)})
    assert r.status_code == 303 and "/course/placements/" in r.headers["Location"]
    placement_id = int(re.search(r"/course/placements/(\d+)", r.headers["Location"]).group(1))

    # Asked once: the next launch of the link goes straight to its placement.
    again = browser.open_link(stack.course_id, link_id)
    assert f"/course/placements/{placement_id}" in again.url, again.url
    assert "Which playlist" not in again.text
    # A student opening it lands on the playlist.
    student = stack.browser(stack.student_ids[1]).open_link(stack.course_id, link_id)
    assert f"/my/playlists/{playlist_id}" in student.url, student.url

    # Passback on a hand-added link: Pathwise makes the column itself (AGS).
    teacher = Tool(stack.tool_url, again.token)
    r = teacher.post(f"/course/placements/{placement_id}",
                     {"action": "enable", "rule": "share", "score_maximum": "10"})
    assert r.status_code == 303, r.text[:800]
    item = line_item(stack.gradebook(), resourceId=f"pathwise-playlist-{playlist_id}")
    assert item is not None and item["scoreMaximum"] == 10.0
    sub = stack.sub_of(stack.student_ids[1])
    pk = student_pk(stack, stack.student_ids[1])
    r = teacher.post(f"/course/standards/{std['F.1']}/evidence", {f"score-{pk}": "4"})
    assert r.status_code == 200
    res = wait_for(lambda: (lambda x: x if x and x["scoreGiven"] == 5.0 else None)(
        result_of(line_item(stack.gradebook(), id=item["id"]), sub)))
    assert res["scoreMaximum"] == 10.0 and res["gradingProgress"] == "FullyGraded"
