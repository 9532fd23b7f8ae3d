"""Answer jobs: the answer owed to each accepted message, until it has exactly one.

One row per message that needs an answer (:mod:`core.jobs`), deleted with its message or
conversation; ``answer_id`` is unique and becomes NULL if the answer is deleted. Messages
stored before this revision get no job: they were answered, or given up, by then.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Timestamp = sa.DateTime(timezone=True)
INDEXES = {
    "ix_answer_jobs_conversation_id_status_message_id": ["conversation_id", "status", "message_id"],
    "ix_answer_jobs_status_message_id": ["status", "message_id"],
}


def upgrade() -> None:
    """Create the answer_jobs table and its indexes."""
    op.create_table(
        "answer_jobs",
        sa.Column("message_id", Id, nullable=False),
        sa.Column("conversation_id", Id, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("lease_until", Timestamp, nullable=True),
        sa.Column("token", sa.Text(), nullable=True),
        sa.Column("answer_id", Id, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("in_group", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'done', 'failed')", name="ck_answer_jobs_status"
        ),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name="fk_answer_jobs_message_id_messages",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name="fk_answer_jobs_conversation_id_conversations",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["answer_id"],
            ["messages.id"],
            name="fk_answer_jobs_answer_id_messages",
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("message_id", name="pk_answer_jobs"),
        sa.UniqueConstraint("answer_id", name="uq_answer_jobs_answer_id"),
    )
    for name, columns in INDEXES.items():
        op.create_index(name, "answer_jobs", columns)


def downgrade() -> None:
    """Drop the table: the messages and answers stay, only the bookkeeping goes."""
    for name in INDEXES:
        op.drop_index(name, table_name="answer_jobs")
    op.drop_table("answer_jobs")
