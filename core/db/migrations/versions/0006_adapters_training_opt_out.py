"""Fine-tuning: the registry of adapter versions, and each person's training opt-out.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Timestamp = sa.DateTime(timezone=True)
STATUSES = "status IN ('candidate', 'rejected', 'serving', 'retired', 'rolled_back')"


def upgrade() -> None:
    """Create model_adapters; add profiles.allows_training (true for everyone so far)."""
    op.create_table(
        "model_adapters",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("parent_id", sa.String(64), nullable=True),
        sa.Column("base_model", sa.Text(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("served_at", Timestamp, nullable=True),
        sa.Column("window_since", Timestamp, nullable=True),
        sa.Column("window_until", Timestamp, nullable=True),
        sa.Column("figures", sa.JSON(), nullable=False),
        sa.CheckConstraint(STATUSES, name="ck_model_adapters_status"),
        sa.PrimaryKeyConstraint("id", name="pk_model_adapters"),
    )
    op.create_index("ix_model_adapters_status", "model_adapters", ["status"])
    op.add_column(
        "profiles",
        sa.Column("allows_training", sa.Boolean(), server_default=sa.true(), nullable=False),
    )


def downgrade() -> None:
    """Drop them again."""
    op.drop_column("profiles", "allows_training")
    op.drop_index("ix_model_adapters_status", table_name="model_adapters")
    op.drop_table("model_adapters")
