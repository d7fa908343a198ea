"""jobs.id is never reused on SQLite: the table gets AUTOINCREMENT (a plain INTEGER PRIMARY
KEY hands the highest deleted id out again, so a client holding the id of a deleted job
would see someone else's new one). PostgreSQL's id sequence never reuses an id: nothing
to do there.

The counter starts at the highest id in the table: an id deleted before this revision,
above every remaining one, is not known any more and may still be handed out once.

Revision ID: 0004
Revises: 0003
"""
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _rebuild_jobs(autoincrement: bool) -> None:
    # A table copy (foreign keys off during the migration, see jobstore.migrate, so the
    # rows referencing jobs stay); copying the rows in sets SQLite's counter to max(id).
    with op.batch_alter_table("jobs", recreate="always",
                              table_kwargs={"sqlite_autoincrement": autoincrement}):
        pass


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_jobs(True)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_jobs(False)
