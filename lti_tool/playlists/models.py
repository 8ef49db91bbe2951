"""Playlists, their items, and what each student does with them.

Every row hangs off a course (a playlist's items through their playlist, a
student's rows through the course too), so each query starts from the course of
the current tool session. Standard and item references inside an item are JSON
lists of ids of the same course, checked by the service when saved and by the
pure path rules when used."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from lti_tool.db import Base
from lti_tool.timeutil import utcnow


class Playlist(Base):
    __tablename__ = "playlist"
    __table_args__ = (Index("ix_playlist_course", "course_id", "position"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("course.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(300))
    description: Mapped[str] = mapped_column(Text, default="")
    standard_ids: Mapped[list] = mapped_column(JSON, default=list)  # the standards it targets
    published: Mapped[bool] = mapped_column(Boolean, default=False)
    position: Mapped[int] = mapped_column(Integer, default=0)
    created_by: Mapped[int | None] = mapped_column(
        ForeignKey("lti_user.id", ondelete="SET NULL"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class PlaylistItem(Base):
    """One step of a playlist. A choice board's options are items whose
    `board_id` is the board; they are ordered after it by `position`."""

    __tablename__ = "playlist_item"
    __table_args__ = (Index("ix_playlist_item_playlist", "playlist_id", "position"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    playlist_id: Mapped[int] = mapped_column(ForeignKey("playlist.id", ondelete="CASCADE"))
    board_id: Mapped[int | None] = mapped_column(
        ForeignKey("playlist_item.id", ondelete="CASCADE"), nullable=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    kind: Mapped[str] = mapped_column(String(20))
    tag: Mapped[str] = mapped_column(String(20), default="must_do")
    title: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text, default="")  # sanitized HTML
    url: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    embeddable: Mapped[bool] = mapped_column(Boolean, default=False)
    standard_ids: Mapped[list] = mapped_column(JSON, default=list)
    prereq_standard_ids: Mapped[list] = mapped_column(JSON, default=list)
    prereq_item_ids: Mapped[list] = mapped_column(JSON, default=list)
    min_choices: Mapped[int] = mapped_column(Integer, default=1)
    questions: Mapped[list] = mapped_column(JSON, default=list)  # quick check only
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ItemProgress(Base):
    __tablename__ = "item_progress"
    __table_args__ = (UniqueConstraint("student_id", "item_id"),
                      Index("ix_item_progress_playlist", "playlist_id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("course.id", ondelete="CASCADE"))
    playlist_id: Mapped[int] = mapped_column(ForeignKey("playlist.id", ondelete="CASCADE"))
    item_id: Mapped[int] = mapped_column(ForeignKey("playlist_item.id", ondelete="CASCADE"))
    student_id: Mapped[int] = mapped_column(ForeignKey("lti_user.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(20))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    done_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class QuickCheckAttempt(Base):
    __tablename__ = "quick_check_attempt"
    __table_args__ = (Index("ix_attempt_student_item", "student_id", "item_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("course.id", ondelete="CASCADE"))
    item_id: Mapped[int] = mapped_column(ForeignKey("playlist_item.id", ondelete="CASCADE"))
    student_id: Mapped[int] = mapped_column(ForeignKey("lti_user.id", ondelete="CASCADE"))
    answers: Mapped[list] = mapped_column(JSON, default=list)
    correct: Mapped[int] = mapped_column(Integer)
    total: Mapped[int] = mapped_column(Integer)
    score: Mapped[float] = mapped_column(Float)
    evidence_id: Mapped[int | None] = mapped_column(
        ForeignKey("evidence.id", ondelete="SET NULL"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class PlaylistTarget(Base):
    """A student's own target date for a playlist (their pace)."""

    __tablename__ = "playlist_target"
    __table_args__ = (UniqueConstraint("student_id", "playlist_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("course.id", ondelete="CASCADE"))
    playlist_id: Mapped[int] = mapped_column(ForeignKey("playlist.id", ondelete="CASCADE"))
    student_id: Mapped[int] = mapped_column(ForeignKey("lti_user.id", ondelete="CASCADE"))
    start_date: Mapped[date] = mapped_column(Date)
    target_date: Mapped[date] = mapped_column(Date)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Goal(Base):
    __tablename__ = "goal"
    __table_args__ = (Index("ix_goal_course_student", "course_id", "student_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("course.id", ondelete="CASCADE"))
    student_id: Mapped[int] = mapped_column(ForeignKey("lti_user.id", ondelete="CASCADE"))
    text: Mapped[str] = mapped_column(Text)
    standard_id: Mapped[int | None] = mapped_column(
        ForeignKey("standard.id", ondelete="SET NULL"), nullable=True)
    due_date: Mapped[date | None] = mapped_column(Date, nullable=True)
    met_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class GoalComment(Base):
    __tablename__ = "goal_comment"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    goal_id: Mapped[int] = mapped_column(ForeignKey("goal.id", ondelete="CASCADE"), index=True)
    author_id: Mapped[int | None] = mapped_column(
        ForeignKey("lti_user.id", ondelete="SET NULL"), nullable=True)
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Reflection(Base):
    """A student's short reflection: after a checkpoint (item set), or when a
    teacher asks (`prompt` set by the teacher, `text` empty until answered)."""

    __tablename__ = "reflection"
    __table_args__ = (Index("ix_reflection_course_student", "course_id", "student_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("course.id", ondelete="CASCADE"))
    student_id: Mapped[int] = mapped_column(ForeignKey("lti_user.id", ondelete="CASCADE"))
    item_id: Mapped[int | None] = mapped_column(
        ForeignKey("playlist_item.id", ondelete="SET NULL"), nullable=True)
    prompt: Mapped[str] = mapped_column(Text, default="")
    text: Mapped[str] = mapped_column(Text, default="")
    requested_by: Mapped[int | None] = mapped_column(
        ForeignKey("lti_user.id", ondelete="SET NULL"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    answered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class LearnerProfile(Base):
    """Written by the student only; read by their teachers in this course."""

    __tablename__ = "learner_profile"
    __table_args__ = (UniqueConstraint("course_id", "student_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("course.id", ondelete="CASCADE"))
    student_id: Mapped[int] = mapped_column(ForeignKey("lti_user.id", ondelete="CASCADE"))
    strengths: Mapped[str] = mapped_column(Text, default="")
    needs: Mapped[str] = mapped_column(Text, default="")
    interests: Mapped[str] = mapped_column(Text, default="")
    aspirations: Mapped[str] = mapped_column(Text, default="")
    show_learning: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Assignment(Base):
    """A teacher's action from data: a reteach playlist or a reassessment for
    one student on one standard, shown at the top of the student's path."""

    __tablename__ = "assignment"
    __table_args__ = (Index("ix_assignment_course_student", "course_id", "student_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("course.id", ondelete="CASCADE"))
    student_id: Mapped[int] = mapped_column(ForeignKey("lti_user.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20))  # "playlist" | "reassessment"
    playlist_id: Mapped[int | None] = mapped_column(
        ForeignKey("playlist.id", ondelete="CASCADE"), nullable=True)
    standard_id: Mapped[int | None] = mapped_column(
        ForeignKey("standard.id", ondelete="CASCADE"), nullable=True)
    note: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[int | None] = mapped_column(
        ForeignKey("lti_user.id", ondelete="SET NULL"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True),
                                                          nullable=True)
