"""Intakes (the files of a message, kept by reference until it is answered) and threads.

``intakes``: one row per accepted voice note or image whose answer is not shown yet
(:mod:`core.intake`), deleted with its message. ``threads``: the platform threads Parley
takes part in, so that follow-ups without a mention are answered after a restart.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create the intakes and threads tables."""
    op.create_table(
        "intakes",
        sa.Column("message_id", Id, nullable=False),
        sa.Column("platform", sa.String(32), nullable=False),
        sa.Column("message", sa.JSON(), nullable=False),
        sa.Column("files", sa.JSON(), nullable=False),
        sa.Column("read", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("lease_until", Timestamp, nullable=True),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name="fk_intakes_message_id_messages",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("message_id", name="pk_intakes"),
    )
    op.create_index("ix_intakes_platform_lease_until", "intakes", ["platform", "lease_until"])
    op.create_table(
        "threads",
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("joined_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_threads"),
    )


def downgrade() -> None:
    """Drop both tables."""
    op.drop_table("threads")
    op.drop_index("ix_intakes_platform_lease_until", table_name="intakes")
    op.drop_table("intakes")
