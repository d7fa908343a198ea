"""jobs.time_limit_s: a job's own running-time limit (only ever below the worker's
SAM3V_JOB_TIME_LIMIT_S); NULL for every existing job, which then gets the setting

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A nullable column: ALTER TABLE ADD COLUMN on both SQLite and PostgreSQL, no copy.
    op.add_column("jobs", sa.Column("time_limit_s", sa.Integer, nullable=True))


def downgrade() -> None:
    # SQLite copies the table (foreign keys off, see jobstore.migrate.downgrade).
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("time_limit_s")
