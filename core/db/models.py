"""The tables behind :class:`core.db.SqlStore`, as SQLAlchemy declarative models.

``migrations/versions`` creates exactly these tables; ``tests/test_db.py`` checks that
autogenerate finds no difference, so a change here needs a migration next to it::

    alembic revision --autogenerate -m "what changed"
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
    true,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

__all__ = [
    "AnswerJobRow",
    "Base",
    "ConversationRow",
    "EventRow",
    "FeedbackRow",
    "IntakeRow",
    "LinkCodeRow",
    "MessageRow",
    "ProfileRow",
    "ThreadRow",
    "UTCDateTime",
    "UserRow",
]

# Stable constraint names on every backend, so later migrations can name what they drop.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only gives an auto-incrementing key to a column declared exactly INTEGER.
Id = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware timestamp that always comes back in UTC, SQLite included."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Refuse naive times; store UTC (naive on SQLite, which keeps no zone)."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: use core.types.utcnow()")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Return the stored time as an aware UTC datetime."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base of Parley's tables."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UserRow(Base):
    """A person as one platform knows them (an identity); created on first sight.

    A person is named by the id of their first identity: ``person_id`` is NULL on that
    one and holds it on every identity linked to it with ``/link``. It is no foreign key
    so that SQLite can add and drop the column in place; the store keeps it pointing at
    an identity whose own ``person_id`` is NULL, and forgets a person's identities together.
    """

    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("platform", "platform_user_id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    platform: Mapped[str] = mapped_column(String(32))
    platform_user_id: Mapped[str] = mapped_column(Text)
    display_name: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    person_id: Mapped[int | None] = mapped_column(Id, index=True)


class ProfileRow(Base):
    """What Parley knows about one person (:class:`core.types.UserProfile`).

    ``user_id`` is the person: their first identity (see :class:`UserRow`). ``facts`` is a
    list of :meth:`core.types.Fact.to_json` objects; rows written before facts had a
    confidence hold plain strings, which :meth:`core.types.Fact.from_json` still reads.
    """

    __tablename__ = "profiles"

    user_id: Mapped[int] = mapped_column(
        Id, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    display_name: Mapped[str | None] = mapped_column(Text)
    language: Mapped[str | None] = mapped_column(Text)
    preferences: Mapped[dict[str, str]] = mapped_column(JSON)
    facts: Mapped[list[dict[str, Any] | str]] = mapped_column(JSON)
    learn_facts: Mapped[bool] = mapped_column(Boolean, server_default=true())
    allows_training: Mapped[bool] = mapped_column(Boolean, server_default=true())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class LinkCodeRow(Base):
    """A one-time code that links another identity to the person who asked for it."""

    __tablename__ = "link_codes"
    __table_args__ = (Index(None, "user_id"),)

    code: Mapped[str] = mapped_column(String(16), primary_key=True)
    user_id: Mapped[int] = mapped_column(Id, ForeignKey("users.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ConversationRow(Base):
    """One conversation, named by :meth:`core.types.ConversationKey.encode`."""

    __tablename__ = "conversations"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    key: Mapped[str] = mapped_column(Text, unique=True)
    platform: Mapped[str] = mapped_column(String(32))
    workspace: Mapped[str | None] = mapped_column(Text)
    chat: Mapped[str] = mapped_column(Text)
    thread: Mapped[str | None] = mapped_column(Text)
    # The last message id before the latest reset; the history starts after it (0: never).
    context_since: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class MessageRow(Base):
    """One turn of a conversation, from either side."""

    __tablename__ = "messages"
    __table_args__ = (
        Index(None, "conversation_id", "id"),
        Index(None, "conversation_id", "platform_message_id"),
        CheckConstraint("role IN ('system', 'user', 'assistant')", name="role"),
        # Ids name answers in feedback buttons: SQLite must never reuse a deleted one.
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(
        Id, ForeignKey("conversations.id", ondelete="CASCADE")
    )
    role: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[int | None] = mapped_column(Id, ForeignKey("users.id", ondelete="SET NULL"))
    text: Mapped[str] = mapped_column(Text)
    platform_message_id: Mapped[str | None] = mapped_column(Text)
    model_version: Mapped[str | None] = mapped_column(Text)
    context: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    sentiment_label: Mapped[str | None] = mapped_column(String(16))
    sentiment_score: Mapped[float | None] = mapped_column(Float)
    sentiment_confidence: Mapped[float | None] = mapped_column(Float)
    # Why moderation replaced this answer with a safe reply; such answers are never
    # training data (the feedback export filters on ``blocked_reason IS NULL``).
    blocked_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class FeedbackRow(Base):
    """One person's current verdict on one answer; later feedback replaces it."""

    __tablename__ = "feedback"
    __table_args__ = (
        UniqueConstraint("answer_id", "user_id"),
        CheckConstraint("rating IN ('good', 'bad')", name="rating"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    answer_id: Mapped[int] = mapped_column(Id, ForeignKey("messages.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(Id, ForeignKey("users.id", ondelete="CASCADE"))
    rating: Mapped[str | None] = mapped_column(String(8))
    correction: Mapped[str | None] = mapped_column(Text)
    given_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class EventRow(Base):
    """A platform event already claimed for handling; redeliveries of it are ignored."""

    __tablename__ = "events"
    __table_args__ = (Index(None, "seen_at"),)

    platform: Mapped[str] = mapped_column(String(32), primary_key=True)
    event_id: Mapped[str] = mapped_column(Text, primary_key=True)
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AnswerJobRow(Base):
    """The answer owed to one stored message (:class:`core.jobs.Job`), beside that message.

    ``token`` names the runner holding the lease while the job runs. ``answer_id`` is
    unique, so no answer can end two jobs. Ended jobs pile up, one per question ever
    asked, so both indexes lead with what finds the few that have not ended: the oldest
    of one conversation (claims, ``next_job``) and of all (the reconciler).

    The delivery of the reply (:class:`core.jobs.DeliveryStore`): ``delivered_at`` stays
    NULL until the reply reached the person; ``delivery_holder`` holds it until
    ``delivery_lease_until``; ``shown`` lists the platform messages sent, one id a line.
    """

    __tablename__ = "answer_jobs"
    __table_args__ = (
        Index(None, "conversation_id", "status", "message_id"),
        Index(None, "status", "message_id"),
        Index(None, "delivered_at", "message_id"),
        CheckConstraint("status IN ('queued', 'running', 'done', 'failed')", name="status"),
    )

    message_id: Mapped[int] = mapped_column(
        Id, ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True
    )
    conversation_id: Mapped[int] = mapped_column(
        Id, ForeignKey("conversations.id", ondelete="CASCADE")
    )
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    token: Mapped[str | None] = mapped_column(Text)
    answer_id: Mapped[int | None] = mapped_column(
        Id, ForeignKey("messages.id", ondelete="SET NULL"), unique=True
    )
    error: Mapped[str | None] = mapped_column(Text)
    in_group: Mapped[bool] = mapped_column(Boolean, server_default=false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    delivery_holder: Mapped[str | None] = mapped_column(Text)
    delivery_lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    shown: Mapped[str | None] = mapped_column(Text)


class AdapterRow(Base):
    """One fine-tuned adapter version (:class:`core.registry.AdapterVersion`)."""

    __tablename__ = "model_adapters"
    __table_args__ = (
        Index(None, "status"),
        CheckConstraint(
            "status IN ('candidate', 'rejected', 'serving', 'retired', 'rolled_back')",
            name="status",
        ),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    parent_id: Mapped[str | None] = mapped_column(String(64))
    base_model: Mapped[str] = mapped_column(Text)
    path: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    served_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    window_since: Mapped[datetime | None] = mapped_column(UTCDateTime())
    window_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    figures: Mapped[dict[str, Any]] = mapped_column(JSON)


class IntakeRow(Base):
    """The files of an accepted message, by reference, until its answer is shown.

    ``message`` is :func:`core.intake.message_to_json`, ``files`` a list of
    :meth:`core.intake.FileRef.to_json`; ``lease_until`` is when the process reading it
    may be presumed dead (see :mod:`core.intake`).
    """

    __tablename__ = "intakes"
    __table_args__ = (Index(None, "platform", "lease_until"),)

    message_id: Mapped[int] = mapped_column(
        Id, ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True
    )
    platform: Mapped[str] = mapped_column(String(32))
    message: Mapped[dict[str, Any]] = mapped_column(JSON)
    files: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    read: Mapped[bool] = mapped_column(Boolean, server_default=false())
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ThreadRow(Base):
    """A platform thread Parley takes part in, by its conversation key (encoded)."""

    __tablename__ = "threads"

    key: Mapped[str] = mapped_column(Text, primary_key=True)
    joined_at: Mapped[datetime] = mapped_column(UTCDateTime())
