"""The deep-linking picker: a teacher chooses playlists (or creates one) to
place in the LMS; the answer is a signed LtiDeepLinkingResponse posted back to
the platform. Learners never reach it (the launch refuses them)."""

from __future__ import annotations

from flask import Blueprint, abort, render_template, request

from lti_tool.courses.routes import require_session
from lti_tool.launch import deep_linking
from lti_tool.launch import keys as tool_keys
from lti_tool.launch.models import Deployment, Platform
from lti_tool.playlists import service as playlists
from lti_tool.services import services
from lti_tool.web import get_db

bp = Blueprint("deep_linking", __name__)
SETTINGS = "https://purl.imsglobal.org/spec/lti-dl/claim/deep_linking_settings"


def _settings(current) -> deep_linking.Settings:
    if current.row.message_type != "LtiDeepLinkingRequest":
        abort(404)
    return deep_linking.read_settings(current.row.launch_claims[SETTINGS])


def _page(current, settings, *, error: str | None = None, status: int = 200,
          selected: set[int] | None = None):
    db = get_db()
    query = (request.values.get("q") or "").strip()
    found = playlists.playlists_of(db, current.course.id)
    if query:
        found = [p for p in found if query.casefold() in p.title.casefold()]
    return render_template("deep_linking/pick.html", current=current, settings=settings,
                           playlists=found, query=query, error=error,
                           selected=selected or set()), status


@bp.route("/dl/pick", methods=["GET", "POST"])
@require_session(teacher=True, course=True)
def pick(current):
    settings = _settings(current)
    if request.method == "POST":  # "Create a new playlist" from inside the picker
        db = get_db()
        try:
            playlist = playlists.save_playlist(db, current.course.id,
                                               title=request.form.get("title"),
                                               description="", standard_ids=[],
                                               created_by=current.user.id)
            db.commit()
        except playlists.PlaylistError as exc:
            db.rollback()
            return _page(current, settings, error=str(exc), status=exc.status)
        return _page(current, settings, selected={playlist.id})
    return _page(current, settings)


@bp.route("/dl/return", methods=["POST"])
@require_session(teacher=True, course=True)
def answer(current):
    """Sign the chosen playlists (possibly none: cancel) and post them back."""
    settings = _settings(current)
    db = get_db()
    chosen = [] if request.form.get("action") == "cancel" else \
        [int(v) for v in request.form.getlist("playlist") if v.isdigit()]
    if len(chosen) > 1 and not settings.accept_multiple:
        return _page(current, settings, status=400, selected=set(chosen),
                     error="This place in the LMS takes one playlist: choose one.")
    graded = request.form.get("graded") == "1" and settings.accept_lineitem
    try:
        maximum = float(request.form.get("score_maximum") or 100)
        if not 0 < maximum <= 10000:
            raise ValueError
    except ValueError:
        return _page(current, settings, status=400, selected=set(chosen),
                     error="Points possible must be a number above 0, at most 10,000.")
    items = []
    for playlist_id in chosen:
        try:
            playlist = playlists.course_playlist(db, current.course.id, playlist_id)
        except playlists.PlaylistError:
            abort(404)
        # Placing a playlist in the LMS shares it with the course's students.
        playlist.published = True
        items.append(deep_linking.resource_link(
            deep_linking.Choice(playlist.id, playlist.title),
            launch_url=services().settings.base_url.rstrip("/") + "/lti/launch",
            score_maximum=maximum, graded=graded))
    db.commit()
    platform = db.get(Platform, current.row.platform_id)
    deployment = db.get(Deployment, current.row.deployment_pk)
    claims = deep_linking.response_claims(
        client_id=platform.client_id, platform_issuer=platform.issuer,
        deployment_id=deployment.deployment_id, settings=settings, items=items,
        message=f"Added {len(items)} Pathwise playlist(s)." if items else None)
    token = tool_keys.load(services().settings.keys_dir).sign(claims)
    return render_template("deep_linking/return.html", current=current,
                           return_url=settings.return_url, jwt=token, count=len(items))
