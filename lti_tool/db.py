"""Database engine, one session per request, declarative base, migrations."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import MetaData, bindparam, create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


MIGRATIONS_DIR = Path(__file__).parent / "migrations"

_engines: dict[str, Engine] = {}
_lock = threading.Lock()


def normalise_url(url: str) -> str:
    """Use psycopg 3 for PostgreSQL whatever spelling the operator gave."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    # WAL lets readers and one writer work at once across gunicorn workers;
    # busy_timeout makes concurrent writers wait instead of failing.
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=15000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


WRITE_OPTION = "pathwise_write"


class _WriterQueue:
    """Orders SQLite writers of every process through an flock on a file next
    to the database. SQLite's own busy handler polls with sleeps of up to
    100 ms, leaving the lock idle while waiters sleep; the kernel wakes the
    next flock waiter the moment the previous writer is done."""

    def __init__(self, db_path: str):
        self.path = db_path + ".writer-lock"

    def acquire(self, conn) -> None:
        import fcntl

        fh = open(self.path, "a")  # noqa: SIM115 (held until the transaction ends)
        fcntl.flock(fh, fcntl.LOCK_EX)
        conn.info["pathwise_writer_lock"] = fh

    @staticmethod
    def release(conn) -> None:
        import fcntl

        fh = conn.info.pop("pathwise_writer_lock", None)
        if fh is not None:
            fcntl.flock(fh, fcntl.LOCK_UN)
            fh.close()


def _sqlite_begin_for(queue: _WriterQueue | None):
    def begin(conn) -> None:
        # A WAL read transaction that later writes fails at once (no busy
        # wait) when another process committed in between, so a unit of work
        # that will write takes the write lock up front; reads stay concurrent.
        if conn.get_execution_options().get(WRITE_OPTION):
            if queue is not None:
                queue.acquire(conn)
            try:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            except BaseException:
                _WriterQueue.release(conn)
                raise
        else:
            conn.exec_driver_sql("BEGIN")
    return begin


def _sqlite_end(conn) -> None:
    _WriterQueue.release(conn)


def get_engine(url: str) -> Engine:
    """One engine (and pool) per database URL per process."""
    url = normalise_url(url)
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            if url.startswith("sqlite"):
                path = url.split("///", 1)[-1]
                if path and path != ":memory:":
                    Path(path).parent.mkdir(parents=True, exist_ok=True)
                engine = create_engine(url, connect_args={"timeout": 15,
                                                          "isolation_level": None})
                event.listen(engine, "connect", _sqlite_pragmas)
                queue = _WriterQueue(path) if path and path != ":memory:" else None
                event.listen(engine, "begin", _sqlite_begin_for(queue))
                event.listen(engine, "commit", _sqlite_end)
                event.listen(engine, "rollback", _sqlite_end)
            else:
                engine = create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)
            _engines[url] = engine
        return engine


def dispose_engines() -> None:
    with _lock:
        _factories.clear()
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


_factories: dict[tuple[str, bool], sessionmaker[Session]] = {}


def session_factory(url: str, *, write: bool = True) -> sessionmaker[Session]:
    """Sessions for units of work that write (the default) or only read."""
    key = (normalise_url(url), write)
    factory = _factories.get(key)
    if factory is None:
        engine = get_engine(url)
        if write:
            engine = engine.execution_options(**{WRITE_OPTION: True})
        factory = _factories[key] = sessionmaker(bind=engine, expire_on_commit=False)
    return factory


_MEMO = "lti_tool.transaction_memo"


def transaction_memo(session: Session) -> dict:
    """A dict that lives as long as the session's current transaction, for
    rows one request reads many times (a course's policy and scale). It is
    dropped at commit or rollback, so a later transaction reads afresh."""
    return session.info.setdefault(_MEMO, {})


@event.listens_for(Session, "after_transaction_end")
def _forget_memo(session: Session, transaction) -> None:
    # Not at the end of a flush's inner transaction: only a real one (or a
    # savepoint, whose rollback may undo what was remembered).
    if transaction.parent is None or transaction.nested:
        session.info.pop(_MEMO, None)


@contextmanager
def session_scope(url: str) -> Iterator[Session]:
    """A unit of work outside a request (CLI, worker): commit or roll back."""
    session = session_factory(url)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def alembic_config(url: str):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", normalise_url(url).replace("%", "%%"))
    return cfg


def migrate(url: str) -> None:
    """Create or upgrade the schema to the newest migration (idempotent)."""
    from alembic import command

    command.upgrade(alembic_config(url), "head")


_upserts: dict[tuple, object] = {}


def _insert_for(session: Session):
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert


def insert_ignore(session: Session, model, conflict: list[str], values: dict) -> bool:
    """INSERT … ON CONFLICT DO NOTHING; True when the row was new."""
    key = ("ignore", session.get_bind().dialect.name, model, tuple(conflict),
           tuple(sorted(values)))
    stmt = _upserts.get(key)
    if stmt is None:
        # RETURNING, not rowcount: psycopg reports -1 for this statement.
        stmt = _insert_for(session)(model).values({k: bindparam(k) for k in values}) \
            .on_conflict_do_nothing(index_elements=conflict) \
            .returning(getattr(model, conflict[0]))
        _upserts[key] = stmt
    return session.connection().execute(stmt, values).first() is not None


def upsert(session: Session, model, conflict: list[str], values: dict,
           update: list[str], *, returning_id: bool = True) -> int | None:
    """INSERT … ON CONFLICT DO UPDATE (… RETURNING id), so concurrent requests
    in several workers never collide on a unique key. The statement is built
    once per shape and dialect, then only executed with new values."""
    dialect = session.get_bind().dialect.name
    key = (dialect, model, tuple(conflict), tuple(sorted(values)), tuple(update), returning_id)
    stmt = _upserts.get(key)
    if stmt is None:
        stmt = _insert_for(session)(model).values({k: bindparam(k) for k in values})
        stmt = stmt.on_conflict_do_update(
            index_elements=conflict, set_={k: stmt.excluded[k] for k in update})
        if returning_id:
            stmt = stmt.returning(model.id)
        _upserts[key] = stmt
    # Core statements on the session's connection: no ORM bookkeeping needed.
    result = session.connection().execute(stmt, values)
    return result.scalar_one() if returning_id else None
