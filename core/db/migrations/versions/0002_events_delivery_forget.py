"""Claimed platform events, finding a turn by its platform message, and never-reused ids.

Forgetting a person deletes messages; SQLite would then hand the highest deleted id to
the next message unless ``messages`` is declared AUTOINCREMENT, which takes a rebuild of
that table there. PostgreSQL sequences never reuse ids, so it only gets the new index.

Revision ID: 0002
Revises: 0001
Create Date: 2025-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Timestamp = sa.DateTime(timezone=True)
PLATFORM_INDEX = "ix_messages_conversation_id_platform_message_id"


def upgrade() -> None:
    """Add the events table and the index on messages' platform ids."""
    op.create_table(
        "events",
        sa.Column("platform", sa.String(32), nullable=False),
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.Column("seen_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("platform", "event_id", name="pk_events"),
    )
    op.create_index("ix_events_seen_at", "events", ["seen_at"])
    op.create_index(PLATFORM_INDEX, "messages", ["conversation_id", "platform_message_id"])
    _rebuild_sqlite_messages(autoincrement=True)


def downgrade() -> None:
    """Drop them again."""
    _rebuild_sqlite_messages(autoincrement=False)
    op.drop_index(PLATFORM_INDEX, table_name="messages")
    op.drop_index("ix_events_seen_at", table_name="events")
    op.drop_table("events")


def _rebuild_sqlite_messages(*, autoincrement: bool) -> None:
    """Recreate ``messages`` on SQLite with or without AUTOINCREMENT, keeping all feedback.

    Foreign keys are on and cannot be turned off inside the migration's transaction, so
    dropping the old table cascades to ``feedback``; its rows are kept aside and restored.
    """
    if op.get_bind().dialect.name != "sqlite":
        return
    op.execute("CREATE TEMPORARY TABLE feedback_kept AS SELECT * FROM feedback")
    with op.batch_alter_table(
        "messages",
        recreate="always",
        copy_from=_messages(autoincrement=autoincrement),
    ):
        pass
    op.execute("INSERT INTO feedback SELECT * FROM feedback_kept")
    op.execute("DROP TABLE feedback_kept")


def _messages(*, autoincrement: bool) -> sa.Table:
    """The ``messages`` table as this revision leaves it."""
    return sa.Table(
        "messages",
        sa.MetaData(),
        sa.Column("id", Id, nullable=False),
        sa.Column("conversation_id", Id, nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("user_id", Id, nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("platform_message_id", sa.Text(), nullable=True),
        sa.Column("model_version", sa.Text(), nullable=True),
        sa.Column("context", sa.JSON(), nullable=True),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.CheckConstraint("role IN ('system', 'user', 'assistant')", name="ck_messages_role"),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name="fk_messages_conversation_id_conversations",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_messages_user_id_users", ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_messages"),
        sa.Index("ix_messages_conversation_id_id", "conversation_id", "id"),
        sa.Index(PLATFORM_INDEX, "conversation_id", "platform_message_id"),
        sqlite_autoincrement=autoincrement,
    )
