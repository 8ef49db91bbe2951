"""Making sure the LMS has the gradebook columns a placement feeds.

The link's own column normally comes from deep linking (the LMS creates it
from our lineItem and names it in the next launch's `lineitem` claim). A link
added by hand, or one column per standard, is created here through AGS —
first looking for an existing column with our resourceId and tag, so a retry
or a copied course never makes duplicates (AGS §3.2.15)."""

from __future__ import annotations

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import Session

from lti_tool.courses.models import ResourceLink
from lti_tool.db import insert_ignore
from lti_tool.grades import service as grading
from lti_tool.launch import keys as tool_keys
from lti_tool.launch.models import Platform
from lti_tool.passback import platform_client
from lti_tool.passback.models import CourseServices, LineItem, Placement
from lti_tool.passback.service import (
    SCOPE_LINEITEM,
    PassbackError,
    allowed_origins,
    placement_standards,
)
from lti_tool.playlists.models import Playlist
from lti_tool.timeutil import utcnow

OWN_TAG = "pathwise-mastery"


def _client_and_origins(session: Session, placement: Placement):
    services = session.get(CourseServices, placement.course_id)
    if services is None:
        raise PassbackError("The LMS has not told Pathwise where its gradebook is. Open "
                            "this activity from the LMS once, then try again.")
    platform = session.get(Platform, services.platform_id)
    settings = current_app.extensions["pathwise"].settings
    client = platform_client.client_for(platform, tool_keys.load(settings.keys_dir).sign,
                                        settings.database_url)
    return client, allowed_origins(services, platform), services


def ensure_line_items(session: Session, placement: Placement, rule: str,
                      score_maximum: float) -> int:
    """Create (or find) the columns `rule` needs; returns how many were added.
    Raises PassbackError with what the teacher or administrator should do.

    When the LMS must be asked, the caller's transaction is ended first (it
    must hold no pending change): no database transaction or lock is held
    while the LMS answers. On SQLite a request's write transaction holds the
    single writer lock, and the client's token cache, written in its own
    unit of work, would otherwise wait for it forever. The new columns are
    then written in a fresh transaction, which the caller commits."""
    needed_own = rule != "per_standard"
    have = {li.standard_id: li for li in session.scalars(select(LineItem).where(
        LineItem.placement_id == placement.id))}
    standards = placement_standards(session, placement.course_id, placement) \
        if rule == "per_standard" else []
    missing_own = needed_own and None not in have
    missing = [s for s in standards if s.id not in have]
    if not missing_own and not missing:
        return 0
    client, allowed, services = _client_and_origins(session, placement)
    lineitems_url = placement.lineitems_url or services.lineitems_url
    scopes = placement.ags_scopes or services.ags_scopes or []
    if not lineitems_url or SCOPE_LINEITEM not in scopes:
        raise PassbackError("The LMS does not let Pathwise create gradebook columns for this "
                            "course (the Assignment and Grade Services line item scope is "
                            "off). Ask the LMS administrator to enable it for Pathwise.")
    link = session.get(ResourceLink, placement.resource_link_pk)
    playlist = session.get(Playlist, placement.playlist_id)
    levels = grading.scale_for(session, placement.course_id)
    scale_max = max((lvl.points for lvl in levels), default=4.0)
    placement_id, link_id = placement.id, link.resource_link_id
    wanted = []
    if missing_own:
        wanted.append((None, {"label": (link.title or playlist.title)[:255],
                              "scoreMaximum": score_maximum,
                              "resourceId": f"pathwise-playlist-{playlist.id}",
                              "tag": OWN_TAG, "resourceLinkId": link_id}))
    for standard in missing:
        wanted.append((standard.id, {
            "label": f"{playlist.title}: {standard.code}"[:255], "scoreMaximum": scale_max,
            "resourceId": f"pathwise-standard-{standard.id}",
            "tag": f"pathwise-standard-{standard.code}"[:255],
            "resourceLinkId": link_id}))
    session.rollback()  # nothing held while the LMS answers (see above)
    made = []
    try:
        for standard_id, item in wanted:
            found = client.line_items(lineitems_url, allowed_origins=allowed, scopes=scopes,
                                      resource_id=item["resourceId"], tag=item["tag"],
                                      resource_link_id=link_id)
            existing = next((f for f in found if f.get("resourceId") == item["resourceId"]
                             and f.get("tag") == item["tag"]), None)
            created = existing or _create(client, lineitems_url, item, allowed)
            url = created.get("id")
            if not isinstance(url, str):
                raise PassbackError("The LMS answered without the new column's address.")
            made.append((standard_id, url, item))
    except platform_client.ServiceError as exc:
        raise PassbackError("The LMS did not create the gradebook column: "
                            f"{exc.detail or exc.kind}. Nothing was changed; try again.",
                            502) from None
    added = 0
    for standard_id, url, item in made:
        if standard_id is not None and insert_ignore(session, LineItem, [
                "placement_id", "standard_id"], {
                "placement_id": placement_id, "standard_id": standard_id, "url": url,
                "label": item["label"], "score_maximum": item["scoreMaximum"],
                "active": True, "created_at": utcnow()}):
            added += 1
        elif standard_id is None and session.scalar(select(LineItem.id).where(
                LineItem.placement_id == placement_id, LineItem.standard_id.is_(None))) is None:
            session.add(LineItem(placement_id=placement_id, standard_id=None, url=url,
                                 label=item["label"], score_maximum=item["scoreMaximum"],
                                 created_at=utcnow()))
            added += 1
    session.flush()
    return added


def _create(client, lineitems_url: str, item: dict, allowed: list[str]) -> dict:
    """POST the column. A link added by hand in Canvas (a module item, not an
    assignment) has no line item, and Canvas refuses an extra one on it (412,
    platforms.md A9): the column is then made on its own, as a new assignment,
    still found again later by its resourceId and tag."""
    try:
        return client.create_line_item(lineitems_url, item, allowed_origins=allowed)
    except platform_client.ServiceError as exc:
        if exc.status != 412 or "resourceLinkId" not in item:
            raise
    found = client.line_items(lineitems_url, allowed_origins=allowed,
                              resource_id=item["resourceId"], tag=item["tag"])
    existing = next((f for f in found if not f.get("resourceLinkId")), None)
    alone = {k: v for k, v in item.items() if k != "resourceLinkId"}
    return existing or client.create_line_item(lineitems_url, alone, allowed_origins=allowed)
