"""Alembic environment. Configured in code by jobstore.migrate (no alembic.ini needed,
so it works from an installed package); the caller passes an open connection."""
from alembic import context

from jobstore.models import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata,
                  render_as_batch=connection.dialect.name == "sqlite")
# The caller's connection is already inside a transaction (BEGIN IMMEDIATE on SQLite,
# an advisory lock on PostgreSQL), so concurrent starters migrate one after the other.
context.run_migrations()
