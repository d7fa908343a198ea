"""Apply Alembic migrations up to head. Safe to call from several processes at once."""
from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, text

from jobstore.settings import Settings, get_settings
from jobstore.db import get_engine

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def migrate(settings: Settings | None = None, *, engine: Engine | None = None) -> None:
    """Bring the database of `settings` (or `engine`) to the newest schema."""
    settings = settings or get_settings()
    engine = engine if engine is not None else get_engine(settings)
    if engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:"):
        Path(engine.url.database).parent.mkdir(parents=True, exist_ok=True)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as conn:  # BEGIN IMMEDIATE on SQLite: one migrator at a time
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(735318)"))  # same reason
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
