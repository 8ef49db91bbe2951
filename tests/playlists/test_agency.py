"""Goals, reflections and learner profiles through the service, on every
backend: each id is checked against the course, each text against its limit."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
import sqlalchemy as sa

from lti_tool.db import session_scope
from lti_tool.grades.models import Standard
from lti_tool.playlists import agency
from lti_tool.playlists.agency import AgencyError
from lti_tool.playlists.models import (
    Goal,
    GoalComment,
    LearnerProfile,
    Playlist,
    PlaylistItem,
    Reflection,
)

TODAY = date(2026, 9, 1)


def _count(course, model) -> int:
    with session_scope(course.database_url) as s:
        return s.scalar(sa.select(sa.func.count()).select_from(model))


def _standard(course, course_id=None, code="R.1") -> int:
    with session_scope(course.database_url) as s:
        row = Standard(course_id=course_id or course.course_id, code=code, title="Read")
        s.add(row)
        s.flush()
        return row.id


def _item(course, kind="checkpoint", course_id=None) -> int:
    with session_scope(course.database_url) as s:
        playlist = Playlist(course_id=course_id or course.course_id, title="Fractions")
        s.add(playlist)
        s.flush()
        item = PlaylistItem(playlist_id=playlist.id, kind=kind, title="Checkpoint 1")
        s.add(item)
        s.flush()
        return item.id


def _goal(course, student=0, text="Read two chapters", **kw) -> int:
    with session_scope(course.database_url) as s:
        return agency.create_goal(s, course.course_id, course.student_ids[student], text,
                                  today=TODAY, **kw).id


def _raises(course, status, call, *args, **kwargs) -> AgencyError:
    with pytest.raises(AgencyError) as caught, session_scope(course.database_url) as s:
        call(s, *args, **kwargs)
    assert caught.value.status == status, caught.value
    return caught.value


# -- goals -----------------------------------------------------------------------
def test_goal_with_standard_and_date_then_met_and_reopened(course):
    standard = _standard(course)
    goal_id = _goal(course, standard_id=standard, due_date="2026-09-30")
    with session_scope(course.database_url) as s:
        goal = agency.set_goal_met(s, course.course_id, course.student_ids[0], goal_id, True)
        assert goal.met_at is not None
    with session_scope(course.database_url) as s:
        [view] = agency.goals_for(s, course.course_id, course.student_ids[0])
        assert view.met and view.standard.code == "R.1"
        assert view.goal.due_date == date(2026, 9, 30)
        agency.set_goal_met(s, course.course_id, course.student_ids[0], goal_id, False)
    with session_scope(course.database_url) as s:
        assert not agency.goals_for(s, course.course_id, course.student_ids[0])[0].met


def test_goals_list_open_first_then_newest(course):
    first, second, third = (_goal(course, text=t) for t in ("one", "two", "three"))
    with session_scope(course.database_url) as s:
        agency.set_goal_met(s, course.course_id, course.student_ids[0], third, True)
    with session_scope(course.database_url) as s:
        order = [v.goal.id for v in agency.goals_for(s, course.course_id,
                                                     course.student_ids[0])]
    assert order == [second, first, third]


@pytest.mark.parametrize(("text", "extra", "field"), [
    ("   ", {}, "text"),
    ("x" * 501, {}, "text"),
    ("Fine", {"due_date": TODAY - timedelta(days=1)}, "due_date"),
    ("Fine", {"due_date": "next week"}, "due_date"),
    ("", {"due_date": TODAY - timedelta(days=1)}, "text"),
])
def test_bad_goals_write_nothing(course, text, extra, field):
    error = _raises(course, 400, agency.create_goal, course.course_id, course.student_ids[0],
                    text, today=TODAY, **extra)
    assert field in error.errors
    assert _count(course, Goal) == 0


def test_goal_text_limits_are_inclusive(course):
    _goal(course, text="x" * 500, due_date=TODAY)
    assert _count(course, Goal) == 1


def test_goal_ids_outside_the_course_or_student(course):
    other_standard = _standard(course, course.other_course_id, "S.1")
    _raises(course, 404, agency.create_goal, course.course_id, course.student_ids[0], "Goal",
            standard_id=other_standard)
    # A teacher or someone from another course does not set goals here.
    _raises(course, 403, agency.create_goal, course.course_id, course.teacher_id, "Goal")
    _raises(course, 404, agency.create_goal, course.course_id, course.outsider_id, "Goal")
    mine = _goal(course)
    _raises(course, 403, agency.set_goal_met, course.course_id, course.student_ids[1], mine,
            True)
    _raises(course, 404, agency.set_goal_met, course.other_course_id, course.outsider_id,
            mine, True)
    with session_scope(course.database_url) as s:
        assert s.get(Goal, mine).met_at is None


def test_teacher_comments_and_sees_every_students_goals(course):
    goal_id = _goal(course, student=1)
    with session_scope(course.database_url) as s:
        agency.comment_on_goal(s, course.course_id, course.teacher_id, goal_id,
                               "  Try the <b>second</b> text too.  ")
    with session_scope(course.database_url) as s:
        groups = agency.course_goals(s, course.course_id, course.teacher_id)
        assert [g.student.id for g in groups] == [course.student_ids[2],
                                                 course.student_ids[0],
                                                 course.student_ids[1]]  # by family name
        [view] = groups[2].goals
        [comment] = view.comments
        assert comment.comment.text == "Try the <b>second</b> text too."
        assert comment.author_name == "Grace Hopper"
        assert groups[0].goals == [] and groups[1].goals == []
        student_view = agency.goals_for(s, course.course_id, course.student_ids[1])
        assert student_view[0].comments[0].comment.text.startswith("Try")


def test_comment_rules(course):
    goal_id = _goal(course)
    _raises(course, 403, agency.comment_on_goal, course.course_id, course.student_ids[1],
            goal_id, "Nice")
    _raises(course, 403, agency.course_goals, course.course_id, course.student_ids[1])
    _raises(course, 404, agency.comment_on_goal, course.other_course_id, course.teacher_id,
            goal_id, "Nice")
    for text in ("", "y" * 2001):
        _raises(course, 400, agency.comment_on_goal, course.course_id, course.teacher_id,
                goal_id, text)
    assert _count(course, GoalComment) == 0


# -- reflections -----------------------------------------------------------------
def test_request_and_answer_a_reflection(course):
    ada, alan = course.student_ids[:2]
    with session_scope(course.database_url) as s:
        rows = agency.request_reflection(s, course.course_id, course.teacher_id,
                                         [ada, alan, ada], "What helped you most?")
        assert len(rows) == 2
    with session_scope(course.database_url) as s:
        [open_one] = agency.open_reflection_requests(s, course.course_id, ada)
        assert open_one.prompt == "What helped you most?"
        assert agency.answered_reflections(s, course.course_id, ada) == []
    with session_scope(course.database_url) as s:
        agency.answer_reflection(s, course.course_id, ada, "The worked examples.",
                                 reflection_id=open_one.id)
    with session_scope(course.database_url) as s:
        assert agency.open_reflection_requests(s, course.course_id, ada) == []
        [done] = agency.answered_reflections(s, course.course_id, ada)
        assert done.reflection.text == "The worked examples." and done.answered
        views = agency.course_reflections(s, course.course_id, course.teacher_id)
        assert [v.answered for v in views] == [False, True]  # unanswered first
        assert views[0].student.id == alan
    _raises(course, 400, agency.answer_reflection, course.course_id, ada, "Again",
            reflection_id=open_one.id)
    alans = _alans_request(course)
    _raises(course, 403, agency.answer_reflection, course.course_id, ada, "Not mine",
            reflection_id=alans)
    _raises(course, 404, agency.answer_reflection, course.other_course_id, course.outsider_id,
            "Elsewhere", reflection_id=alans)
    with session_scope(course.database_url) as s:
        assert s.get(Reflection, alans).text == ""


def _alans_request(course) -> int:
    with session_scope(course.database_url) as s:
        return agency.open_reflection_requests(s, course.course_id,
                                               course.student_ids[1])[0].id


def test_reflection_request_rules(course):
    _raises(course, 400, agency.request_reflection, course.course_id, course.teacher_id, [],
            "Question")
    _raises(course, 400, agency.request_reflection, course.course_id, course.teacher_id,
            [course.student_ids[0]], "q" * 501)
    _raises(course, 404, agency.request_reflection, course.course_id, course.teacher_id,
            [course.student_ids[0], course.outsider_id], "Question")
    _raises(course, 403, agency.request_reflection, course.course_id, course.student_ids[0],
            [course.student_ids[1]], "Question")
    assert _count(course, Reflection) == 0


def test_checkpoint_reflection(course):
    item = _item(course)
    with session_scope(course.database_url) as s:
        row = agency.answer_reflection(s, course.course_id, course.student_ids[0],
                                       "I mixed up numerators.", item_id=item)
        assert row.answered_at is not None and row.prompt == ""
    with session_scope(course.database_url) as s:
        [view] = agency.answered_reflections(s, course.course_id, course.student_ids[0])
        assert view.item_title == "Checkpoint 1"
    _raises(course, 400, agency.answer_reflection, course.course_id, course.student_ids[0],
            "r" * 3001, item_id=item)
    _raises(course, 400, agency.answer_reflection, course.course_id, course.student_ids[0],
            "Text", item_id=_item(course, kind="video"))
    _raises(course, 404, agency.answer_reflection, course.course_id, course.student_ids[0],
            "Text", item_id=_item(course, course_id=course.other_course_id))
    _raises(course, 400, agency.answer_reflection, course.course_id, course.student_ids[0],
            "Text")
    assert _count(course, Reflection) == 1


# -- learner profile -------------------------------------------------------------
def test_profile_is_empty_then_saved_by_the_student(course):
    ada = course.student_ids[0]
    with session_scope(course.database_url) as s:
        empty = agency.profile_for(s, course.course_id, ada)
        assert empty.id is None and empty.strengths == ""
    for strengths in ("Drawing", "Drawing and maps"):
        with session_scope(course.database_url) as s:
            agency.save_profile(s, course.course_id, ada,
                                {"strengths": strengths, "show_learning": "Posters",
                                 "ignored": "x"})
    with session_scope(course.database_url) as s:
        saved = agency.profile_for(s, course.course_id, ada)
        assert (saved.strengths, saved.show_learning, saved.needs) == \
            ("Drawing and maps", "Posters", "")
    assert _count(course, LearnerProfile) == 1


def test_profile_rules(course):
    ada = course.student_ids[0]
    error = _raises(course, 400, agency.save_profile, course.course_id, ada,
                    {"strengths": "ok", "needs": "n" * 3001, "interests": "i" * 3001})
    assert set(error.errors) == {"needs", "interests"}
    _raises(course, 403, agency.save_profile, course.course_id, course.teacher_id,
            {"strengths": "Teacher writing"})
    _raises(course, 404, agency.save_profile, course.course_id, course.outsider_id,
            {"strengths": "Outsider"})
    _raises(course, 404, agency.profile_for, course.course_id, course.outsider_id)
    _raises(course, 404, agency.profile_for, course.course_id, course.teacher_id)
    assert _count(course, LearnerProfile) == 0


def test_due_dates_compare_with_the_earliest_today():
    assert agency.parse_due("") is None
    assert agency.parse_due(" 2026-09-01 ") == date(2026, 9, 1)
    assert agency.earliest_today() <= date.today() + timedelta(days=1)
