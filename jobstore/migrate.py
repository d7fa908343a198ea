"""Apply Alembic migrations up to head. Safe to call from several processes at once."""
from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

from jobstore.db import get_engine
from jobstore.settings import Settings, get_settings

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def migrate(settings: Settings | None = None, *, engine: Engine | None = None,
            revision: str = "head") -> None:
    """Bring the database of `settings` (or `engine`) to the newest schema (or to
    `revision`, for tests of a migration)."""
    _run(command.upgrade, revision, settings, engine)


def head_revision() -> str:
    """The newest revision in migrations/versions (what migrate() brings a database to)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return ScriptDirectory.from_config(config).get_current_head()


def downgrade(revision: str, settings: Settings | None = None, *,
              engine: Engine | None = None) -> None:
    """Take the schema back to `revision` (an operator's way out of a bad release)."""
    _run(command.downgrade, revision, settings, engine)


def _run(step, revision: str, settings: Settings | None, engine: Engine | None) -> None:
    settings = settings or get_settings()
    engine = engine if engine is not None else get_engine(settings)
    if engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:"):
        Path(engine.url.database).parent.mkdir(parents=True, exist_ok=True)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        if sqlite:
            # A batch migration copies a table on SQLite and drops the old one; with
            # foreign keys on, that DROP would cascade-delete every row referencing it.
            # The pragma is ignored inside a transaction, so it is set before BEGIN.
            _pragma(conn, "PRAGMA foreign_keys=OFF")
        try:
            with conn.begin():  # BEGIN IMMEDIATE on SQLite: one migrator at a time
                if conn.dialect.name == "postgresql":
                    conn.execute(text("SELECT pg_advisory_xact_lock(735318)"))  # same reason
                config.attributes["connection"] = conn
                step(config, revision)
                if sqlite:
                    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if broken:  # rolls the whole migration back
                        raise RuntimeError(f"migration left rows without their parent: {broken[:5]}")
        finally:
            if sqlite:  # the pooled connection goes back as it came
                _pragma(conn, "PRAGMA foreign_keys=ON")


def _pragma(conn: Connection, statement: str) -> None:
    """Run on the DB-API connection itself: through SQLAlchemy it would begin a transaction."""
    conn.connection.dbapi_connection.execute(statement)
