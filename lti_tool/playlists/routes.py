"""Playlist pages: teachers author playlists, assess checkpoints and watch the
class; students follow their personal path. Thin: the work is in service.py
and the pure modules (path, quick_check, transfer, class_progress)."""

from __future__ import annotations

from datetime import date

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from markupsafe import Markup
from sqlalchemy import func, select

from lti_tool.courses.models import Course, Enrollment
from lti_tool.courses.routes import require_session
from lti_tool.errors import UserError
from lti_tool.grades import service as grading
from lti_tool.grades.models import Rollup
from lti_tool.playlists import class_progress, content, embedding, path, service, transfer
from lti_tool.playlists.agency import goals_for, open_reflection_requests
from lti_tool.playlists.models import ItemProgress, QuickCheckAttempt
from lti_tool.playlists.service import PlaylistError
from lti_tool.timeutil import utcnow
from lti_tool.web import get_db, refuse

bp = Blueprint("playlists", __name__)

STATE_LABELS = {
    "locked": "Locked", "available": "Ready to start", "in_progress": "In progress",
    "done": "Done", "mastered_optional": "Mastered — optional",
}


@bp.app_template_global()
def state_label(state) -> str:
    return STATE_LABELS[getattr(state, "value", state)]


@bp.app_template_global()
def kind_label(kind) -> str:
    return service.KIND_LABELS.get(getattr(kind, "value", kind), str(kind))


@bp.app_template_global()
def tag_label(tag) -> str:
    return service.TAG_LABELS.get(getattr(tag, "value", tag), str(tag))


def _playlist_or_404(db, course_id: int, playlist_id: int):
    try:
        return service.course_playlist(db, course_id, playlist_id)
    except PlaylistError:
        abort(404)


def _item_or_404(db, playlist, item_id: int):
    try:
        return service.playlist_item(db, playlist, item_id)
    except PlaylistError:
        abort(404)


def _back(endpoint: str, current, **values):
    return redirect(url_for(endpoint, t=current.token, **values), code=303)


def _today() -> date:
    return utcnow().date()


# -- teacher: the course's playlists ------------------------------------------------
@bp.route("/course/playlists", methods=["GET", "POST"])
@require_session(teacher=True, course=True)
def course_playlists(current):
    db = get_db()
    course_id = current.course.id
    if request.method == "POST":
        try:
            playlist = service.save_playlist(
                db, course_id, title=request.form.get("title"),
                description=request.form.get("description"),
                standard_ids=request.form.getlist("standards"), created_by=current.user.id)
            db.commit()
        except PlaylistError as exc:
            return refuse(exc, "playlists/list.html", **_list_context(current))
        return _back("playlists.edit_playlist", current, playlist_id=playlist.id)
    return render_template("playlists/list.html", **_list_context(current))


def _list_context(current) -> dict:
    db = get_db()
    course_id = current.course.id
    playlists = service.playlists_of(db, course_id)
    counts = dict(db.execute(
        select(service.PlaylistItem.playlist_id, func.count())
        .where(service.PlaylistItem.playlist_id.in_([p.id for p in playlists] or [0]),
               service.PlaylistItem.board_id.is_(None))
        .group_by(service.PlaylistItem.playlist_id)).all())
    return dict(current=current, playlists=playlists, counts=counts,
                standards=grading.standards_of(db, course_id), form=request.form,
                other_courses=_other_courses(current))


def _other_courses(current) -> list[Course]:
    """Courses of the same deployment where this person also teaches (the
    only places a copy may go: one LMS identity, one tenant)."""
    db = get_db()
    return list(db.scalars(
        select(Course).join(Enrollment, Enrollment.course_id == Course.id)
        .where(Enrollment.user_id == current.user.id, Enrollment.role == "teacher",
               Course.deployment_pk == current.course.deployment_pk,
               Course.id != current.course.id)
        .order_by(Course.title)))


@bp.route("/course/playlists/import", methods=["POST"])
@require_session(teacher=True, course=True)
def import_playlist(current):
    db = get_db()
    upload = request.files.get("file")
    try:
        if not upload or not upload.filename:
            raise transfer.TransferError(["Choose a playlist file (.json) to import."])
        data = transfer.parse_document(upload.read())
        playlist = service.import_playlist(db, current.course.id, data,
                                           created_by=current.user.id)
        db.commit()
    except transfer.TransferError as exc:
        db.rollback()
        return render_template("playlists/list.html", import_errors=exc.errors,
                               **_list_context(current)), 400
    except PlaylistError as exc:
        return refuse(exc, "playlists/list.html", **_list_context(current))
    return _back("playlists.edit_playlist", current, playlist_id=playlist.id)


# -- teacher: one playlist ------------------------------------------------------------
def _editor_context(current, playlist) -> dict:
    db = get_db()
    course_id = current.course.id
    items = service.items_of(db, playlist.id)
    standards = grading.standards_of(db, course_id)
    return dict(current=current, playlist=playlist, items=items, standards=standards,
                standard_map={s.id: s for s in standards},
                titles={i.id: i.title for i in items},
                option_counts={b.id: sum(1 for i in items if i.board_id == b.id)
                               for b in items if b.kind == "choice_board"},
                students=grading.students_of(db, course_id),
                other_courses=_other_courses(current), form=request.form)


@bp.route("/course/playlists/<int:playlist_id>", methods=["GET", "POST"])
@require_session(teacher=True, course=True)
def edit_playlist(current, playlist_id: int):
    db = get_db()
    playlist = _playlist_or_404(db, current.course.id, playlist_id)
    message = None
    if request.method == "POST":
        try:
            service.save_playlist(db, current.course.id, title=request.form.get("title"),
                                  description=request.form.get("description"),
                                  standard_ids=request.form.getlist("standards"),
                                  created_by=current.user.id, playlist=playlist)
            db.commit()
            message = "Saved."
        except PlaylistError as exc:
            return refuse(exc, "playlists/edit.html", **_editor_context(current, playlist))
    return render_template("playlists/edit.html", message=message,
                           **_editor_context(current, playlist))


@bp.route("/course/playlists/<int:playlist_id>/publish", methods=["POST"])
@require_session(teacher=True, course=True)
def publish(current, playlist_id: int):
    db = get_db()
    playlist = _playlist_or_404(db, current.course.id, playlist_id)
    try:
        service.set_published(db, playlist, request.form.get("published") == "1")
        db.commit()
    except PlaylistError as exc:
        return refuse(exc, "playlists/edit.html", **_editor_context(current, playlist))
    return _back("playlists.edit_playlist", current, playlist_id=playlist.id)


@bp.route("/course/playlists/<int:playlist_id>/copy", methods=["POST"])
@require_session(teacher=True, course=True)
def copy(current, playlist_id: int):
    """Duplicate here, or copy to another course this teacher teaches."""
    db = get_db()
    playlist = _playlist_or_404(db, current.course.id, playlist_id)
    target = request.form.get("course_id") or str(current.course.id)
    allowed = {current.course.id} | {c.id for c in _other_courses(current)}
    if not target.isdigit() or int(target) not in allowed:
        return refuse(PlaylistError("Choose one of your own courses to copy to."))
    try:
        copied = service.copy_playlist(db, current.course.id, playlist, int(target),
                                       current.user.id)
        db.commit()
    except PlaylistError as exc:
        return refuse(exc)
    if copied.course_id == current.course.id:
        return _back("playlists.edit_playlist", current, playlist_id=copied.id)
    return _back("playlists.course_playlists", current, copied=copied.title)


@bp.route("/course/playlists/<int:playlist_id>/export.json")
@require_session(teacher=True, course=True)
def export(current, playlist_id: int):
    db = get_db()
    playlist = _playlist_or_404(db, current.course.id, playlist_id)
    body = transfer.to_json_bytes(service.export_playlist(db, current.course.id, playlist))
    safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in playlist.title)[:60]
    return Response(body, mimetype="application/json", headers={
        "Content-Disposition": f'attachment; filename="playlist-{safe or playlist.id}.json"'})


# -- teacher: items -------------------------------------------------------------------
def _item_form() -> service.ItemForm:
    f = request.form
    return service.ItemForm(
        kind=f.get("kind", ""), tag=f.get("tag", ""), title=f.get("title", ""),
        body=f.get("body", ""), url=f.get("url", ""),
        standard_ids=tuple(f.getlist("standards")),
        prereq_standard_ids=tuple(f.getlist("prereq_standards")),
        prereq_item_ids=tuple(f.getlist("prereq_items")), board_id=f.get("board_id", ""),
        min_choices=f.get("min_choices", "1"), questions=f.get("questions", ""))


def _embed_check(url: str) -> bool:
    settings = current_app.extensions["pathwise"].settings
    return embedding.allows_framing(url, settings.base_url)


@bp.route("/course/playlists/<int:playlist_id>/items/new", methods=["GET", "POST"])
@bp.route("/course/playlists/<int:playlist_id>/items/<int:item_id>", methods=["GET", "POST"])
@require_session(teacher=True, course=True)
def edit_item(current, playlist_id: int, item_id: int | None = None):
    db = get_db()
    playlist = _playlist_or_404(db, current.course.id, playlist_id)
    item = _item_or_404(db, playlist, item_id) if item_id is not None else None
    kind = request.values.get("kind") or (item.kind if item else "resource")
    if kind not in service.KINDS:
        kind = "resource"
    context = dict(_editor_context(current, playlist), item=item, kind=kind,
                   kinds=service.KIND_LABELS, tags=service.TAG_LABELS,
                   questions_text=_questions_text(item))
    if request.method == "POST":
        try:
            saved = service.save_item(db, current.course.id, playlist, _item_form(), item=item,
                                      embed_check=_embed_check)
            db.commit()
        except PlaylistError as exc:
            return refuse(exc, "playlists/item_form.html", **context)
        return redirect(url_for("playlists.edit_playlist", playlist_id=playlist.id,
                                t=current.token, _anchor=f"item-{saved.id}"), code=303)
    return render_template("playlists/item_form.html", **context)


def _questions_text(item) -> str:
    from lti_tool.playlists import quick_check

    if item is None or not item.questions:
        return ""
    return quick_check.questions_to_text(quick_check.questions_from_json(item.questions))


@bp.route("/course/playlists/<int:playlist_id>/items/<int:item_id>/move", methods=["POST"])
@require_session(teacher=True, course=True)
def move_item(current, playlist_id: int, item_id: int):
    db = get_db()
    playlist = _playlist_or_404(db, current.course.id, playlist_id)
    item = _item_or_404(db, playlist, item_id)
    try:
        service.move_item(db, playlist, item, request.form.get("direction", ""))
        db.commit()
    except PlaylistError as exc:
        return refuse(exc)
    # Back to the moved item with focus on the same button (autofocus.js), for
    # keyboard users; no #anchor: scrolling to it would clear that focus.
    return redirect(url_for("playlists.edit_playlist", playlist_id=playlist.id,
                            t=current.token, moved=item.id,
                            dir=request.form.get("direction")), code=303)


@bp.route("/course/playlists/<int:playlist_id>/items/<int:item_id>/delete", methods=["POST"])
@require_session(teacher=True, course=True)
def delete_item(current, playlist_id: int, item_id: int):
    db = get_db()
    playlist = _playlist_or_404(db, current.course.id, playlist_id)
    item = _item_or_404(db, playlist, item_id)
    service.delete_item(db, current.course.id, playlist, item)
    db.commit()
    return _back("playlists.edit_playlist", current, playlist_id=playlist.id)


# -- teacher: checkpoint assessment ---------------------------------------------------
@bp.route("/course/playlists/<int:playlist_id>/items/<int:item_id>/assess",
          methods=["GET", "POST"])
@require_session(teacher=True, course=True)
def assess(current, playlist_id: int, item_id: int):
    db = get_db()
    course_id = current.course.id
    playlist = _playlist_or_404(db, course_id, playlist_id)
    item = _item_or_404(db, playlist, item_id)
    if item.kind != "checkpoint":
        abort(404)
    ctx = service.playlist_context(db, course_id, playlist)
    students = grading.students_of(db, course_id)
    standards = [ctx.standards[s] for s in item.standard_ids if s in ctx.standards]
    saved = 0
    if request.method == "POST":
        scores = {}
        for student in students:
            per = {st.id: request.form.get(f"score-{student.id}-{st.id}", "").strip()
                   for st in standards}
            per = {k: v for k, v in per.items() if v}
            if per:
                scores[student.id] = per
        try:
            when = grading.parse_when(request.form.get("assessed_at"))
            saved = service.assess_checkpoint(db, course_id, ctx, item, scores,
                                              recorded_by=current.user.id, assessed_at=when,
                                              note=request.form.get("note") or "")
            db.commit()
        except (PlaylistError, grading.GradingError) as exc:
            return refuse(exc, "playlists/assess.html", **_assess_context(
                current, playlist, item, students, standards))
    return render_template("playlists/assess.html", saved=saved, **_assess_context(
        current, playlist, item, students, standards))


def _assess_context(current, playlist, item, students, standards) -> dict:
    db = get_db()
    done = set(db.scalars(select(ItemProgress.student_id).where(
        ItemProgress.item_id == item.id, ItemProgress.status == "done")))
    rollups = {(r.student_id, r.standard_id): r for r in db.scalars(select(Rollup).where(
        Rollup.course_id == current.course.id,
        Rollup.standard_id.in_([s.id for s in standards] or [0])))}
    levels = grading.scale_for(db, current.course.id)
    return dict(current=current, playlist=playlist, item=item, students=students,
                standards=standards, done=done, rollups=rollups, levels=levels,
                form=request.form)


# -- teacher: the class's progress ----------------------------------------------------
@bp.route("/course/playlists/<int:playlist_id>/progress")
@require_session(teacher=True, course=True)
def progress(current, playlist_id: int):
    db = get_db()
    course_id = current.course.id
    playlist = _playlist_or_404(db, course_id, playlist_id)
    ctx = service.playlist_context(db, course_id, playlist)
    activities, paths = service.class_activity(db, course_id, ctx, _today())
    try:
        idle_days = max(1, min(int(request.args.get("idle", 7)), 365))
    except ValueError:
        idle_days = 7
    rows = class_progress.summarise(activities, now=utcnow(), standards=ctx.standards,
                                    idle_days=idle_days)
    sort = request.args.get("sort", "name")
    try:
        rows = class_progress.sort_rows(rows, sort)
    except ValueError:
        sort = "name"
    summaries = class_progress.item_summaries(paths)
    chart = Markup(class_progress.distribution_svg(
        summaries, title=f"{playlist.title}: where the class is on each item",
        id_prefix="progress"))
    return render_template("playlists/progress.html", current=current, playlist=playlist,
                           rows=rows, chart=chart, summaries=summaries, sort=sort,
                           idle_days=idle_days, states=list(path.State),
                           stuck_count=sum(1 for r in rows if r.stuck),
                           ready_count=sum(1 for r in rows if r.ready))


@bp.route("/course/playlists/<int:playlist_id>/preview")
@require_session(teacher=True, course=True)
def preview(current, playlist_id: int):
    """The path exactly as one student sees it (read-only)."""
    db = get_db()
    course_id = current.course.id
    playlist = _playlist_or_404(db, course_id, playlist_id)
    students = grading.students_of(db, course_id)
    raw = request.args.get("student", "")
    student = next((s for s in students if str(s.id) == raw), None)
    if raw and student is None:
        abort(404)
    context = _path_context(current, playlist, student.id if student else None)
    return render_template("playlists/path.html", preview_students=students,
                           preview_student=student, **context)


# -- teacher: assignments from the regroup view -----------------------------------------
@bp.route("/course/standards/<int:standard_id>/assign", methods=["POST"])
@require_session(teacher=True, course=True)
def assign(current, standard_id: int):
    db = get_db()
    kind = request.form.get("kind", "")
    raw_playlist = request.form.get("playlist_id", "")
    students = [int(v) for v in request.form.getlist("students") if v.isdigit()]
    try:
        count = service.assign(db, current.course.id, kind=kind, standard_id=standard_id,
                               student_ids=students,
                               playlist_id=int(raw_playlist) if raw_playlist.isdigit()
                               else None,
                               note=request.form.get("note", ""), created_by=current.user.id)
        db.commit()
    except PlaylistError as exc:
        return refuse(exc)
    return redirect(url_for("grades.regroup", standard_id=standard_id, t=current.token,
                            assigned=count), code=303)


@bp.route("/course/assignments/<int:assignment_id>/cancel", methods=["POST"])
@require_session(teacher=True, course=True)
def cancel_assignment(current, assignment_id: int):
    db = get_db()
    try:
        service.cancel_assignment(db, current.course.id, assignment_id)
        db.commit()
    except PlaylistError as exc:
        return refuse(exc)
    standard = request.form.get("standard_id", "")
    if standard.isdigit():
        return _back("grades.regroup", current, standard_id=int(standard))
    return _back("playlists.course_playlists", current)


# -- student: the personal path -----------------------------------------------------------
def _path_context(current, playlist, student_id: int | None) -> dict:
    """What the path page shows; student_id None = a teacher previewing as a
    student with no evidence and no progress."""
    db = get_db()
    course_id = current.course.id
    ctx = service.playlist_context(db, course_id, playlist)
    if student_id is None:
        student_path = ctx.compute({}, {})
        target = None
        assignments, goals, requests_ = [], [], []
    else:
        mastery = service.mastery_of(db, course_id, student_id)
        student_path = ctx.compute(mastery,
                                   service.progress_of(db, playlist.id, student_id))
        target = service.target_of(db, playlist.id, student_id)
        assignments = service.open_assignments(db, course_id, student_id, mastery,
                                               ctx.mastery_points)
        goals = goals_for(db, course_id, student_id)
        requests_ = open_reflection_requests(db, course_id, student_id)
    today = _today()
    by_board: dict[int, list] = {}
    for entry in student_path.entries:
        if entry.board_id is not None:
            by_board.setdefault(entry.board_id, []).append(entry)
    return dict(current=current, playlist=playlist, path=student_path, items=ctx.by_id,
                top=[e for e in student_path.entries if e.board_id is None],
                options=by_board, standards=ctx.standards, target=target,
                pace=service.pace_for(student_path, target, today), today=today,
                assignments=assignments, goals=goals, reflection_requests=requests_,
                form=request.form)


@bp.route("/my/playlists/<int:playlist_id>")
@require_session(course=True)
def my_playlist(current, playlist_id: int):
    db = get_db()
    try:
        playlist = service.student_playlist(db, current.course.id, current.user.id,
                                            playlist_id)
    except PlaylistError:
        abort(404)
    if current.is_teacher:
        return _back("playlists.preview", current, playlist_id=playlist.id)
    return render_template("playlists/path.html",
                           **_path_context(current, playlist, current.user.id))


def _student_playlist_or_404(current, playlist_id: int):
    if current.is_teacher:
        abort(403)
    try:
        return service.student_playlist(get_db(), current.course.id, current.user.id,
                                        playlist_id)
    except PlaylistError:
        abort(404)


@bp.route("/my/playlists/<int:playlist_id>/target", methods=["POST"])
@require_session(course=True)
def set_target(current, playlist_id: int):
    db = get_db()
    playlist = _student_playlist_or_404(current, playlist_id)
    try:
        service.set_target(db, current.course.id, playlist, current.user.id,
                           request.form.get("target_date", ""), _today())
        db.commit()
    except PlaylistError as exc:
        return refuse(exc, "playlists/path.html",
                     **_path_context(current, playlist, current.user.id))
    return redirect(url_for("playlists.my_playlist", playlist_id=playlist.id, t=current.token,
                            _anchor="pace"), code=303)


@bp.route("/my/playlists/<int:playlist_id>/items/<int:item_id>")
@require_session(course=True)
def my_item(current, playlist_id: int, item_id: int):
    playlist, ctx, item = _student_item(current, playlist_id, item_id)
    return _item_page(current, playlist, item, ctx=ctx)


def _student_item(current, playlist_id: int, item_id: int):
    """(playlist, its context, the item) for a student's item route, or 404."""
    db = get_db()
    playlist = _student_playlist_or_404(current, playlist_id)
    # The context first: it loads every item, so the item's lookup is free.
    ctx = service.playlist_context(db, current.course.id, playlist)
    return playlist, ctx, _item_or_404(db, playlist, item_id)


def _item_refused(current, playlist, item, ctx, exc: UserError):
    """The item page again, saying what to fix; nothing of the refused change
    is kept, and 404 stays plain "not found"."""
    get_db().rollback()
    if exc.status == 404:
        abort(404)
    return _item_page(current, playlist, item, error=str(exc), status=exc.status, ctx=ctx)


def _item_page(current, playlist, item, *, error: str | None = None, outcome=None,
               status: int = 200, ctx: service.PlaylistContext | None = None):
    db = get_db()
    course_id = current.course.id
    # The caller's context when it has one: it holds no mastery or progress,
    # so it is still right after a quick check or a progress change.
    ctx = ctx or service.playlist_context(db, course_id, playlist)
    student_path = service.student_path(db, course_id, ctx, current.user.id)
    entry = service.entry_of(student_path, item.id)
    if entry is None:
        abort(404)
    embed = None
    if item.kind == "video" and item.url:
        embed = content.video_embed_url(item.url)
    elif item.kind == "resource" and item.embeddable and item.url:
        embed = item.url
    if embed:
        g.frame_sources = [content.origin_of(embed)]
    if item.kind == "video" and item.url and content.is_video_file(item.url):
        g.media_sources = [content.origin_of(item.url)]
    from lti_tool.playlists import quick_check

    questions = quick_check.questions_from_json(item.questions or []) \
        if item.kind == "quick_check" else []
    attempts = list(db.scalars(select(QuickCheckAttempt).where(
        QuickCheckAttempt.item_id == item.id, QuickCheckAttempt.student_id == current.user.id)
        .order_by(QuickCheckAttempt.created_at.desc()))) if questions else []
    options = [e for e in student_path.entries if e.board_id == item.id]
    board = ctx.by_id.get(item.board_id) if item.board_id else None
    reflected = item.kind == "checkpoint" and entry.state is path.State.DONE
    return render_template(
        "playlists/item.html", current=current, playlist=playlist, item=item, entry=entry,
        embed=embed, video_file=item.kind == "video" and item.url and
        content.is_video_file(item.url), questions=questions, attempts=attempts,
        options=options, board=board, error=error, outcome=outcome, standards=ctx.standards,
        reflect=reflected, form=request.form), status


@bp.route("/my/playlists/<int:playlist_id>/items/<int:item_id>/progress", methods=["POST"])
@require_session(course=True)
def my_progress(current, playlist_id: int, item_id: int):
    db = get_db()
    playlist, ctx, item = _student_item(current, playlist_id, item_id)
    try:
        service.set_progress(db, current.course.id, ctx, current.user.id, item,
                             request.form.get("status", ""))
        db.commit()
    except PlaylistError as exc:
        return _item_refused(current, playlist, item, ctx, exc)
    if request.form.get("back") == "item":
        return _back("playlists.my_item", current, playlist_id=playlist.id, item_id=item.id)
    return redirect(url_for("playlists.my_playlist", playlist_id=playlist.id,
                            t=current.token, _anchor=f"item-{item.id}"), code=303)


@bp.route("/my/playlists/<int:playlist_id>/items/<int:item_id>/check", methods=["POST"])
@require_session(course=True)
def quick_check(current, playlist_id: int, item_id: int):
    db = get_db()
    playlist, ctx, item = _student_item(current, playlist_id, item_id)
    answers = {int(k[2:]): v for k, v in request.form.items()
               if k.startswith("q-") and k[2:].isdigit() and v.strip()}
    try:
        outcome = service.take_quick_check(db, current.course.id, ctx, current.user.id, item,
                                           answers)
    except (PlaylistError, grading.GradingError) as exc:
        return _item_refused(current, playlist, item, ctx, exc)
    # The page is drawn from this transaction's own writes, then committed:
    # one transaction, and no page that claims what a failed commit lost.
    page = _item_page(current, playlist, item, outcome=outcome, ctx=ctx)
    db.commit()
    return page


def student_playlists_summary(db, course_id: int, student_id: int) -> list[tuple]:
    """(playlist, path) for each playlist open to a student: the home page."""
    mastery = service.mastery_of(db, course_id, student_id)
    out = []
    for playlist in service.visible_playlists(db, course_id, student_id):
        ctx = service.playlist_context(db, course_id, playlist)
        out.append((playlist, ctx.compute(mastery,
                                          service.progress_of(db, playlist.id, student_id))))
    return out
