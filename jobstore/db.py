"""Engines and sessions. One engine per database URL per process.

SQLite gets WAL (readers never block the writer), a busy timeout (writers wait instead of
failing), foreign keys, and BEGIN IMMEDIATE for transactions: a writer takes the write
lock up front, so two transitions never deadlock upgrading a read lock. Read-only work
uses `reader(engine)`, which begins DEFERRED so polling clients do not queue for the lock.
"""
from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, Float, create_engine, event
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.functions import FunctionElement

from jobstore.settings import Settings, get_settings

_engines: dict[str, Engine] = {}
_lock = threading.Lock()


def normalise_url(url: str) -> str:
    """postgresql://... (no driver named) means psycopg 3, the driver we ship."""
    for bare in ("postgresql://", "postgres://"):
        if url.startswith(bare):
            return "postgresql+psycopg://" + url[len(bare):]
    return url


def _sqlite_hooks(engine: Engine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (below)
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        mode = conn.get_execution_options().get("sqlite_begin", "IMMEDIATE")
        conn.exec_driver_sql(f"BEGIN {mode}")


class db_now(FunctionElement):
    """The database's current time, in unix seconds (a float), as an SQL expression.

    Leases are set and judged with it (jobstore.jobs), so hosts whose clocks disagree
    still agree on when a lease runs out. PostgreSQL: the server's CURRENT_TIMESTAMP
    (the transaction's start; each transition is one short transaction). SQLite runs in
    the process using it, on one host: that host's clock, with milliseconds."""
    type = Float()
    name = "db_now"
    inherit_cache = True


@compiles(db_now)
def _db_now_default(element, compiler, **kw) -> str:
    return "CAST(EXTRACT(EPOCH FROM CURRENT_TIMESTAMP) AS DOUBLE PRECISION)"


@compiles(db_now, "sqlite")
def _db_now_sqlite(element, compiler, **kw) -> str:
    # julianday('now') has millisecond precision; 2440587.5 is the Julian day of 1970-01-01.
    return "((julianday('now') - 2440587.5) * 86400.0)"


def create_db_engine(url: str, busy_timeout_ms: int = 30_000) -> Engine:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False,
                                                  "timeout": busy_timeout_ms / 1000})
        _sqlite_hooks(engine, busy_timeout_ms)
    else:
        engine = create_engine(url, pool_pre_ping=True)
    return engine


def get_engine(settings: Settings | None = None) -> Engine:
    """The process-wide engine for settings.database_url (created on first use)."""
    settings = settings or get_settings()
    url = normalise_url(settings.database_url)
    with _lock:
        if url not in _engines:
            _engines[url] = create_db_engine(url, settings.db_busy_timeout_ms)
        return _engines[url]


def reader(engine: Engine) -> Engine:
    """The same engine, but transactions begin DEFERRED on SQLite (read-only work)."""
    return engine.execution_options(sqlite_begin="DEFERRED")


@contextmanager
def session_scope(engine: Engine, *, write: bool = True) -> Iterator[Session]:
    """A session in one transaction: committed on success, rolled back on error.
    Objects stay readable after the block (expire_on_commit=False)."""
    bind = engine if write else reader(engine)
    with Session(bind, expire_on_commit=False) as session, session.begin():
        yield session
