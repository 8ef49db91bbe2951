"""Teacher and student pages of the mastery gradebook. Thin: the work is in
service.py (database) and mastery.py / charts.py / standards_io.py (pure)."""

from __future__ import annotations

import csv
import io
import re

from flask import Blueprint, Response, abort, redirect, render_template, request, url_for
from markupsafe import Markup
from sqlalchemy import select

from lti_tool.courses.models import User
from lti_tool.courses.routes import require_session
from lti_tool.grades import (
    charts,
    evidence_io,
    gradebook_table,
    mastery,
    service,
    standards_io,
)
from lti_tool.grades.models import (
    EVIDENCE_SOURCES,
    Evidence,
    ReassessmentRequest,
    Rollup,
    Standard,
)
from lti_tool.timeutil import utcnow
from lti_tool.web import get_db, refuse

bp = Blueprint("grades", __name__)


@bp.app_template_global()
def badge(level, value=None) -> Markup:
    """A level with its label (and value): one implementation for every page."""
    return Markup(gradebook_table.badge_html(level, value))


bp.add_app_template_global(gradebook_table.level_class, "level_class")


@bp.app_template_global()
def text_on(colour: str) -> str:
    """White or dark text, whichever reads better on a teacher-chosen colour."""
    return "#ffffff" if charts.contrast_ratio(colour, "#ffffff") >= 4.5 else "#1d2433"


def _chart_levels(levels) -> list[charts.Level]:
    return [charts.Level(points=lvl.points, label=lvl.label, colour=lvl.colour,
                         pattern=lvl.pattern) for lvl in levels]


def _standard_or_404(db, course_id: int, standard_id: int) -> Standard:
    """A standard of this course; another course's id is simply not found."""
    try:
        return service.course_standard(db, course_id, standard_id)
    except service.GradingError:
        abort(404)


def _gradebook_data(db, course_id: int):
    """Everything the grid needs in three queries; rollups as plain tuples
    (30,000 ORM objects would cost more than the rest of the page)."""
    standards = service.standards_of(db, course_id)
    students = service.students_of(db, course_id)
    levels = service.scale_for(db, course_id)
    rollups = {(sid, stid): gradebook_table.Cell(value, overridden)
               for sid, stid, value, overridden in db.connection().execute(
                   select(Rollup.student_id, Rollup.standard_id, Rollup.value,
                          Rollup.overridden).where(Rollup.course_id == course_id))}
    return standards, students, levels, rollups


# -- teacher: gradebook ------------------------------------------------------
@bp.route("/course/gradebook")
@require_session(teacher=True, course=True)
def gradebook(current):
    db = get_db()
    course_id = current.course.id
    standards, students, levels, cells = _gradebook_data(db, course_id)
    chart_levels = _chart_levels(levels)
    hide_empty = request.args.get("hide_empty") == "1"
    if hide_empty:
        students = [s for s in students if any((s.id, st.id) in cells for st in standards)]
        standards = [st for st in standards if any((s.id, st.id) in cells for s in students)]
    sort = request.args.get("sort", "name")
    if sort.isdigit():
        sid = int(sort)

        def by_value(student):
            cell = cells.get((student.id, sid))
            return -(cell.value if cell and cell.value is not None else -1)
        students.sort(key=by_value)
    detail = url_for("grades.student_standard", student_id=0, standard_id=0) \
        .replace("/0/standards/0", "/{student}/standards/{standard}")
    table = gradebook_table.grid(
        [(s.id, s.display_name or s.sub) for s in students],
        [(st.id, st.code) for st in standards], cells, chart_levels,
        detail_url=detail, token=current.token)
    summaries = {st.id: Markup(charts.distribution_svg(
        [(lvl, table.counts[st.id][lvl.label]) for lvl in chart_levels],
        table.counts[st.id][None], title=f"{st.code}: students at each level",
        id_prefix=f"dist-{st.id}")) for st in standards}
    rows = table.rows
    from lti_tool.passback.models import CourseServices  # roster sync lives in passback

    return render_template("grades/gradebook.html", current=current, standards=standards,
                           students=students, rows=rows, levels=chart_levels,
                           summaries=summaries, sort=sort, hide_empty=hide_empty,
                           roster=db.get(CourseServices, course_id))


@bp.route("/course/gradebook.csv")
@require_session(teacher=True, course=True)
def gradebook_csv(current):
    db = get_db()
    standards, students, levels, cells = _gradebook_data(db, current.course.id)
    chart_levels = _chart_levels(levels)
    header = ["student", "lms_id"]
    for st in standards:
        header += [f"{st.code} value", f"{st.code} level"]

    def row(student):
        values = [student.display_name or "", student.sub]
        for st in standards:
            r = cells.get((student.id, st.id))
            level = charts.level_for(r.value if r else None, chart_levels)
            values += ["" if not r or r.value is None else f"{r.value:g}",
                       level.label if level else "No evidence"]
        return values
    return _csv_table(header, (row(s) for s in students), "gradebook.csv")


# -- teacher: standards ----------------------------------------------------------
@bp.route("/course/standards", methods=["GET", "POST"])
@require_session(teacher=True, course=True)
def standards(current):
    db = get_db()
    course_id = current.course.id
    message = error = None
    if request.method == "POST":
        try:
            rows = _rows_from_request()
            created, updated = service.import_standards(db, course_id, rows)
            db.commit()
            message = f"{created} standard(s) added, {updated} updated."
        except standards_io.StandardsImportError as exc:
            db.rollback()
            error = exc.errors
        except service.GradingError as exc:
            return refuse(exc)
    editing = None
    if request.args.get("edit", "").isdigit():
        editing = _standard_or_404(db, course_id, int(request.args["edit"]))
    return _standards_page(current, message=message, errors=error, editing=editing)


def _standards_page(current, *, message: str | None, errors: list[str] | None,
                    editing: Standard | None = None):
    """The standards page, with the outcome of what was just submitted."""
    db = get_db()
    course_id = current.course.id
    return render_template("grades/standards.html", current=current,
                           standards=service.standards_of(db, course_id),
                           groups=service.groups_of(db, course_id), message=message,
                           errors=errors, methods=list(mastery.Method),
                           editing=editing), 400 if errors else 200


def _rows_from_request() -> list[standards_io.StandardRow]:
    """One standard typed in the form, or an uploaded CSV or CASE file."""
    upload = request.files.get("file")
    if upload and upload.filename:
        data = upload.read()
        start = data.removeprefix(b"\xef\xbb\xbf").lstrip()[:1]
        looks_json = start in (b"{", b"[") or upload.filename.lower().endswith(".json")
        return standards_io.parse_case(data) if looks_json else standards_io.parse_csv(data)
    fields = {k: (request.form.get(k) or "").strip()
              for k in ("code", "title", "description", "group")}
    if not fields["code"] and not fields["title"]:
        raise standards_io.StandardsImportError(
            ["Type a code and a title, or choose a CSV or CASE file to import."])
    line = io.StringIO()
    csv.writer(line).writerows([["code", "title", "description", "group"],
                                [fields["code"], fields["title"], fields["description"],
                                 fields["group"]]])
    return standards_io.parse_csv(line.getvalue())


@bp.route("/course/standards.csv")
@require_session(teacher=True, course=True)
def standards_csv(current):
    db = get_db()
    groups = service.groups_of(db, current.course.id)
    rows = [standards_io.StandardRow(code=s.code, title=s.title, description=s.description,
                                     group=groups[s.group_id].name if s.group_id else None,
                                     position=s.position)
            for s in service.standards_of(db, current.course.id)]
    return _csv_download(standards_io.to_csv(rows), "standards.csv")


def _csv_download(text: str, filename: str) -> Response:
    # A BOM, so spreadsheet programs read accented names as UTF-8. The name may
    # carry a teacher's (or a CASE file's) standard code: keep it to safe
    # characters so it can never add parameters to the header.
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", filename).strip("-.") or "export.csv"
    return Response(text.encode("utf-8-sig"), mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="{safe}"'})


def _csv_table(header: list[str], rows, filename: str) -> Response:
    """A table as a CSV download, every cell defused against formula injection."""
    out = io.StringIO()
    writer = csv.writer(out)
    for row in [header, *rows]:
        writer.writerow([standards_io.defuse(v) for v in row])
    return _csv_download(out.getvalue(), filename)


@bp.route("/course/evidence/import", methods=["POST"])
@require_session(teacher=True, course=True)
def import_evidence(current):
    """Evidence from a spreadsheet: all rows or none."""
    db = get_db()
    course_id = current.course.id
    upload = request.files.get("file")
    students = service.students_of(db, course_id)
    standards = {s.code: s.id for s in service.standards_of(db, course_id)}
    levels = service.scale_for(db, course_id)
    try:
        if not upload or not upload.filename:
            raise evidence_io.EvidenceImportError(["Choose a CSV file to import."])
        rows = evidence_io.parse_evidence_csv(
            upload.read(), students=service.identifiers_of(students), standards=standards,
            scale_max=max(lvl.points for lvl in levels))
        count = service.import_evidence(db, course_id, rows, current.user.id)
        db.commit()
    except evidence_io.EvidenceImportError as exc:
        db.rollback()
        return _standards_page(current, message=None, errors=exc.errors)
    return _standards_page(current, message=f"{count} piece(s) of evidence imported.",
                           errors=None)


@bp.route("/course/standards/<int:standard_id>/method", methods=["POST"])
@require_session(teacher=True, course=True)
def standard_method(current, standard_id: int):
    """A standard may use its own calculation instead of the course's."""
    db = get_db()
    standard = _standard_or_404(db, current.course.id, standard_id)
    method = request.form.get("method") or None
    if method is not None and method not in {m.value for m in mastery.Method}:
        return refuse(service.GradingError(f"Unknown calculation method {method[:30]!r}."))
    standard.method = method
    service.recompute_course(db, current.course.id)
    db.commit()
    return redirect(url_for("grades.standards", t=current.token), code=303)


@bp.route("/course/standards/<int:standard_id>/groups")
@require_session(teacher=True, course=True)
def regroup(current, standard_id: int):
    """Live groups of students at each level of one standard, to act on."""
    db = get_db()
    course_id = current.course.id
    standard = _standard_or_404(db, course_id, standard_id)
    levels = _chart_levels(service.scale_for(db, course_id))
    rollups = {r.student_id: r for r in db.scalars(select(Rollup).where(
        Rollup.standard_id == standard.id))}
    groups: dict[str, list] = {lvl.label: [] for lvl in levels}
    groups["No evidence"] = []
    for student in service.students_of(db, course_id):
        r = rollups.get(student.id)
        level = charts.level_for(r.value if r else None, levels)
        groups[level.label if level else "No evidence"].append((student, r))
    if request.args.get("format") == "csv":
        return _csv_table(["level", "student", "lms_id", "value"], (
            (label, student.display_name or "", student.sub,
             "" if not r or r.value is None else f"{r.value:g}")
            for label, members in groups.items() for student, r in members),
            f"groups-{standard.code}.csv")
    # Acting on the groups (reteach playlist, reassessment) is the playlists
    # package's work; imported here so grades does not depend on it at load.
    from lti_tool.playlists import service as playlists

    policy = service.policy_for(db, course_id)
    below = [student.id for label, members in groups.items() for student, r in members
             if r is None or r.value is None or r.value < policy.mastery_points]
    return render_template("grades/regroup.html", current=current, standard=standard,
                           groups=groups, levels=levels, below=set(below),
                           playlists=playlists.playlists_of(db, course_id),
                           assigned=playlists.assignments_on(db, course_id, standard.id),
                           mastery_points=policy.mastery_points)


# -- teacher: evidence for the whole class on one standard ----------------------
@bp.route("/course/standards/<int:standard_id>/evidence", methods=["GET", "POST"])
@require_session(teacher=True, course=True)
def class_evidence(current, standard_id: int):
    db = get_db()
    course_id = current.course.id
    standard = _standard_or_404(db, course_id, standard_id)
    students = service.students_of(db, course_id)
    levels = service.scale_for(db, course_id)
    errors: dict[int, str] = {}
    saved = 0
    if request.method == "POST":
        try:
            when = service.parse_when(request.form.get("assessed_at"))
        except service.GradingError as exc:
            return refuse(exc)
        source = request.form.get("source", "checkpoint")
        for student in students:
            raw = (request.form.get(f"score-{student.id}") or "").strip()
            if not raw:
                continue
            try:
                service.check_score(raw, levels)
            except service.GradingError as exc:
                errors[student.id] = str(exc)
        if not errors:
            changed: list[int] = []
            try:
                for student in students:
                    raw = (request.form.get(f"score-{student.id}") or "").strip()
                    if raw:
                        service.record_evidence(
                            db, course_id=course_id, student_id=student.id,
                            standard_id=standard.id, score=raw, assessed_at=when,
                            source=source, recorded_by=current.user.id,
                            item_ref=request.form.get("item_ref") or None,
                            note=request.form.get(f"note-{student.id}") or "",
                            queue_scores=False)
                        changed.append(student.id)
                service.scores_changed(db, course_id, changed)
                db.commit()
                saved = len(changed)
            except service.GradingError as exc:
                return refuse(exc)
    rollups = {r.student_id: r for r in db.scalars(select(Rollup).where(
        Rollup.standard_id == standard.id))}
    status = 400 if errors else 200
    return render_template("grades/class_evidence.html", current=current, standard=standard,
                           students=students, levels=levels, rollups=rollups, errors=errors,
                           saved=saved, sources=EVIDENCE_SOURCES,
                           form=request.form if errors else {}), status


# -- teacher: one student on one standard ---------------------------------------
def _detail_context(db, course_id: int, student_id: int, standard_id: int):
    standard = service.course_standard(db, course_id, standard_id)
    student = service.course_student(db, course_id, student_id)
    policy = service.policy_for(db, course_id)
    levels = service.scale_for(db, course_id)
    settings = service.settings_for(policy, levels, standard)
    history = list(db.scalars(select(Evidence).where(
        Evidence.student_id == student_id, Evidence.standard_id == standard_id)
        .order_by(Evidence.assessed_at, Evidence.id)))
    active = [e for e in history if e.superseded_by is None]
    scores = [e.score for e in active]
    running, so_far = [], []
    for e in history:
        if e.superseded_by is None:
            so_far.append(e.score)
        running.append(settings.rollup(so_far) if so_far else None)
    chart_levels = _chart_levels(levels)
    chart = Markup(charts.timeline_svg(
        [charts.Point(when=e.assessed_at, score=e.score,
                      label=e.source + (f": {e.item_ref}" if e.item_ref else ""),
                      superseded=e.superseded_by is not None) for e in history],
        running, levels=chart_levels, mastery_points=settings.mastery_points,
        scale_min=settings.scale_min, scale_max=settings.scale_max,
        title=f"{standard.code}: mastery over time", id_prefix=f"tl-{standard.id}"))
    rollup = db.scalar(select(Rollup).where(Rollup.student_id == student_id,
                                            Rollup.standard_id == standard_id))
    kwargs = dict(mastery_points=settings.mastery_points, weight=settings.weight,
                  n=settings.n, scale_min=settings.scale_min, scale_max=settings.scale_max)
    return dict(
        standard=standard, student=student, settings=settings, history=history,
        chart=chart, rollup=rollup, levels=chart_levels,
        level=charts.level_for(rollup.value if rollup else None, chart_levels),
        explanation=mastery.explain(settings.method, mastery_points=settings.mastery_points,
                                    weight=settings.weight, n=settings.n),
        numbers=mastery.explain_with_numbers(scores, settings.method, **kwargs)
        if scores else None,
        next_step=mastery.to_reach_mastery(scores, settings.method, **kwargs),
        override=service.current_override(db, student_id, standard_id),
        sources=EVIDENCE_SOURCES)


@bp.route("/course/students/<int:student_id>/standards/<int:standard_id>",
          methods=["GET", "POST"])
@require_session(teacher=True, course=True)
def student_standard(current, student_id: int, standard_id: int):
    db = get_db()
    course_id = current.course.id
    error = None
    if request.method == "POST":
        try:
            if request.form.get("action") == "override":
                service.record_override(
                    db, course_id=course_id, student_id=student_id, standard_id=standard_id,
                    value=request.form.get("value") or None, note=request.form.get("note"),
                    created_by=current.user.id)
            else:
                service.record_evidence(
                    db, course_id=course_id, student_id=student_id, standard_id=standard_id,
                    score=request.form.get("score"),
                    assessed_at=service.parse_when(request.form.get("assessed_at")),
                    source=request.form.get("source", "observation"),
                    recorded_by=current.user.id, item_ref=request.form.get("item_ref"),
                    note=request.form.get("note") or "",
                    supersedes=[int(v) for v in request.form.getlist("supersedes")
                                if v.isdigit()])
            db.commit()
            return redirect(url_for("grades.student_standard", student_id=student_id,
                                    standard_id=standard_id, t=current.token), code=303)
        except service.GradingError as exc:
            if exc.status == 404:
                abort(404)
            db.rollback()
            error = str(exc)
    try:
        context = _detail_context(db, course_id, student_id, standard_id)
    except service.GradingError:
        abort(404)
    return render_template("grades/student_standard.html", current=current, error=error,
                           teacher_view=True, **context), 400 if error else 200


# -- teacher: calculation settings ---------------------------------------------
@bp.route("/course/settings", methods=["GET", "POST"])
@require_session(teacher=True, course=True)
def settings(current):
    db = get_db()
    course_id = current.course.id
    policy = service.policy_for(db, course_id)
    error = message = None
    if request.method == "POST" and request.form.get("form") == "scale":
        count = int(request.form.get("count") or 0)
        levels = [{k: request.form.get(f"{k}-{i}") for k in ("label", "points", "colour",
                                                              "pattern")}
                  for i in range(min(count, 8))]
        levels = [lvl for lvl in levels if lvl["label"] or lvl["points"]]
        try:
            service.save_scale(db, course_id, levels)
            db.commit()
            message = "Scale saved."
        except service.GradingError as exc:
            db.rollback()
            error = str(exc)
            policy = service.policy_for(db, course_id)
    elif request.method == "POST":
        method = request.form.get("method", "")
        try:
            weight = float(request.form.get("weight") or policy.weight)
            n = int(request.form.get("n") or policy.n)
            mastery_points = float(request.form.get("mastery_points") or policy.mastery_points)
            levels = service.scale_for(db, course_id)
            mastery.validate_settings(method, mastery_points=mastery_points, weight=weight,
                                      n=n, scale_max=max(lvl.points for lvl in levels))
        except ValueError as exc:
            error = str(exc)
        else:
            policy.method, policy.weight, policy.n = method, weight, n
            policy.mastery_points = mastery_points
            count = service.recompute_course(db, course_id)
            db.commit()
            message = f"Saved. {count} mastery value(s) recalculated."
    return render_template("grades/settings.html", current=current, policy=policy,
                           methods=list(mastery.Method), error=error, message=message,
                           scale=service.scale_for(db, course_id), patterns=charts.PATTERNS,
                           explanations={m.value: mastery.explain(
                               m.value, mastery_points=policy.mastery_points,
                               weight=policy.weight, n=policy.n) for m in mastery.Method}
                           ), 400 if error else 200


# -- student -------------------------------------------------------------------
@bp.route("/my/mastery")
@require_session(course=True)
def my_mastery(current):
    db = get_db()
    course_id = current.course.id
    standards = service.standards_of(db, course_id)
    levels = _chart_levels(service.scale_for(db, course_id))
    rollups = {r.standard_id: r for r in db.scalars(select(Rollup).where(
        Rollup.student_id == current.user.id, Rollup.course_id == course_id))}
    rows = [(st, rollups.get(st.id),
             charts.level_for(rollups[st.id].value if st.id in rollups else None, levels))
            for st in standards]
    return render_template("grades/my_mastery.html", current=current, rows=rows, levels=levels)


@bp.route("/my/mastery/<int:standard_id>", methods=["GET", "POST"])
@require_session(course=True)
def my_standard(current, standard_id: int):
    """A student's own evidence: only ever their own (the session's user)."""
    db = get_db()
    course_id = current.course.id
    message = error = None
    if request.method == "POST":
        reflection = (request.form.get("reflection") or "").strip()
        try:
            service.course_standard(db, course_id, standard_id)
            if len(reflection) < 10:
                raise service.GradingError("Tell your teacher what you practised (a sentence "
                                           "or two) so they can decide on a reassessment.")
            db.add(ReassessmentRequest(course_id=course_id, student_id=current.user.id,
                                       standard_id=standard_id, reflection=reflection[:2000]))
            db.commit()
            message = "Your request was sent to your teacher."
        except service.GradingError as exc:
            if exc.status == 404:
                abort(404)
            db.rollback()
            error = str(exc)
    try:
        context = _detail_context(db, course_id, current.user.id, standard_id)
    except service.GradingError:
        abort(404)
    return render_template("grades/student_standard.html", current=current, error=error,
                           message=message, teacher_view=False, **context), \
        400 if error else 200


# -- reassessment requests -------------------------------------------------------
@bp.route("/course/reassessments", methods=["GET", "POST"])
@require_session(teacher=True, course=True)
def reassessments(current):
    db = get_db()
    course_id = current.course.id
    if request.method == "POST":
        row = db.get(ReassessmentRequest, int(request.form.get("request_id", "0") or 0))
        decision = request.form.get("decision")
        if row is None or row.course_id != course_id:
            abort(404)
        if decision not in ("accepted", "declined"):
            return refuse(service.GradingError("Choose accept or decline."))
        row.status, row.decided_by, row.decided_at = decision, current.user.id, utcnow()
        row.decision_note = (request.form.get("note") or "")[:2000]
        db.commit()
        return redirect(url_for("grades.reassessments", t=current.token), code=303)
    rows = db.execute(
        select(ReassessmentRequest, User, Standard)
        .join(User, User.id == ReassessmentRequest.student_id)
        .join(Standard, Standard.id == ReassessmentRequest.standard_id)
        .where(ReassessmentRequest.course_id == course_id)
        .order_by(ReassessmentRequest.status != "pending",
                  ReassessmentRequest.created_at.desc())).all()
    return render_template("grades/reassessments.html", current=current, rows=rows)
