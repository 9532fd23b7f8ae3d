"""Answers moderation blocked keep the reason; messages are found by age for retention.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add ``messages.blocked_reason`` and an index on ``messages.created_at``."""
    op.add_column("messages", sa.Column("blocked_reason", sa.Text(), nullable=True))
    op.create_index("ix_messages_created_at", "messages", ["created_at"])


def downgrade() -> None:
    """Drop them again, in place (rebuilding messages on SQLite would cascade)."""
    op.drop_index("ix_messages_created_at", table_name="messages")
    op.drop_column("messages", "blocked_reason")
