"""Evidence, overrides and rollups through the service layer, on every backend."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from lti_tool.db import session_scope
from lti_tool.grades import service
from lti_tool.grades.models import Evidence, Rollup, Standard

T0 = datetime(2026, 9, 1, tzinfo=timezone.utc)


def _standard(course, code="R.1", course_id=None) -> int:
    with session_scope(course.database_url) as s:
        row = Standard(course_id=course_id or course.course_id, code=code,
                       title=f"Standard {code}")
        s.add(row)
        s.flush()
        return row.id


def _record(course, standard_id, score, day, student=0, **kw):
    with session_scope(course.database_url) as s:
        return service.record_evidence(
            s, course_id=course.course_id, student_id=course.student_ids[student],
            standard_id=standard_id, score=score, assessed_at=T0 + timedelta(days=day),
            source="checkpoint", recorded_by=course.teacher_id, **kw).id


def _rollup(course, standard_id, student=0):
    with session_scope(course.database_url) as s:
        return s.scalar(sa.select(Rollup).where(
            Rollup.student_id == course.student_ids[student],
            Rollup.standard_id == standard_id))


def test_evidence_updates_the_rollup_in_the_same_transaction(course):
    std = _standard(course)
    _record(course, std, 2, 1)
    assert _rollup(course, std).value == 2
    _record(course, std, 3, 2)
    _record(course, std, 4, 3)
    rollup = _rollup(course, std)
    # Default policy: decaying average at 65% (mastery.md worked example order).
    assert rollup.value == 3.53 and rollup.evidence_count == 3 and not rollup.overridden


def test_replaced_evidence_stays_in_history_but_leaves_the_calculation(course):
    std = _standard(course)
    first = _record(course, std, 1, 1)
    _record(course, std, 3, 2, supersedes=[first])
    assert _rollup(course, std).value == 3 and _rollup(course, std).evidence_count == 1
    with session_scope(course.database_url) as s:
        assert s.get(Evidence, first).superseded_by is not None


def test_override_needs_a_note_and_can_be_cleared(course):
    std = _standard(course)
    _record(course, std, 2, 1)
    with pytest.raises(service.GradingError, match="note is required"):
        with session_scope(course.database_url) as s:
            service.record_override(s, course_id=course.course_id,
                                    student_id=course.student_ids[0], standard_id=std,
                                    value=3, note=" ", created_by=course.teacher_id)
    with session_scope(course.database_url) as s:
        service.record_override(s, course_id=course.course_id,
                                student_id=course.student_ids[0], standard_id=std, value=3,
                                note="Showed mastery in conversation",
                                created_by=course.teacher_id)
    rollup = _rollup(course, std)
    assert (rollup.value, rollup.calculated, rollup.overridden) == (3, 2, True)
    with session_scope(course.database_url) as s:
        service.record_override(s, course_id=course.course_id,
                                student_id=course.student_ids[0], standard_id=std,
                                value=None, note="Back to the evidence",
                                created_by=course.teacher_id)
    assert _rollup(course, std).value == 2 and not _rollup(course, std).overridden


@pytest.mark.parametrize("score,message", [(5, "from 0 to 4"), (-1, "from 0 to 4"),
                                           ("abc", "not a number"), ("nan", "from 0 to 4")])
def test_bad_scores_write_nothing(course, score, message):
    std = _standard(course)
    with pytest.raises(service.GradingError, match=message):
        _record(course, std, score, 1)
    with session_scope(course.database_url) as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(Evidence)) == 0


def test_evidence_outside_the_course_is_refused(course):
    std = _standard(course)
    other = _standard(course, "S.1", course_id=course.other_course_id)
    with pytest.raises(service.GradingError) as info:
        _record(course, other, 3, 1)
    assert info.value.status == 404
    with pytest.raises(service.GradingError) as info, session_scope(course.database_url) as s:
        service.record_evidence(s, course_id=course.course_id, student_id=course.outsider_id,
                                standard_id=std, score=3, assessed_at=T0,
                                source="checkpoint", recorded_by=None)
    assert info.value.status == 404


def test_recompute_after_a_method_change(course):
    std = _standard(course)
    for day, score in enumerate([2, 3, 4], start=1):
        _record(course, std, score, day)
    _record(course, std, 1, 1, student=1)
    with session_scope(course.database_url) as s:
        policy = service.policy_for(s, course.course_id)
        policy.method = "highest"
        assert service.recompute_course(s, course.course_id) == 2
    assert _rollup(course, std).value == 4 and _rollup(course, std, 1).value == 1


def test_default_scale_and_policy(course):
    with session_scope(course.database_url) as s:
        levels = service.scale_for(s, course.course_id)
        assert [lvl.label for lvl in levels] == ["Exceeds Mastery", "Mastery", "Near Mastery",
                                                 "Below Mastery"]
        assert service.policy_for(s, course.course_id).mastery_points == 3.0
        assert [u.name for u in service.students_of(s, course.course_id)] == [
            "Mary Jackson", "Ada Lovelace", "Alan Turing"]


def _counting(session):
    """SELECTs on the policy and scale tables issued through this session."""
    seen: list[str] = []

    def hook(_conn, _cursor, statement, *_args):
        if statement.lstrip().upper().startswith("SELECT") and (
                "grading_policy" in statement or "scale_level" in statement):
            seen.append(statement)

    sa.event.listen(session.get_bind(), "before_cursor_execute", hook)
    return seen, lambda: sa.event.remove(session.get_bind(), "before_cursor_execute", hook)


def test_policy_and_scale_are_read_once_per_transaction_and_afresh_after(course):
    with session_scope(course.database_url) as s:
        service.policy_for(s, course.course_id)   # defaults exist before counting
        s.commit()
        seen, stop = _counting(s)
        try:
            for _ in range(3):
                service.policy_for(s, course.course_id)
                service.scale_for(s, course.course_id)
                _record_in(s, course)   # flushes in between do not forget
            assert len(seen) == 2
            s.commit()   # a new transaction reads again: another process may have changed them
            service.scale_for(s, course.course_id)
            assert len(seen) == 4
        finally:
            stop()


def _record_in(s, course):
    standard_id = s.scalar(sa.select(Standard.id).where(
        Standard.course_id == course.course_id)) or _new_standard(s, course)
    service.record_evidence(s, course_id=course.course_id, student_id=course.student_ids[0],
                            standard_id=standard_id, score=3, assessed_at=T0,
                            source="checkpoint", recorded_by=course.teacher_id)


def _new_standard(s, course) -> int:
    row = Standard(course_id=course.course_id, code="M.1", title="Memo")
    s.add(row)
    s.flush()
    return row.id


def test_a_new_scale_is_used_in_the_same_transaction(course):
    standard_id = _standard(course)
    _record(course, standard_id, 3, 0)
    levels = [{"points": p, "label": label, "colour": "#112233", "pattern": "solid"}
              for p, label in ((4, "Exceeds"), (3, "Meets"), (2, "Nearly"), (1, "Starting"),
                               (0.5, "Not yet"))]
    with session_scope(course.database_url) as s:
        assert len(service.scale_for(s, course.course_id)) != len(levels)
        service.save_scale(s, course.course_id, levels)
        assert [lvl.label for lvl in service.scale_for(s, course.course_id)] == \
            ["Exceeds", "Meets", "Nearly", "Starting", "Not yet"]
    with session_scope(course.database_url) as s:
        assert [lvl.points for lvl in service.scale_for(s, course.course_id)] == \
            [4, 3, 2, 1, 0.5]
