"""Playlist services: authoring, a student's path and progress, quick checks,
checkpoints, targets and teacher assignments.

Each function works inside the caller's transaction and checks that every id
it is given belongs to the course of the current session (another course's id
is simply not found). The rules themselves are pure (path.py, quick_check.py,
transfer.py); this module loads their inputs and stores their outcomes."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from lti_tool.db import upsert
from lti_tool.errors import UserError
from lti_tool.grades import service as grading
from lti_tool.grades.models import Evidence, Rollup, Standard
from lti_tool.playlists import content, path, quick_check, transfer
from lti_tool.playlists.models import (
    Assignment,
    ItemProgress,
    Playlist,
    PlaylistItem,
    PlaylistTarget,
    QuickCheckAttempt,
)
from lti_tool.timeutil import aware, utcnow

KINDS = tuple(k.value for k in path.ItemKind)
TAGS = tuple(t.value for t in path.Tag)
KIND_LABELS = {
    "resource": "Resource (link)", "reading": "Reading or instructions", "video": "Video",
    "practice": "Practice", "quick_check": "Quick check", "checkpoint": "Checkpoint",
    "choice_board": "Choice board",
}
TAG_LABELS = {"must_do": "Must do", "may_do": "May do", "challenge": "Challenge"}
MAX_ITEMS = 200


class PlaylistError(UserError):
    """Bad input; the message says what to fix (404 for anything outside the
    course, 409 for a locked item)."""


# -- reading -------------------------------------------------------------------
def playlists_of(session: Session, course_id: int, *, published_only: bool = False
                 ) -> list[Playlist]:
    query = select(Playlist).where(Playlist.course_id == course_id)
    if published_only:
        query = query.where(Playlist.published.is_(True))
    return list(session.scalars(query.order_by(Playlist.position, Playlist.id)))


def course_playlist(session: Session, course_id: int, playlist_id: int) -> Playlist:
    playlist = session.get(Playlist, playlist_id)
    if playlist is None or playlist.course_id != course_id:
        raise PlaylistError("That playlist is not part of this course.", 404)
    return playlist


def items_of(session: Session, playlist_id: int) -> list[PlaylistItem]:
    """Items in playlist order: top-level by position, each board's options
    straight after it (the order the path rules require)."""
    rows = list(session.scalars(select(PlaylistItem).where(
        PlaylistItem.playlist_id == playlist_id).order_by(PlaylistItem.position,
                                                         PlaylistItem.id)))
    options: dict[int, list[PlaylistItem]] = defaultdict(list)
    for row in rows:
        if row.board_id is not None:
            options[row.board_id].append(row)
    ordered: list[PlaylistItem] = []
    for row in rows:
        if row.board_id is None:
            ordered.append(row)
            ordered.extend(options.get(row.id, ()))
    return ordered


def playlist_item(session: Session, playlist: Playlist, item_id: int) -> PlaylistItem:
    item = session.get(PlaylistItem, item_id)
    if item is None or item.playlist_id != playlist.id:
        raise PlaylistError("That item is not part of this playlist.", 404)
    return item


def standard_infos(standards: Iterable[Standard]) -> dict[int, path.StandardInfo]:
    return {s.id: path.StandardInfo(id=s.id, code=s.code, title=s.title) for s in standards}


def to_path_items(items: Sequence[PlaylistItem], known_standards: Mapping[int, object]
                  ) -> list[path.Item]:
    """Rows to the pure rules' items. Standards no longer in the course are
    dropped rather than locking an item forever."""
    def known(ids) -> frozenset[int]:
        return frozenset(i for i in ids or () if i in known_standards)

    options: dict[int, list[int]] = defaultdict(list)
    for row in items:
        if row.board_id is not None:
            options[row.board_id].append(row.id)
    present = {row.id for row in items}
    return [path.Item(
        id=row.id, title=row.title, kind=path.ItemKind(row.kind), tag=path.Tag(row.tag),
        standards=known(row.standard_ids), prereq_standards=known(row.prereq_standard_ids),
        prereq_items=frozenset(i for i in row.prereq_item_ids or () if i in present),
        alternatives=tuple(options.get(row.id, ())),
        min_choices=min(row.min_choices or 1, max(len(options.get(row.id, ())), 1)))
        for row in items]


@dataclass(frozen=True)
class PlaylistContext:
    """What every path computation of one playlist shares; load it once."""

    playlist: Playlist
    items: list[PlaylistItem]
    path_items: list[path.Item]
    standards: dict[int, path.StandardInfo]
    mastery_points: float
    mastery_label: str
    scale_points: tuple[float, ...]
    prepared: path.PreparedPlaylist

    @property
    def by_id(self) -> dict[int, PlaylistItem]:
        return {i.id: i for i in self.items}

    def compute(self, mastery: Mapping[int, float | None], progress: Mapping[int, str]
                ) -> path.Path:
        return self.prepared.path(mastery=mastery, progress=progress,
                                  mastery_points=self.mastery_points,
                                  mastery_label=self.mastery_label)


def playlist_context(session: Session, course_id: int, playlist: Playlist) -> PlaylistContext:
    standards = standard_infos(grading.standards_of(session, course_id))
    items = items_of(session, playlist.id)
    policy = grading.policy_for(session, course_id)
    levels = grading.scale_for(session, course_id)
    label = next((lvl.label for lvl in levels if lvl.points == policy.mastery_points),
                 "Mastery")
    path_items = _usable(to_path_items(items, standards))
    return PlaylistContext(playlist=playlist, items=items, path_items=path_items,
                           standards=standards, mastery_points=policy.mastery_points,
                           mastery_label=label,
                           scale_points=tuple(sorted(lvl.points for lvl in levels)),
                           prepared=path.prepare(path_items, standards))


def _usable(items: list[path.Item]) -> list[path.Item]:
    """A choice board still waiting for its first option is left out of the
    path (it offers nothing to choose yet)."""
    return [i for i in items if i.kind is not path.ItemKind.CHOICE_BOARD or i.alternatives]


def mastery_of(session: Session, course_id: int, student_id: int) -> dict[int, float | None]:
    return dict(session.execute(select(Rollup.standard_id, Rollup.value).where(
        Rollup.course_id == course_id, Rollup.student_id == student_id)).all())


def progress_of(session: Session, playlist_id: int, student_id: int) -> dict[int, str]:
    return dict(session.execute(select(ItemProgress.item_id, ItemProgress.status).where(
        ItemProgress.playlist_id == playlist_id, ItemProgress.student_id == student_id)).all())


def student_path(session: Session, course_id: int, ctx: PlaylistContext, student_id: int
                 ) -> path.Path:
    return ctx.compute(mastery_of(session, course_id, student_id),
                       progress_of(session, ctx.playlist.id, student_id))


def visible_playlists(session: Session, course_id: int, student_id: int) -> list[Playlist]:
    """Published playlists, and unpublished ones a teacher assigned to this
    student (a reteach playlist for a few need not be shown to everyone)."""
    assigned = set(session.scalars(select(Assignment.playlist_id).where(
        Assignment.course_id == course_id, Assignment.student_id == student_id,
        Assignment.completed_at.is_(None), Assignment.playlist_id.is_not(None))))
    return [p for p in playlists_of(session, course_id)
            if p.published or p.id in assigned]


def student_playlist(session: Session, course_id: int, student_id: int, playlist_id: int
                     ) -> Playlist:
    """A playlist this student may open: published, or assigned to them (the
    rule of visible_playlists, for one playlist)."""
    playlist = course_playlist(session, course_id, playlist_id)
    if not playlist.published and session.scalar(select(Assignment.id).where(
            Assignment.course_id == course_id, Assignment.student_id == student_id,
            Assignment.playlist_id == playlist.id, Assignment.completed_at.is_(None))
            .limit(1)) is None:
        raise PlaylistError("That playlist is not open to you yet.", 404)
    return playlist


# -- authoring -------------------------------------------------------------------
def _text(value, name: str, limit: int, *, required: bool = True) -> str:
    text = (value or "").strip()
    if required and not text:
        raise PlaylistError(f"Give the {name} (1 to {limit} characters).")
    if len(text) > limit:
        raise PlaylistError(f"The {name} is {len(text)} characters long; keep it to {limit}.")
    return text


def _standard_ids(session: Session, course_id: int, raw: Iterable) -> list[int]:
    ids = []
    for value in raw:
        try:
            ids.append(int(value))
        except (TypeError, ValueError):
            raise PlaylistError(f"{str(value)[:20]!r} is not a standard of this course.") \
                from None
    if not ids:
        return []
    known = set(session.scalars(select(Standard.id).where(
        Standard.course_id == course_id, Standard.id.in_(ids))))
    if set(ids) - known:
        raise PlaylistError("Choose standards of this course only.", 404)
    return list(dict.fromkeys(ids))


def save_playlist(session: Session, course_id: int, *, title, description, standard_ids,
                  created_by: int | None, playlist: Playlist | None = None) -> Playlist:
    """Create a playlist (unpublished) or update its title, description and
    targeted standards."""
    title = _text(title, "playlist's title", 300)
    description = content.sanitize_html(_text(description, "description", 20000,
                                              required=False))
    ids = _standard_ids(session, course_id, standard_ids)
    if playlist is None:
        position = session.scalar(select(func.max(Playlist.position)).where(
            Playlist.course_id == course_id)) or 0
        playlist = Playlist(course_id=course_id, title=title, description=description,
                            standard_ids=ids, published=False, position=position + 1,
                            created_by=created_by, created_at=utcnow(), updated_at=utcnow())
        session.add(playlist)
    else:
        playlist.title, playlist.description, playlist.standard_ids = title, description, ids
        playlist.updated_at = utcnow()
    session.flush()
    return playlist


def set_published(session: Session, playlist: Playlist, published: bool) -> None:
    if published and not items_of(session, playlist.id):
        raise PlaylistError("Add at least one item before publishing this playlist.")
    playlist.published = published
    playlist.updated_at = utcnow()


@dataclass(frozen=True)
class ItemForm:
    """An item as typed in the teacher's form (strings, lists of strings)."""

    kind: str
    tag: str
    title: str
    body: str = ""
    url: str = ""
    standard_ids: tuple = ()
    prereq_standard_ids: tuple = ()
    prereq_item_ids: tuple = ()
    board_id: str = ""
    min_choices: str = "1"
    questions: str = ""


def save_item(session: Session, course_id: int, playlist: Playlist, form: ItemForm, *,
              item: PlaylistItem | None = None, embed_check=None) -> PlaylistItem:
    """Add or change an item after checking it and the whole playlist it makes
    (cycles, boards). `embed_check(url) -> bool` says whether a site allows
    framing; None means links open in a new tab."""
    if form.kind not in KINDS:
        raise PlaylistError(f"Choose what kind of item this is ({', '.join(KINDS)}).")
    if form.tag not in TAGS:
        raise PlaylistError("Choose must do, may do or challenge.")
    if item is not None and item.kind != form.kind and item.kind == "choice_board" and \
            any(i.board_id == item.id for i in items_of(session, playlist.id)):
        raise PlaylistError("This choice board has options: move or delete them before "
                            "making it another kind of item.")
    title = _text(form.title, "item's title", 300)
    try:
        body = content.sanitize_html(form.body or "")
        url = content.check_url(form.url) if (form.url or "").strip() else None
    except content.ContentError as exc:
        raise PlaylistError(str(exc)) from None
    if form.kind in ("resource", "video") and not url:
        raise PlaylistError("Give the link (starting with https://) for this "
                            f"{KIND_LABELS[form.kind].lower()}.")
    standards = _standard_ids(session, course_id, form.standard_ids)
    prereq_standards = _standard_ids(session, course_id, form.prereq_standard_ids)
    existing = items_of(session, playlist.id)
    by_id = {i.id: i for i in existing}
    prereq_items = []
    for raw in form.prereq_item_ids:
        if not str(raw).isdigit() or int(raw) not in by_id:
            raise PlaylistError("Prerequisite items must be items of this playlist.", 404)
        prereq_items.append(int(raw))
    board_id = None
    if str(form.board_id or "").strip():
        board = by_id.get(int(form.board_id)) if str(form.board_id).isdigit() else None
        if board is None or board.kind != "choice_board":
            raise PlaylistError("Choose a choice board of this playlist for this option.")
        if form.kind == "choice_board":
            raise PlaylistError("A choice board cannot be an option on another board.")
        board_id = board.id
    try:
        min_choices = int(form.min_choices or 1)
    except ValueError:
        raise PlaylistError("The number of choices to make must be a whole number.") from None
    questions: list = []
    if form.kind == "quick_check":
        if len(standards) != 1:
            raise PlaylistError("A quick check is scored onto one standard: choose exactly "
                                "one aligned standard.")
        try:
            questions = quick_check.questions_to_json(
                quick_check.parse_questions_text(form.questions or ""))
        except quick_check.QuickCheckError as exc:
            raise PlaylistError(" ".join(exc.errors)) from None
        if not questions:
            raise PlaylistError("Add at least one question to the quick check.")
    if item is None and len(existing) >= MAX_ITEMS:
        raise PlaylistError(f"A playlist holds at most {MAX_ITEMS} items; start another one.")
    embeddable = bool(url and form.kind == "resource" and embed_check and embed_check(url))
    if item is None:
        siblings = [i.position for i in existing if i.board_id == board_id]
        item = PlaylistItem(playlist_id=playlist.id, position=max(siblings, default=0) + 1)
        session.add(item)
    elif item.board_id != board_id:
        siblings = [i.position for i in existing if i.board_id == board_id]
        item.position = max(siblings, default=0) + 1
    item.kind, item.tag, item.title, item.body, item.url = form.kind, form.tag, title, body, url
    item.embeddable = embeddable
    item.standard_ids, item.prereq_standard_ids = standards, prereq_standards
    item.prereq_item_ids, item.board_id = prereq_items, board_id
    item.min_choices, item.questions, item.updated_at = min_choices, questions, utcnow()
    session.flush()
    check_playlist(session, course_id, playlist)
    playlist.updated_at = utcnow()
    return item


def check_playlist(session: Session, course_id: int, playlist: Playlist) -> None:
    """The whole playlist must make sense to the path rules (no cycles, boards
    with options, a sensible number of choices)."""
    items = items_of(session, playlist.id)
    standards = standard_infos(grading.standards_of(session, course_id))
    options = defaultdict(int)
    for row in items:
        if row.board_id is not None:
            options[row.board_id] += 1
    for row in items:
        if row.kind == "choice_board" and options[row.id] and \
                not 1 <= row.min_choices <= options[row.id]:
            raise PlaylistError(f"Choice board “{row.title}” asks for {row.min_choices} "
                                f"choice(s) but has {options[row.id]} option(s).")
    try:
        # A board still waiting for its first option is fine while authoring.
        path.prepare(_usable(to_path_items(items, standards)), standards)
    except ValueError as exc:
        raise PlaylistError(str(exc)) from None


def move_item(session: Session, playlist: Playlist, item: PlaylistItem, direction: str) -> None:
    """Swap an item with its neighbour among its siblings (top level, or the
    options of one board); options move with their board."""
    if direction not in ("up", "down", "top", "bottom"):
        raise PlaylistError("Move an item up, down, to the top or to the bottom.")
    siblings = [i for i in items_of(session, playlist.id) if i.board_id == item.board_id]
    index = siblings.index(item)
    target = {"up": index - 1, "down": index + 1, "top": 0,
              "bottom": len(siblings) - 1}[direction]
    if not 0 <= target < len(siblings) or target == index:
        return
    siblings.insert(target, siblings.pop(index))
    for position, row in enumerate(siblings, start=1):
        row.position = position
    playlist.updated_at = utcnow()
    session.flush()


def delete_item(session: Session, course_id: int, playlist: Playlist, item: PlaylistItem
                ) -> None:
    """Remove an item (a board with its options) and every prerequisite on it."""
    gone = {item.id} | {i.id for i in items_of(session, playlist.id) if i.board_id == item.id}
    for row in items_of(session, playlist.id):
        if row.id in gone:
            continue
        if set(row.prereq_item_ids or ()) & gone:
            row.prereq_item_ids = [i for i in row.prereq_item_ids if i not in gone]
    for row in items_of(session, playlist.id):
        if row.id in gone and row.id != item.id:
            session.delete(row)
    session.flush()
    session.delete(item)
    session.flush()
    playlist.updated_at = utcnow()


# -- copy, export, import ------------------------------------------------------------
def export_playlist(session: Session, course_id: int, playlist: Playlist
                    ) -> transfer.PlaylistData:
    standards = {s.id: s for s in grading.standards_of(session, course_id)}
    groups = grading.groups_of(session, course_id)
    items = items_of(session, playlist.id)
    key = {row.id: f"item-{n}" for n, row in enumerate(items, start=1)}
    used: set[int] = set(playlist.standard_ids or ())

    def codes(ids) -> tuple[str, ...]:
        present = [i for i in ids or () if i in standards]
        used.update(present)
        return tuple(standards[i].code for i in present)

    exported = tuple(transfer.ItemData(
        key=key[row.id], kind=row.kind, tag=row.tag, title=row.title, body=row.body or "",
        url=row.url, standards=codes(row.standard_ids),
        prereq_standards=codes(row.prereq_standard_ids),
        prereq_items=tuple(key[i] for i in row.prereq_item_ids or () if i in key),
        board=key.get(row.board_id) if row.board_id else None,
        min_choices=row.min_choices or 1,
        questions=tuple(quick_check.questions_from_json(row.questions))
        if row.questions else ())
        for row in items)
    targeted = codes(playlist.standard_ids)
    definitions = tuple(transfer.StandardData(
        code=standards[i].code, title=standards[i].title,
        description=standards[i].description or "",
        group=groups[standards[i].group_id].name if standards[i].group_id in groups else None)
        for i in sorted(used, key=lambda i: (standards[i].position, standards[i].code))
        if i in standards)
    return transfer.PlaylistData(title=playlist.title, description=playlist.description or "",
                                 standards=targeted, items=exported, standard_defs=definitions)


def import_playlist(session: Session, course_id: int, data: transfer.PlaylistData, *,
                    created_by: int | None, title: str | None = None) -> Playlist:
    """A new, unpublished playlist from exported data. Standards are matched by
    code; missing ones are added to the course with their definitions (existing
    standards are never changed by an import)."""
    existing = {s.code: s.id for s in grading.standards_of(session, course_id)}
    missing = [d for d in data.standard_defs if d.code not in existing]
    if missing:
        from lti_tool.grades.standards_io import StandardRow

        grading.import_standards(session, course_id, [StandardRow(
            code=d.code, title=d.title, description=d.description, group=d.group,
            position=n) for n, d in enumerate(missing, start=1)])
        existing = {s.code: s.id for s in grading.standards_of(session, course_id)}
    playlist = save_playlist(session, course_id, title=title or data.title,
                             description=data.description,
                             standard_ids=[existing[c] for c in data.standards],
                             created_by=created_by)
    ids: dict[str, int] = {}
    positions: dict[int | None, int] = defaultdict(int)
    pending = []
    for item in data.items:
        board_id = ids[item.board] if item.board else None
        positions[board_id] += 1
        row = PlaylistItem(
            playlist_id=playlist.id, board_id=board_id, position=positions[board_id],
            kind=item.kind, tag=item.tag, title=item.title, body=item.body, url=item.url,
            embeddable=False, standard_ids=[existing[c] for c in item.standards],
            prereq_standard_ids=[existing[c] for c in item.prereq_standards],
            prereq_item_ids=[], min_choices=item.min_choices,
            questions=quick_check.questions_to_json(item.questions), updated_at=utcnow())
        session.add(row)
        session.flush()
        ids[item.key] = row.id
        pending.append((row, item.prereq_items))
    for row, prereqs in pending:
        row.prereq_item_ids = [ids[k] for k in prereqs]
    session.flush()
    check_playlist(session, course_id, playlist)
    return playlist


def copy_playlist(session: Session, source_course_id: int, playlist: Playlist,
                  target_course_id: int, created_by: int | None) -> Playlist:
    """Duplicate (same course) or copy to another course the teacher teaches:
    through the export format, so both behave exactly like an import."""
    data = export_playlist(session, source_course_id, playlist)
    title = f"{playlist.title} (copy)" if source_course_id == target_course_id else None
    return import_playlist(session, target_course_id, data, created_by=created_by,
                           title=title[:300] if title else None)


# -- a student's progress -------------------------------------------------------------
def _entry(student_path: path.Path, item_id: int) -> path.PathEntry:
    entry = entry_of(student_path, item_id)
    if entry is None:
        raise PlaylistError("That item has nothing to do yet.", 404)
    return entry


def entry_of(student_path: path.Path, item_id: int) -> path.PathEntry | None:
    """The item's place on the path (None for a choice board with no options)."""
    return next((e for e in student_path.entries if e.item.id == item_id), None)


def set_progress(session: Session, course_id: int, ctx: PlaylistContext, student_id: int,
                 item: PlaylistItem, status: str) -> None:
    """A student marks an item started, done or not started. Quick checks and
    checkpoints complete themselves from evidence; locked items cannot start."""
    if status not in path.PROGRESS_VALUES:
        raise PlaylistError("Mark the item started, done or not started.")
    if item.kind == "choice_board":
        raise PlaylistError("Pick one of the board's options and mark that one instead.")
    if item.kind in ("quick_check", "checkpoint") and status == "done":
        raise PlaylistError("This item completes itself when your work on it is recorded.")
    entry = _entry(student_path(session, course_id, ctx, student_id), item.id)
    if entry.state is path.State.LOCKED and status != "not_started":
        raise PlaylistError("This item is locked: " + "; ".join(entry.reasons) + ".", 409)
    _store_progress(session, course_id, ctx.playlist.id, item.id, student_id, status)
    # activityProgress of the LMS score follows the student's progress.
    grading.scores_changed(session, course_id, [student_id])


def _store_progress(session: Session, course_id: int, playlist_id: int, item_id: int,
                    student_id: int, status: str) -> None:
    now = utcnow()
    current = session.scalar(select(ItemProgress).where(
        ItemProgress.student_id == student_id, ItemProgress.item_id == item_id))
    started = current.started_at if current and current.started_at else None
    upsert(session, ItemProgress, ["student_id", "item_id"], {
        "course_id": course_id, "playlist_id": playlist_id, "item_id": item_id,
        "student_id": student_id, "status": status,
        "started_at": started or (now if status != "not_started" else None),
        "done_at": now if status == "done" else None, "updated_at": now},
        ["status", "started_at", "done_at", "updated_at"], returning_id=False)


@dataclass(frozen=True)
class QuickCheckOutcome:
    attempt: QuickCheckAttempt
    result: quick_check.QuickCheckResult
    message: str


def take_quick_check(session: Session, course_id: int, ctx: PlaylistContext, student_id: int,
                     item: PlaylistItem, answers: Mapping[int, str]) -> QuickCheckOutcome:
    """Score the answers onto the scale, record them as evidence on the
    item's standard (rollup updated in the same transaction) and complete the
    item. Every question must be answered; a retake is new evidence."""
    if item.kind != "quick_check":
        raise PlaylistError("Only a quick check can be answered here.")
    entry = _entry(student_path(session, course_id, ctx, student_id), item.id)
    if entry.state is path.State.LOCKED:
        raise PlaylistError("This quick check is locked: " + "; ".join(entry.reasons) + ".",
                            409)
    questions = quick_check.questions_from_json(item.questions or [])
    result = quick_check.grade(questions, answers)
    if result.missing:
        raise PlaylistError("Answer every question before checking: question(s) "
                            + ", ".join(map(str, result.missing)) + " are empty.")
    score = quick_check.score_on_scale(result.correct, result.total, ctx.scale_points)
    levels = grading.scale_for(session, course_id)
    level = max((lvl for lvl in levels if lvl.points <= score), key=lambda lvl: lvl.points,
                default=None)
    standard_id = item.standard_ids[0]
    evidence = grading.record_evidence(
        session, course_id=course_id, student_id=student_id, standard_id=standard_id,
        score=score, assessed_at=utcnow(), source="quick check", recorded_by=student_id,
        item_ref=f"Quick check: {item.title}"[:200],
        note=f"{result.correct} of {result.total} correct", queue_scores=False)
    attempt = QuickCheckAttempt(course_id=course_id, item_id=item.id, student_id=student_id,
                                answers=[answers.get(i) for i in range(result.total)],
                                correct=result.correct, total=result.total, score=score,
                                evidence_id=evidence.id, created_at=utcnow())
    session.add(attempt)
    _store_progress(session, course_id, ctx.playlist.id, item.id, student_id, "done")
    session.flush()
    grading.scores_changed(session, course_id, [student_id])
    return QuickCheckOutcome(attempt, result, quick_check.describe(
        result, score, level.label if level else None))


def assess_checkpoint(session: Session, course_id: int, ctx: PlaylistContext,
                      item: PlaylistItem, scores: Mapping[int, Mapping[int, str]], *,
                      recorded_by: int, assessed_at: datetime, note: str = "") -> int:
    """A teacher's scores on a checkpoint's standards (student → standard →
    score); each is evidence, and the checkpoint is done for those students.
    All scores are checked before anything is written."""
    if item.kind != "checkpoint":
        raise PlaylistError("Only a checkpoint is assessed here.")
    students = {s.id for s in grading.students_of(session, course_id)}
    levels = grading.scale_for(session, course_id)
    problems = []
    for student_id, per_standard in scores.items():
        if student_id not in students:
            raise PlaylistError("That student is not in this course.", 404)
        for standard_id, raw in per_standard.items():
            if standard_id not in (item.standard_ids or []):
                raise PlaylistError("Score this checkpoint's own standards only.")
            try:
                grading.check_score(raw, levels)
            except grading.GradingError as exc:
                problems.append(str(exc))
    if problems:
        raise PlaylistError(" ".join(dict.fromkeys(problems)))
    count = 0
    for student_id, per_standard in scores.items():
        for standard_id, raw in per_standard.items():
            grading.record_evidence(
                session, course_id=course_id, student_id=student_id, standard_id=standard_id,
                score=raw, assessed_at=assessed_at, source="checkpoint",
                recorded_by=recorded_by, item_ref=f"Checkpoint: {item.title}"[:200], note=note,
                queue_scores=False)
            count += 1
        if per_standard:
            _store_progress(session, course_id, ctx.playlist.id, item.id, student_id, "done")
    grading.scores_changed(session, course_id, list(scores))
    return count


def set_target(session: Session, course_id: int, playlist: Playlist, student_id: int,
               target, today: date) -> None:
    """A student's own target date (their pace); empty clears it."""
    if not (target or "").strip():
        row = session.scalar(select(PlaylistTarget).where(
            PlaylistTarget.student_id == student_id, PlaylistTarget.playlist_id == playlist.id))
        if row is not None:
            session.delete(row)
        return
    try:
        when = date.fromisoformat(target.strip())
    except ValueError:
        raise PlaylistError(f"{target[:20]!r} is not a date; pick one from the calendar.") \
            from None
    if when < today:
        raise PlaylistError("Choose a target date from today onwards.")
    row = session.scalar(select(PlaylistTarget).where(
        PlaylistTarget.student_id == student_id, PlaylistTarget.playlist_id == playlist.id))
    start = min(row.start_date, today) if row else today
    upsert(session, PlaylistTarget, ["student_id", "playlist_id"], {
        "course_id": course_id, "playlist_id": playlist.id, "student_id": student_id,
        "start_date": start, "target_date": when, "updated_at": utcnow()},
        ["target_date", "updated_at"], returning_id=False)


def target_of(session: Session, playlist_id: int, student_id: int) -> PlaylistTarget | None:
    return session.scalar(select(PlaylistTarget).where(
        PlaylistTarget.student_id == student_id, PlaylistTarget.playlist_id == playlist_id))


def pace_for(student_path: path.Path, target: PlaylistTarget | None, today: date
             ) -> path.PaceStatus:
    if target is None:
        return path.pace(today, None, today, student_path.must_done, student_path.must_total)
    return path.pace(target.start_date, target.target_date, today, student_path.must_done,
                     student_path.must_total)


def class_activity(session: Session, course_id: int, ctx: PlaylistContext, today: date
                   ) -> tuple[list, list[path.Path]]:
    """Every active student's path, last activity, attempts below mastery and
    pace on one playlist: the class progress view's input, in five queries
    read as plain tuples (500 students x 40 items)."""
    from lti_tool.playlists.class_progress import StudentActivity

    conn = session.connection()
    students = _class_list(conn, course_id)
    mastery: dict[int, dict[int, float | None]] = {s.id: {} for s in students}
    for student_id, standard_id, value in conn.execute(
            select(Rollup.student_id, Rollup.standard_id, Rollup.value)
            .where(Rollup.course_id == course_id)):
        if student_id in mastery:
            mastery[student_id][standard_id] = value
    progress: dict[int, dict[int, str]] = {s.id: {} for s in students}
    for student_id, item_id, status in conn.execute(
            select(ItemProgress.student_id, ItemProgress.item_id, ItemProgress.status)
            .where(ItemProgress.playlist_id == ctx.playlist.id)):
        if student_id in progress:
            progress[student_id][item_id] = status
    standard_ids = {s for i in ctx.items for s in (i.standard_ids or [])} or {0}
    last: dict[int, datetime] = {}
    for student_id, when in conn.execute(
            select(ItemProgress.student_id, func.max(ItemProgress.updated_at))
            .where(ItemProgress.playlist_id == ctx.playlist.id)
            .group_by(ItemProgress.student_id)):
        last[student_id] = aware(when)
    # Attempts below mastery since the last one at mastery, per standard; and
    # the student's latest quick check or checkpoint (their own activity).
    below: dict[int, dict[int, int]] = {s.id: {} for s in students}
    latest: dict[int, datetime] = {}
    points = ctx.mastery_points
    for student_id, standard_id, score, created in conn.execute(
            select(Evidence.student_id, Evidence.standard_id, Evidence.score,
                   Evidence.created_at)
            .where(Evidence.course_id == course_id, Evidence.superseded_by.is_(None),
                   Evidence.source.in_(("quick check", "checkpoint")),
                   Evidence.standard_id.in_(standard_ids))
            .order_by(Evidence.assessed_at, Evidence.id)):
        counts = below.get(student_id)
        if counts is not None:
            counts[standard_id] = 0 if score >= points else counts.get(standard_id, 0) + 1
            if student_id not in latest or created > latest[student_id]:
                latest[student_id] = created  # one backend: all naive or all aware
    for student_id, when in latest.items():
        when = aware(when)
        if student_id not in last or when > last[student_id]:
            last[student_id] = when
    targets = {t.student_id: t for t in session.scalars(select(PlaylistTarget).where(
        PlaylistTarget.playlist_id == ctx.playlist.id))}
    activities, paths = [], []
    for student in students:
        mine = mastery[student.id]
        student_path = ctx.compute(mine, progress[student.id])
        paths.append(student_path)
        target = targets.get(student.id)
        activities.append(StudentActivity(
            student_id=student.id, name=student.label,
            path=student_path, last_activity=last.get(student.id),
            attempts_below={k: v for k, v in below[student.id].items()
                            if v and not (mine.get(k) or 0) >= points},
            pace=pace_for(student_path, target, today) if target else None))
    return activities, paths


@dataclass(frozen=True)
class _Member:
    id: int
    label: str


def _class_list(conn, course_id: int) -> list[_Member]:
    """The active students as (id, name) in grading.students_of's order,
    read as plain rows (500 ORM objects cost more than the query)."""
    from lti_tool.courses.models import Enrollment, User

    rows = conn.execute(
        select(User.id, User.sub, User.name, User.given_name, User.family_name, User.email)
        .join(Enrollment, Enrollment.user_id == User.id)
        .where(Enrollment.course_id == course_id, Enrollment.role == "student",
               Enrollment.active.is_(True))).all()
    members = []
    for r in rows:
        joined = " ".join(p for p in (r.given_name, r.family_name) if p)
        display = r.name or joined or r.email
        members.append(((r.family_name or display or "").casefold(),
                        (r.given_name or "").casefold(), r.id, display or r.sub))
    members.sort()
    return [_Member(id=m[2], label=m[3]) for m in members]


# -- teacher actions from data ---------------------------------------------------
def assign(session: Session, course_id: int, *, kind: str, standard_id: int,
           student_ids: Iterable[int], playlist_id: int | None, note: str,
           created_by: int) -> int:
    """Assign a reteach playlist or a reassessment on one standard to several
    students at once; a student who already has the same open assignment is
    not given it twice. Returns how many were assigned."""
    if kind not in ("playlist", "reassessment"):
        raise PlaylistError("Choose a reteach playlist or a reassessment.")
    try:
        grading.course_standard(session, course_id, standard_id)
    except grading.GradingError as exc:
        raise PlaylistError(str(exc), exc.status) from None
    if kind == "playlist":
        if playlist_id is None:
            raise PlaylistError("Choose the reteach playlist to assign.")
        course_playlist(session, course_id, playlist_id)
    else:
        playlist_id = None
    ids = list(dict.fromkeys(student_ids))
    if not ids:
        raise PlaylistError("Choose at least one student.")
    enrolled = {s.id for s in grading.students_of(session, course_id)}
    if set(ids) - enrolled:
        raise PlaylistError("Choose students of this course only.", 404)
    note = _text(note, "note", 1000, required=False)
    already = set(session.scalars(select(Assignment.student_id).where(
        Assignment.course_id == course_id, Assignment.kind == kind,
        Assignment.standard_id == standard_id, Assignment.completed_at.is_(None),
        (Assignment.playlist_id == playlist_id) if playlist_id is not None
        else Assignment.playlist_id.is_(None))))
    now = utcnow()
    new = [i for i in ids if i not in already]
    for student_id in new:
        session.add(Assignment(course_id=course_id, student_id=student_id, kind=kind,
                               playlist_id=playlist_id, standard_id=standard_id, note=note,
                               created_by=created_by, created_at=now))
    session.flush()
    return len(new)


@dataclass(frozen=True)
class OpenAssignment:
    row: Assignment
    standard: Standard
    playlist: Playlist | None


def open_assignments(session: Session, course_id: int, student_id: int,
                     mastery: Mapping[int, float | None] | None = None,
                     mastery_points: float | None = None) -> list[OpenAssignment]:
    """What a teacher assigned that still matters: a reassessment until new
    evidence on its standard arrives, a reteach playlist until the standard is
    mastered. Worked out on read, so showing the page never writes."""
    rows = session.execute(
        select(Assignment, Standard).join(Standard, Standard.id == Assignment.standard_id)
        .where(Assignment.course_id == course_id, Assignment.student_id == student_id,
               Assignment.completed_at.is_(None))
        .order_by(Assignment.created_at.desc(), Assignment.id.desc())).all()
    if not rows:
        return []
    if mastery is None:
        mastery = mastery_of(session, course_id, student_id)
    if mastery_points is None:
        mastery_points = grading.policy_for(session, course_id).mastery_points
    latest = dict(session.execute(
        select(Evidence.standard_id, func.max(Evidence.created_at))
        .where(Evidence.course_id == course_id, Evidence.student_id == student_id)
        .group_by(Evidence.standard_id)).all())
    playlists = {p.id: p for p in playlists_of(session, course_id)}
    out = []
    for row, standard in rows:
        value = mastery.get(standard.id)
        if row.kind == "reassessment":
            newest = latest.get(standard.id)
            if newest is not None and aware(newest) > aware(row.created_at):
                continue
        elif value is not None and value >= mastery_points:
            continue
        out.append(OpenAssignment(row, standard, playlists.get(row.playlist_id)))
    return out


def assignments_on(session: Session, course_id: int, standard_id: int) -> list[tuple]:
    """Open assignments on one standard, with the student: the regroup view."""
    from lti_tool.courses.models import User

    return list(session.execute(
        select(Assignment, User).join(User, User.id == Assignment.student_id)
        .where(Assignment.course_id == course_id, Assignment.standard_id == standard_id,
               Assignment.completed_at.is_(None))
        .order_by(Assignment.created_at.desc(), Assignment.id.desc())).all())


def cancel_assignment(session: Session, course_id: int, assignment_id: int) -> None:
    row = session.get(Assignment, assignment_id)
    if row is None or row.course_id != course_id:
        raise PlaylistError("That assignment is not part of this course.", 404)
    session.execute(update(Assignment).where(Assignment.id == row.id)
                    .values(completed_at=utcnow()))


