"""The sandbox LMS's own SQLite database (stdlib sqlite3).

One connection per request (kept on `flask.g`), autocommit for reads and `BEGIN IMMEDIATE`
for every read-modify-write, so the werkzeug threaded server can run requests in parallel:
SQLite serialises the writers and a check-then-insert (score timestamps, single-use hints,
jti replay) can never interleave with another request's.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY,
    given_name TEXT NOT NULL,
    family_name TEXT NOT NULL,
    email TEXT NOT NULL,
    username TEXT NOT NULL,
    uuid TEXT NOT NULL UNIQUE,        -- Canvas lti_id (the `sub`)
    opaque_id TEXT NOT NULL UNIQUE,   -- Canvas 40-hex opaque id (login_hint, lti11_legacy_user_id)
    sourcedid TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS courses (
    id INTEGER PRIMARY KEY,
    label TEXT NOT NULL,
    title TEXT NOT NULL,
    opaque_id TEXT NOT NULL UNIQUE    -- Canvas 40-hex context id
);
CREATE TABLE IF NOT EXISTS enrollments (
    course_id INTEGER NOT NULL REFERENCES courses(id),
    user_id INTEGER NOT NULL REFERENCES users(id),
    role TEXT NOT NULL CHECK (role IN ('teacher', 'student')),
    PRIMARY KEY (course_id, user_id)
);
CREATE TABLE IF NOT EXISTS registrations (
    id INTEGER PRIMARY KEY,           -- Moodle type id / Canvas ContextExternalTool id
    client_id TEXT NOT NULL UNIQUE,
    deployment_id TEXT NOT NULL,
    name TEXT NOT NULL,
    login_url TEXT NOT NULL,
    redirect_uris TEXT NOT NULL,      -- JSON list, exact match
    jwks_url TEXT NOT NULL,
    target_link_uri TEXT NOT NULL,
    scopes TEXT NOT NULL,             -- JSON list
    custom TEXT NOT NULL DEFAULT '{}' -- JSON object, tool-level custom parameters
);
CREATE TABLE IF NOT EXISTS resource_links (
    id INTEGER PRIMARY KEY,           -- Moodle lti instance id
    uuid TEXT NOT NULL UNIQUE,        -- Canvas resource link id
    course_id INTEGER NOT NULL REFERENCES courses(id),
    registration_id INTEGER NOT NULL REFERENCES registrations(id),
    title TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    url TEXT,
    custom TEXT NOT NULL DEFAULT '{}',
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS line_items (
    id INTEGER PRIMARY KEY,
    course_id INTEGER NOT NULL REFERENCES courses(id),
    registration_id INTEGER NOT NULL REFERENCES registrations(id),
    label TEXT NOT NULL,
    score_maximum REAL NOT NULL,
    resource_id TEXT,
    tag TEXT,
    resource_link_id INTEGER REFERENCES resource_links(id) ON DELETE SET NULL,
    start_date_time TEXT,
    end_date_time TEXT,
    coupled INTEGER NOT NULL DEFAULT 0,  -- created by the platform (deep linking), not the tool
    extra TEXT NOT NULL DEFAULT '{}',    -- JSON: Canvas extensions / Moodle echoed body
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS results (
    id INTEGER PRIMARY KEY,
    line_item_id INTEGER NOT NULL REFERENCES line_items(id) ON DELETE CASCADE,
    user_id INTEGER NOT NULL REFERENCES users(id),
    result_score REAL,                -- scoreGiven as sent (Canvas), NULL when cleared
    result_maximum REAL,
    grade REAL,                       -- gradebook grade scaled to the line item maximum
    comment TEXT,
    activity_progress TEXT,
    grading_progress TEXT,
    timestamp TEXT NOT NULL,          -- the score's timestamp as sent
    ts REAL NOT NULL,                 -- the same, epoch seconds (ordering checks)
    updated_at REAL NOT NULL,
    UNIQUE (line_item_id, user_id)
);
CREATE TABLE IF NOT EXISTS scores (
    id INTEGER PRIMARY KEY,
    line_item_id INTEGER NOT NULL REFERENCES line_items(id) ON DELETE CASCADE,
    user_id INTEGER NOT NULL REFERENCES users(id),
    score_given REAL,
    score_maximum REAL,
    activity_progress TEXT,
    grading_progress TEXT,
    comment TEXT,
    timestamp TEXT NOT NULL,
    ts REAL NOT NULL,
    grade REAL,
    body TEXT NOT NULL,               -- the JSON exactly as received
    received_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS launches (
    id TEXT PRIMARY KEY,              -- message-hint key (Canvas verifier / Moodle launchid)
    registration_id INTEGER NOT NULL REFERENCES registrations(id),
    user_id INTEGER NOT NULL REFERENCES users(id),
    course_id INTEGER NOT NULL REFERENCES courses(id),
    message_type TEXT NOT NULL,
    placement TEXT,
    resource_link_id INTEGER REFERENCES resource_links(id) ON DELETE SET NULL,
    target_link_uri TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    consumed_at REAL,
    dl_token TEXT UNIQUE,             -- deep linking: Canvas return `data` key / Moodle sesskey
    dl_data TEXT,                     -- deep linking `data` sent in the settings (if any)
    dl_expires_at REAL
);
CREATE TABLE IF NOT EXISTS access_tokens (
    token_hash TEXT PRIMARY KEY,      -- sha256 of the opaque token (Moodle flavour)
    registration_id INTEGER NOT NULL REFERENCES registrations(id),
    scopes TEXT NOT NULL,
    expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS used_jtis (
    jti TEXT PRIMARY KEY,             -- "<purpose>:<client_id>:<jti or nonce>"
    expires_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS scores_by_item ON scores (line_item_id, user_id);
CREATE INDEX IF NOT EXISTS line_items_by_course ON line_items (course_id);
"""


def connect(path: str) -> sqlite3.Connection:
    """A new connection; callers own it. Autocommit; use `transaction()` for writes."""
    conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA busy_timeout = 30000")
    # WAL + NORMAL: a commit needs no fsync (still atomic and consistent; only the last
    # commits could be lost on a power cut, which does not matter for a sandbox).
    conn.execute("PRAGMA synchronous = NORMAL")
    return conn


def init_db(path: str) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    conn = connect(path)
    try:
        # WAL lets readers proceed while one writer holds the lock.
        conn.execute("PRAGMA journal_mode = WAL")
        conn.executescript(SCHEMA)
    finally:
        conn.close()


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE takes the write lock up front, so read-then-write is atomic."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def row_dict(row: sqlite3.Row | None) -> dict[str, Any] | None:
    return None if row is None else {k: row[k] for k in row.keys()}


def rows(conn: sqlite3.Connection, sql: str, params: tuple | dict = ()) -> list[dict[str, Any]]:
    return [{k: r[k] for k in r.keys()} for r in conn.execute(sql, params).fetchall()]


def one(conn: sqlite3.Connection, sql: str, params: tuple | dict = ()) -> dict[str, Any] | None:
    return row_dict(conn.execute(sql, params).fetchone())


# -- settings ---------------------------------------------------------------------------


def get_setting(conn: sqlite3.Connection, key: str) -> str | None:
    row = conn.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
    return None if row is None else row["value"]


def get_or_create_setting(conn: sqlite3.Connection, key: str, factory: Any) -> str:
    with transaction(conn):
        value = get_setting(conn, key)
        if value is None:
            value = factory()
            conn.execute("INSERT INTO settings (key, value) VALUES (?, ?)", (key, value))
    return value


# -- people and courses -----------------------------------------------------------------


def get_user(conn: sqlite3.Connection, user_id: int) -> dict[str, Any] | None:
    return one(conn, "SELECT * FROM users WHERE id = ?", (user_id,))


def get_course(conn: sqlite3.Connection, course_id: int) -> dict[str, Any] | None:
    return one(conn, "SELECT * FROM courses WHERE id = ?", (course_id,))


def list_courses(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    return rows(conn, "SELECT * FROM courses ORDER BY id")


def course_members(conn: sqlite3.Connection, course_id: int) -> list[dict[str, Any]]:
    """Teachers first, then students, each by family name (a stable roster order)."""
    return rows(
        conn,
        "SELECT u.*, e.role FROM enrollments e JOIN users u ON u.id = e.user_id "
        "WHERE e.course_id = ? ORDER BY e.role = 'student', u.family_name, u.given_name, u.id",
        (course_id,),
    )


def enrollment_role(conn: sqlite3.Connection, course_id: int, user_id: int) -> str | None:
    row = conn.execute(
        "SELECT role FROM enrollments WHERE course_id = ? AND user_id = ?", (course_id, user_id)
    ).fetchone()
    return None if row is None else row["role"]


# -- registrations ------------------------------------------------------------------------


def _registration(row: dict[str, Any] | None) -> dict[str, Any] | None:
    if row is None:
        return None
    row["redirect_uris"] = json.loads(row["redirect_uris"])
    row["scopes"] = json.loads(row["scopes"])
    row["custom"] = json.loads(row["custom"])
    return row


def get_registration(conn: sqlite3.Connection, registration_id: int) -> dict[str, Any] | None:
    return _registration(one(conn, "SELECT * FROM registrations WHERE id = ?", (registration_id,)))


def registration_by_client_id(conn: sqlite3.Connection, client_id: str) -> dict[str, Any] | None:
    return _registration(one(conn, "SELECT * FROM registrations WHERE client_id = ?", (client_id,)))


def first_registration(conn: sqlite3.Connection) -> dict[str, Any] | None:
    return _registration(one(conn, "SELECT * FROM registrations ORDER BY id LIMIT 1"))


# -- resource links -------------------------------------------------------------------------


def get_resource_link(conn: sqlite3.Connection, rl_id: int) -> dict[str, Any] | None:
    row = one(conn, "SELECT * FROM resource_links WHERE id = ?", (rl_id,))
    if row is not None:
        row["custom"] = json.loads(row["custom"])
    return row


def course_resource_links(conn: sqlite3.Connection, course_id: int) -> list[dict[str, Any]]:
    out = rows(conn, "SELECT * FROM resource_links WHERE course_id = ? ORDER BY id", (course_id,))
    for row in out:
        row["custom"] = json.loads(row["custom"])
    return out


def line_items_of_link(conn: sqlite3.Connection, rl_id: int) -> list[dict[str, Any]]:
    return rows(conn, "SELECT * FROM line_items WHERE resource_link_id = ? ORDER BY id", (rl_id,))


# -- line items -------------------------------------------------------------------------------


def get_line_item(conn: sqlite3.Connection, course_id: int, item_id: int) -> dict[str, Any] | None:
    row = one(conn, "SELECT * FROM line_items WHERE id = ? AND course_id = ?", (item_id, course_id))
    if row is not None:
        row["extra"] = json.loads(row["extra"])
    return row


def insert_line_item(conn: sqlite3.Connection, **values: Any) -> int:
    values.setdefault("created_at", time.time())
    values["extra"] = json.dumps(values.get("extra") or {})
    cols = ", ".join(values)
    marks = ", ".join(f":{k}" for k in values)
    cur = conn.execute(f"INSERT INTO line_items ({cols}) VALUES ({marks})", values)  # noqa: S608 - keys are ours
    return int(cur.lastrowid)


def course_line_items(conn: sqlite3.Connection, course_id: int) -> list[dict[str, Any]]:
    out = rows(conn, "SELECT * FROM line_items WHERE course_id = ? ORDER BY id", (course_id,))
    for row in out:
        row["extra"] = json.loads(row["extra"])
    return out


def now() -> float:
    return time.time()
