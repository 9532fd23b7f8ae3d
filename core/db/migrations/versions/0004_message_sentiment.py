"""Each user message keeps how it read: sentiment label, signed score and confidence.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("sentiment_label", "sentiment_score", "sentiment_confidence")


def upgrade() -> None:
    """Add the nullable sentiment columns to messages."""
    op.add_column("messages", sa.Column("sentiment_label", sa.String(16), nullable=True))
    op.add_column("messages", sa.Column("sentiment_score", sa.Float(), nullable=True))
    op.add_column("messages", sa.Column("sentiment_confidence", sa.Float(), nullable=True))


def downgrade() -> None:
    """Drop them again, in place: rebuilding messages on SQLite would cascade to feedback."""
    for column in COLUMNS:
        op.drop_column("messages", column)
