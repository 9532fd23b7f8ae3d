"""Answer jobs keep their delivery: who delivers the reply, and what of it was sent.

``delivered_at`` is NULL while the reply has not reached the person; ``delivery_holder``
and ``delivery_lease_until`` name the process that delivers it and until when its hold
lasts; ``shown`` lists the platform messages sent so far (one id a line). Jobs stored
before this revision count as delivered: they were answered, or given up, by then.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Timestamp = sa.DateTime(timezone=True)
INDEX = "ix_answer_jobs_delivered_at_message_id"
COLUMNS = ("delivered_at", "delivery_holder", "delivery_lease_until", "shown")


def upgrade() -> None:
    """Add the delivery columns; mark the jobs already there delivered."""
    op.add_column("answer_jobs", sa.Column("delivered_at", Timestamp, nullable=True))
    op.add_column("answer_jobs", sa.Column("delivery_holder", sa.Text(), nullable=True))
    op.add_column("answer_jobs", sa.Column("delivery_lease_until", Timestamp, nullable=True))
    op.add_column("answer_jobs", sa.Column("shown", sa.Text(), nullable=True))
    op.execute("UPDATE answer_jobs SET delivered_at = updated_at")
    op.create_index(INDEX, "answer_jobs", ["delivered_at", "message_id"])


def downgrade() -> None:
    """Drop them again, in place (rebuilding answer_jobs on SQLite is not needed)."""
    op.drop_index(INDEX, table_name="answer_jobs")
    for column in reversed(COLUMNS):
        op.drop_column("answer_jobs", column)
