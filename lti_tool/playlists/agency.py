"""Student agency: goals (with teachers' comments), reflections and the
learner profile.

Every function takes the course of the current tool session and works inside
the caller's transaction (the route commits once). Ids from a request are
checked against that course first: an id of another course is "not found"
(404), never a sign that it exists; a row of another student of the same
course is "not yours" (403)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from lti_tool.courses.models import Enrollment, User
from lti_tool.db import upsert
from lti_tool.errors import UserError
from lti_tool.grades import service as grades
from lti_tool.grades.models import Standard
from lti_tool.playlists.models import (
    Goal,
    GoalComment,
    LearnerProfile,
    Playlist,
    PlaylistItem,
    Reflection,
)
from lti_tool.timeutil import utcnow

GOAL_MAX = 500
COMMENT_MAX = 2000
PROMPT_MAX = 500
REFLECTION_MAX = 3000
PROFILE_MAX = 3000

# The learner profile's fields, in the order the form shows them, with the
# question each answers (written to the student).
PROFILE_FIELDS: tuple[tuple[str, str], ...] = (
    ("strengths", "My strengths"),
    ("needs", "What I need to learn well"),
    ("interests", "My interests"),
    ("aspirations", "My aspirations"),
    ("show_learning", "How I prefer to show my learning"),
)

# Items after which a student may write a reflection.
REFLECTION_ITEM_KINDS = frozenset({"checkpoint", "quick_check"})


class AgencyError(UserError):
    """Bad input, or an id that is not the caller's. `status` is the HTTP
    answer: 400 bad input, 403 not yours, 404 not in this course. `errors`
    maps form fields to their message, so a page can show it by the field."""

    def __init__(self, message: str, status: int = 400, *,
                 errors: Mapping[str, str] | None = None):
        super().__init__(message, status)
        self.errors: dict[str, str] = dict(errors or {})


# -- views handed to pages -----------------------------------------------------
@dataclass(frozen=True)
class CommentView:
    comment: GoalComment
    author_name: str


@dataclass(frozen=True)
class GoalView:
    goal: Goal
    standard: Standard | None
    comments: list[CommentView] = field(default_factory=list)
    overdue: bool = False

    @property
    def met(self) -> bool:
        return self.goal.met_at is not None


@dataclass(frozen=True)
class StudentGoals:
    student: User
    goals: list[GoalView]


@dataclass(frozen=True)
class ReflectionView:
    reflection: Reflection
    student: User
    item_title: str | None = None

    @property
    def answered(self) -> bool:
        return self.reflection.answered_at is not None


# -- helpers -------------------------------------------------------------------
def earliest_today() -> date:
    """Today's date where it is earliest (UTC-12). A due date before it has
    passed everywhere; a student west of UTC in the evening can still choose
    their own today, which in UTC is already yesterday."""
    return (utcnow() - timedelta(hours=12)).date()


def name_of(user: User | None) -> str:
    if user is None:
        return "Someone no longer in the course"
    return user.display_name or user.sub


def _role_in(db: Session, course_id: int, user_id: int) -> str | None:
    return db.scalar(select(Enrollment.role).where(Enrollment.course_id == course_id,
                                                   Enrollment.user_id == user_id))


def _student(db: Session, course_id: int, student_id: int) -> User:
    role = _role_in(db, course_id, student_id)
    if role is None:
        raise AgencyError("That student is not in this course.", 404)
    if role != "student":
        raise AgencyError("Only a student of the course can do this.", 403)
    return db.get(User, student_id)


def course_student(db: Session, course_id: int, student_id: int) -> User:
    """A student of this course (any other id: 404), for the teacher's pages."""
    if _role_in(db, course_id, student_id) != "student":
        raise AgencyError("That student is not in this course.", 404)
    return db.get(User, student_id)


def _teacher(db: Session, course_id: int, teacher_id: int) -> User:
    if _role_in(db, course_id, teacher_id) != "teacher":
        raise AgencyError("Only the course's teachers can do this.", 403)
    return db.get(User, teacher_id)


def _text(value: str | None, *, field_name: str, what: str, limit: int) -> str:
    """Trimmed text of 1..limit characters."""
    text = (value or "").strip()
    if not text:
        raise AgencyError(f"Write {what}.", errors={field_name: f"Write {what}."})
    if len(text) > limit:
        message = f"Keep {what} to {limit:,} characters; this one has {len(text):,}."
        raise AgencyError(message, errors={field_name: message})
    return text


def parse_due(value: str | date | None) -> date | None:
    """A due date from a form (YYYY-MM-DD) or None when left empty."""
    if value is None or isinstance(value, date):
        return value
    value = value.strip()
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        message = f"{value[:30]!r} is not a date; choose one from the calendar (YYYY-MM-DD)."
        raise AgencyError(message, errors={"due_date": message}) from None


def _course_goal(db: Session, course_id: int, goal_id: int) -> Goal:
    goal = db.get(Goal, goal_id)
    if goal is None or goal.course_id != course_id:
        raise AgencyError("That goal is not part of this course.", 404)
    return goal


def _course_standard(db: Session, course_id: int, standard_id: int) -> Standard:
    try:
        return grades.course_standard(db, course_id, standard_id)
    except grades.GradingError as exc:
        raise AgencyError(str(exc), 404) from None


def reflection_item(db: Session, course_id: int, item_id: int) -> PlaylistItem:
    """A checkpoint (or quick check) of one of this course's playlists."""
    item = db.scalar(select(PlaylistItem).join(Playlist, Playlist.id == PlaylistItem.playlist_id)
                     .where(PlaylistItem.id == item_id, Playlist.course_id == course_id))
    if item is None:
        raise AgencyError("That activity is not part of this course.", 404)
    if item.kind not in REFLECTION_ITEM_KINDS:
        raise AgencyError("Reflections are written after a checkpoint or a quick check.")
    return item


# -- goals ---------------------------------------------------------------------
def create_goal(db: Session, course_id: int, student_id: int, text: str | None, *,
                standard_id: int | None = None, due_date: str | date | None = None,
                today: date | None = None) -> Goal:
    """A student's own goal: 1..500 characters, optionally tied to a standard
    of the course and due on a date that has not passed."""
    _student(db, course_id, student_id)
    if standard_id is not None:
        _course_standard(db, course_id, standard_id)
    errors: dict[str, str] = {}
    try:
        text = _text(text, field_name="text", what="your goal", limit=GOAL_MAX)
    except AgencyError as exc:
        errors.update(exc.errors)
    try:
        due = parse_due(due_date)
    except AgencyError as exc:
        errors.update(exc.errors)
    else:
        if due is not None and due < (today or earliest_today()):
            errors["due_date"] = "The date has passed; choose today or a later date."
    if errors:
        raise AgencyError(" ".join(errors.values()), errors=errors)
    goal = Goal(course_id=course_id, student_id=student_id, text=text,
                standard_id=standard_id, due_date=due, created_at=utcnow())
    db.add(goal)
    db.flush()
    return goal


def set_goal_met(db: Session, course_id: int, student_id: int, goal_id: int,
                 met: bool) -> Goal:
    """Mark a goal met, or reopen it: only the student who set it."""
    goal = _course_goal(db, course_id, goal_id)
    if goal.student_id != student_id:
        raise AgencyError("Only the student who set this goal can change it.", 403)
    if met and goal.met_at is None:
        goal.met_at = utcnow()
    elif not met:
        goal.met_at = None
    db.flush()
    return goal


def comment_on_goal(db: Session, course_id: int, teacher_id: int, goal_id: int,
                    text: str | None) -> GoalComment:
    """A teacher's comment on a student's goal (1..2000 characters)."""
    goal = _course_goal(db, course_id, goal_id)
    _teacher(db, course_id, teacher_id)
    text = _text(text, field_name="comment", what="your comment", limit=COMMENT_MAX)
    comment = GoalComment(goal_id=goal.id, author_id=teacher_id, text=text,
                          created_at=utcnow())
    db.add(comment)
    db.flush()
    return comment


def _goal_views(db: Session, goals: list[Goal]) -> list[GoalView]:
    ids = [g.id for g in goals]
    comments: dict[int, list[CommentView]] = defaultdict(list)
    if ids:
        for comment, author in db.execute(
                select(GoalComment, User).outerjoin(User, User.id == GoalComment.author_id)
                .where(GoalComment.goal_id.in_(ids))
                .order_by(GoalComment.created_at, GoalComment.id)):
            comments[comment.goal_id].append(CommentView(comment, name_of(author)))
    standard_ids = {g.standard_id for g in goals if g.standard_id is not None}
    standards = {s.id: s for s in db.scalars(
        select(Standard).where(Standard.id.in_(standard_ids)))} if standard_ids else {}
    today = earliest_today()  # overdue once the date has passed everywhere
    return [GoalView(goal=g, standard=standards.get(g.standard_id),
                     comments=comments.get(g.id, []),
                     overdue=g.met_at is None and g.due_date is not None and g.due_date < today)
            for g in goals]


def _goal_order():
    # Open goals first, then met ones; newest first within each.
    return (Goal.met_at.is_not(None), Goal.created_at.desc(), Goal.id.desc())


def goals_for(db: Session, course_id: int, student_id: int) -> list[GoalView]:
    """A student's goals in this course with their standard and teachers'
    comments: open goals first, newest first within open and met."""
    goals = list(db.scalars(select(Goal).where(Goal.course_id == course_id,
                                               Goal.student_id == student_id)
                            .order_by(*_goal_order())))
    return _goal_views(db, goals)


def course_goals(db: Session, course_id: int, teacher_id: int) -> list[StudentGoals]:
    """Every student of the course (by name) with their goals, for a teacher."""
    _teacher(db, course_id, teacher_id)
    views = _goal_views(db, list(db.scalars(
        select(Goal).where(Goal.course_id == course_id).order_by(*_goal_order()))))
    by_student: dict[int, list[GoalView]] = defaultdict(list)
    for view in views:
        by_student[view.goal.student_id].append(view)
    return [StudentGoals(student, by_student.get(student.id, []))
            for student in grades.students_of(db, course_id)]


# -- reflections ---------------------------------------------------------------
def request_reflection(db: Session, course_id: int, teacher_id: int,
                       student_ids: Iterable[int], prompt: str | None) -> list[Reflection]:
    """A teacher asks one or more students of the course to reflect."""
    _teacher(db, course_id, teacher_id)
    prompt = _text(prompt, field_name="prompt", what="the question for your students",
                   limit=PROMPT_MAX)
    try:
        ids = list(dict.fromkeys(int(i) for i in student_ids))
    except (TypeError, ValueError):
        raise AgencyError("Choose students from the list.") from None
    if not ids:
        message = "Choose at least one student, or the whole class."
        raise AgencyError(message, errors={"students": message})
    for student_id in ids:
        _student(db, course_id, student_id)
    now = utcnow()
    rows = [Reflection(course_id=course_id, student_id=student_id, prompt=prompt, text="",
                       requested_by=teacher_id, created_at=now) for student_id in ids]
    db.add_all(rows)
    db.flush()
    return rows


def answer_reflection(db: Session, course_id: int, student_id: int, text: str | None, *,
                      reflection_id: int | None = None,
                      item_id: int | None = None) -> Reflection:
    """A student's reflection (1..3000 characters): the answer to a teacher's
    request (`reflection_id`), or a new one after a checkpoint (`item_id`)."""
    if (reflection_id is None) == (item_id is None):
        raise AgencyError("Answer one request, or reflect on one checkpoint.")
    _student(db, course_id, student_id)
    if reflection_id is not None:
        # Locked, so two answers sent at once cannot both find it open.
        row = db.get(Reflection, reflection_id, with_for_update=True, populate_existing=True)
        if row is None or row.course_id != course_id:
            raise AgencyError("That reflection is not part of this course.", 404)
        if row.student_id != student_id:
            raise AgencyError("That reflection was asked of another student.", 403)
        if row.answered_at is not None:
            raise AgencyError("You have already answered this one.")
        text = _text(text, field_name=f"text-{row.id}", what="your reflection",
                     limit=REFLECTION_MAX)
        row.text, row.answered_at = text, utcnow()
    else:
        reflection_item(db, course_id, item_id)
        text = _text(text, field_name="text-item", what="your reflection",
                     limit=REFLECTION_MAX)
        now = utcnow()
        row = Reflection(course_id=course_id, student_id=student_id, item_id=item_id,
                         prompt="", text=text, created_at=now, answered_at=now)
        db.add(row)
    db.flush()
    return row


def open_reflection_requests(db: Session, course_id: int, student_id: int
                             ) -> list[Reflection]:
    """A teacher's questions this student has not answered yet, oldest first."""
    return list(db.scalars(select(Reflection).where(
        Reflection.course_id == course_id, Reflection.student_id == student_id,
        Reflection.answered_at.is_(None)).order_by(Reflection.created_at, Reflection.id)))


def _reflection_views(db: Session, *conditions) -> list[ReflectionView]:
    rows = db.execute(
        select(Reflection, User, PlaylistItem.title)
        .join(User, User.id == Reflection.student_id)
        .outerjoin(PlaylistItem, PlaylistItem.id == Reflection.item_id)
        .where(*conditions)
        .order_by(Reflection.answered_at.is_(None).desc(),
                  Reflection.answered_at.desc(), Reflection.created_at.desc(),
                  Reflection.id.desc()))
    return [ReflectionView(r, student, title) for r, student, title in rows]


def answered_reflections(db: Session, course_id: int, student_id: int
                         ) -> list[ReflectionView]:
    """A student's answered reflections, newest first."""
    return _reflection_views(db, Reflection.course_id == course_id,
                             Reflection.student_id == student_id,
                             Reflection.answered_at.is_not(None))


def student_reflections(db: Session, course_id: int, student_id: int
                        ) -> list[ReflectionView]:
    """All of a student's reflections (unanswered requests first), for a teacher."""
    course_student(db, course_id, student_id)
    return _reflection_views(db, Reflection.course_id == course_id,
                             Reflection.student_id == student_id)


def course_reflections(db: Session, course_id: int, teacher_id: int) -> list[ReflectionView]:
    """Every reflection of the course: unanswered requests first, then the
    answers, newest first."""
    _teacher(db, course_id, teacher_id)
    return _reflection_views(db, Reflection.course_id == course_id)


# -- learner profile -----------------------------------------------------------
def profile_for(db: Session, course_id: int, student_id: int) -> LearnerProfile:
    """The student's profile, or an empty one (not added to the session) when
    they have not written it yet."""
    course_student(db, course_id, student_id)
    profile = db.scalar(select(LearnerProfile).where(LearnerProfile.course_id == course_id,
                                                     LearnerProfile.student_id == student_id))
    if profile is None:
        profile = LearnerProfile(course_id=course_id, student_id=student_id,
                                 **{name: "" for name, _ in PROFILE_FIELDS})
    return profile


def save_profile(db: Session, course_id: int, student_id: int,
                 values: Mapping[str, str | None]) -> LearnerProfile:
    """The student writes their own profile; each answer at most 3,000
    characters (all are checked before anything is written)."""
    _student(db, course_id, student_id)
    cleaned: dict[str, str] = {}
    errors: dict[str, str] = {}
    for name, label in PROFILE_FIELDS:
        text = (values.get(name) or "").strip()
        if len(text) > PROFILE_MAX:
            errors[name] = (f"Keep “{label}” to {PROFILE_MAX:,} characters; "
                            f"it has {len(text):,}.")
        cleaned[name] = text
    if errors:
        raise AgencyError(" ".join(errors.values()), errors=errors)
    now = utcnow()
    upsert(db, LearnerProfile, ["course_id", "student_id"],
           {"course_id": course_id, "student_id": student_id, **cleaned, "updated_at": now},
           [*cleaned, "updated_at"], returning_id=False)
    return db.scalar(select(LearnerProfile).where(
        LearnerProfile.course_id == course_id, LearnerProfile.student_id == student_id)
        .execution_options(populate_existing=True))
