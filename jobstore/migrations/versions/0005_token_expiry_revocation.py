"""tokens.expires_at and tokens.revoked_at: tokens can expire and be revoked (`sam3v
tokens create --expires-in`, `sam3v tokens revoke`); NULL for every existing token,
which stays valid until revoked

Revision ID: 0005
Revises: 0004
"""
import time

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable columns: ALTER TABLE ADD COLUMN on SQLite and PostgreSQL alike, no copy.
    op.add_column("tokens", sa.Column("expires_at", sa.Float, nullable=True))
    op.add_column("tokens", sa.Column("revoked_at", sa.Float, nullable=True))


def downgrade() -> None:
    # The older schema knows neither: a revoked or expired token would be valid again, so
    # it goes with the columns. Tokens that expire later become valid until deleted.
    tokens = sa.table("tokens", sa.column("revoked_at", sa.Float), sa.column("expires_at", sa.Float))
    op.execute(tokens.delete().where(sa.or_(tokens.c.revoked_at.is_not(None),
                                            tokens.c.expires_at <= time.time())))
    with op.batch_alter_table("tokens") as batch:
        batch.drop_column("revoked_at")
        batch.drop_column("expires_at")
