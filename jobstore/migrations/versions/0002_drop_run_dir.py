"""jobs.run_dir goes (it is always RUNS_ROOT/job-<id>, sam3_video.run_layout.job_dir);
stored configs lose the model.init.path the API used to fill in beside model.init.job_id

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

jobs = sa.table("jobs", sa.column("id", sa.Integer), sa.column("config", sa.JSON))


def upgrade() -> None:
    # Batch mode: PostgreSQL drops the column in place; SQLite copies the table (with
    # foreign keys off during the migration, see jobstore.migrate, so the copy keeps
    # every row that references a job).
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("run_dir")
    # Jobs stored before this revision carry both model.init.job_id and the checkpoint
    # path the API resolved it to, an absolute path of the API's host. The stored config
    # is what the user sent: keep job_id, which the worker resolves on its own host.
    conn = op.get_bind()
    for job_id, config in conn.execute(sa.select(jobs.c.id, jobs.c.config)).all():
        init = ((config or {}).get("model") or {}).get("init") or {}
        if init.get("job_id") is not None and init.get("path") is not None:
            init.pop("path")
            conn.execute(jobs.update().where(jobs.c.id == job_id).values(config=config))


def downgrade() -> None:
    # RUNS_ROOT is not known here, so run_dir comes back empty: the 0001 worker then falls
    # back to RUNS_ROOT/job-<id>, the 0001 API's log and evaluation reads do not. Run it
    # through jobstore.migrate.downgrade (foreign keys off for the SQLite table copy).
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("run_dir", sa.Text, nullable=False, server_default=""))
