"""Demo data for the sandbox LMS: one course, a teacher, six students, the tool registration.

`seed(app)` is idempotent: a second run keeps people and ids and only refreshes the tool
URLs of the registration (so restarting with another `--tool-url` works).
`registration_args(app)` gives the arguments for `lti-tool platform add ...`; the sandbox
never imports the tool, the demo runs that command.
"""

from __future__ import annotations

import json
import secrets
import uuid
from typing import Any

from flask import Flask

from . import storage
from .app import EXTENSION_KEY, SandboxContext
from .flavors import REGISTERED_SCOPES

COURSE_TITLE = "Math 5 \u2014 Fractions"

# (given name, family name, username, role)
PEOPLE: list[tuple[str, str, str, str]] = [
    ("Dolores", "Ram\u00edrez", "dramirez", "teacher"),
    ("Aiyana", "Redcloud", "aredcloud", "student"),
    ("Kenji", "Watanabe", "kwatanabe", "student"),
    ("Amara", "Okafor", "aokafor", "student"),
    ("Liam", "O'Connor", "loconnor", "student"),
    ("Priya", "Raghunathan", "praghunathan", "student"),
    ("Mateo", "Fern\u00e1ndez", "mfernandez", "student"),
]

# Ids shaped like each platform's: Canvas course 1107 and external tool 87; Moodle course 2
# (1 is the site), users from 3 (1 guest, 2 admin), tool type 3, activity instance 5.
_IDS = {
    "canvas": {"course": 1107, "first_user": 101, "registration": 87, "activity": None},
    "moodle": {"course": 2, "first_user": 3, "registration": 3, "activity": 5},
}


def _sandbox(app: Flask) -> SandboxContext:
    return app.extensions[EXTENSION_KEY]


def seed(app: Flask) -> dict[str, Any]:
    """Create the demo course and tool registration if missing; return a summary."""
    sb = _sandbox(app)
    ids = _IDS[sb.flavor.name]
    conn = storage.connect(sb.db_path)
    try:
        with storage.transaction(conn):
            if storage.get_course(conn, ids["course"]) is None:
                _create_course(conn, sb, ids)
            _upsert_registration(conn, sb, ids)
            if (
                ids["activity"] is not None
                and storage.get_resource_link(conn, ids["activity"]) is None
            ):
                # Moodle has no course-navigation placement: the tool lives in an activity.
                conn.execute(
                    "INSERT INTO resource_links (id, uuid, course_id, registration_id, title, "
                    "description, url, custom, created_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, NULL, '{}', ?)",
                    (
                        ids["activity"],
                        str(uuid.uuid4()),
                        ids["course"],
                        ids["registration"],
                        "Pathwise",
                        "Your learning path for this unit.",
                        storage.now(),
                    ),
                )
        reg = storage.get_registration(conn, ids["registration"])
        members = storage.course_members(conn, ids["course"])
    finally:
        conn.close()
    assert reg is not None
    return {
        "course_id": ids["course"],
        "client_id": reg["client_id"],
        "deployment_id": reg["deployment_id"],
        "teacher_ids": [m["id"] for m in members if m["role"] == "teacher"],
        "student_ids": [m["id"] for m in members if m["role"] == "student"],
    }


def add_students(app: Flask, count: int, *, course_id: int | None = None) -> list[int]:
    """Enrol `count` more students ("Student 1", ...) in the demo course; return their ids.

    For load tests and benchmarks that need more than the six seeded students.
    """
    sb = _sandbox(app)
    course = _IDS[sb.flavor.name]["course"] if course_id is None else course_id
    conn = storage.connect(sb.db_path)
    try:
        with storage.transaction(conn):
            if storage.get_course(conn, course) is None:
                raise LookupError(f"no course {course}; call seed(app) first")
            first = conn.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM users").fetchone()[0]
            ids = list(range(first, first + count))
            for user_id in ids:
                username = f"student{user_id}"
                conn.execute(
                    "INSERT INTO users (id, given_name, family_name, email, username, uuid, "
                    "opaque_id, sourcedid) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        user_id,
                        "Student",
                        str(user_id),
                        f"{username}@students.example.edu",
                        username,
                        str(uuid.uuid4()),
                        secrets.token_hex(20),
                        f"S-{1000 + user_id}",
                    ),
                )
                conn.execute(
                    "INSERT INTO enrollments (course_id, user_id, role) VALUES (?, ?, 'student')",
                    (course, user_id),
                )
    finally:
        conn.close()
    return ids


def _create_course(conn: Any, sb: SandboxContext, ids: dict[str, Any]) -> None:
    label = "MATH-5" if sb.is_canvas else "MATH5"
    conn.execute(
        "INSERT INTO courses (id, label, title, opaque_id) VALUES (?, ?, ?, ?)",
        (ids["course"], label, COURSE_TITLE, secrets.token_hex(20)),
    )
    for offset, (given, family, username, role) in enumerate(PEOPLE):
        user_id = ids["first_user"] + offset
        domain = "example.edu" if role == "teacher" else "students.example.edu"
        conn.execute(
            "INSERT OR IGNORE INTO users (id, given_name, family_name, email, username, uuid, "
            "opaque_id, sourcedid) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                user_id,
                given,
                family,
                f"{username}@{domain}",
                username,
                str(uuid.uuid4()),
                secrets.token_hex(20),
                f"{'T' if role == 'teacher' else 'S'}-{1000 + user_id}",
            ),
        )
        conn.execute(
            "INSERT OR IGNORE INTO enrollments (course_id, user_id, role) VALUES (?, ?, ?)",
            (ids["course"], user_id, role),
        )


def _upsert_registration(conn: Any, sb: SandboxContext, ids: dict[str, Any]) -> None:
    tool = sb.tool_url
    urls = {
        "login_url": f"{tool}/lti/login",
        "redirect_uris": json.dumps([f"{tool}/lti/launch"]),
        "jwks_url": f"{tool}/.well-known/jwks.json",
        "target_link_uri": f"{tool}/lti/launch",
    }
    existing = storage.get_registration(conn, ids["registration"])
    if existing is not None:
        conn.execute(
            "UPDATE registrations SET login_url = :login_url, redirect_uris = :redirect_uris, "
            "jwks_url = :jwks_url, target_link_uri = :target_link_uri WHERE id = :id",
            {**urls, "id": ids["registration"]},
        )
        return
    course = storage.get_course(conn, ids["course"])
    assert course is not None
    if sb.is_canvas:
        # "<ContextExternalTool id>:<40-hex opaque id of the install context>" (A1).
        deployment_id = f"{ids['registration']}:{course['opaque_id']}"
        custom = {
            "canvas_course_id": "$Canvas.course.id",
            "canvas_user_id": "$Canvas.user.id",
            # Canvas sends variables it cannot expand literally; tools must cope (A4).
            "section_sourcedid": "$CourseSection.sourcedId",
        }
        name = "Canvas sandbox"
    else:
        deployment_id = str(ids["registration"])  # the tool type id (B1)
        custom = {"courseId": "$Context.id"}  # arrives as both "courseid" and "courseId" (B4)
        name = "Moodle sandbox"
    conn.execute(
        "INSERT INTO registrations (id, client_id, deployment_id, name, login_url, "
        "redirect_uris, jwks_url, target_link_uri, scopes, custom) VALUES (:id, :client_id, "
        ":deployment_id, :name, :login_url, :redirect_uris, :jwks_url, :target_link_uri, "
        ":scopes, :custom)",
        {
            **urls,
            "id": ids["registration"],
            "client_id": sb.flavor.new_client_id(),
            "deployment_id": deployment_id,
            "name": name,
            "scopes": json.dumps(list(REGISTERED_SCOPES)),
            "custom": json.dumps(custom),
        },
    )


def registration_args(app: Flask) -> list[str]:
    """Arguments for `lti-tool platform add ...` that register this sandbox with the tool."""
    sb = _sandbox(app)
    conn = storage.connect(sb.db_path)
    try:
        reg = storage.first_registration(conn)
    finally:
        conn.close()
    if reg is None:
        raise LookupError("the sandbox has no tool registration yet; call seed(app) first")
    return [
        "platform",
        "add",
        "--issuer",
        sb.issuer,
        "--client-id",
        reg["client_id"],
        "--auth-login-url",
        sb.flavor.auth_login_url(sb.base_url),
        "--auth-token-url",
        sb.token_url,
        "--jwks-url",
        sb.flavor.jwks_url(sb.base_url),
        "--deployment-id",
        reg["deployment_id"],
        "--name",
        reg["name"],
    ]
