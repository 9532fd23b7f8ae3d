"""Stored rows as Parley's types, and the small statement helpers the SQL modules share.

The parts of :class:`core.db.SqlStore` read rows and pick people the same way, and
store a drafted turn with :func:`add_message` (a person's message, or a job's answer).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, cast

from sqlalchemy import ColumnElement, CursorResult, Delete, or_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from core.db.models import Base, ConversationRow, MessageRow, ProfileRow, UserRow
from core.sentiment import Mood, Sentiment
from core.types import (
    ContextReport,
    ConversationKey,
    Fact,
    Role,
    StoredMessage,
    UserProfile,
    UserRef,
)

__all__ = [
    "add_message",
    "bulk_delete",
    "conversation_key",
    "dialect",
    "insert_for",
    "of_person",
    "profile_of",
    "rowcount",
    "same_identity",
    "stored_message",
    "user_ref",
]


def dialect(s: Session) -> str:
    """The name of the session's database dialect (``postgresql`` or ``sqlite``)."""
    return s.get_bind().dialect.name


def insert_for(dialect: str, table: type[Base]) -> postgresql.Insert | sqlite.Insert:
    """An INSERT that can say what to do ON CONFLICT, in the named database dialect."""
    if dialect == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def rowcount(result: object) -> int:
    """How many rows a data-changing statement touched."""
    return int(cast(CursorResult[Any], result).rowcount)


def bulk_delete(s: Session, statement: Delete) -> int:
    """Run a bulk DELETE without syncing the session (it holds no objects); return the count."""
    return rowcount(s.execute(statement.execution_options(synchronize_session=False)))


def same_identity(user: UserRef) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
    """The condition that picks the identity's row."""
    return UserRow.platform == user.platform, UserRow.platform_user_id == user.id


def of_person(person: int) -> ColumnElement[bool]:
    """The condition that picks every identity of the person."""
    return or_(UserRow.id == person, UserRow.person_id == person)


def conversation_key(row: ConversationRow) -> ConversationKey:
    """A stored conversation's key."""
    return ConversationKey(
        platform=row.platform, workspace=row.workspace, chat=row.chat, thread=row.thread
    )


def profile_of(row: ProfileRow) -> UserProfile:
    """A stored profile as the rest of Parley sees it."""
    return UserProfile(
        display_name=row.display_name,
        language=row.language,
        preferences=dict(row.preferences),
        facts=tuple(Fact.from_json(fact) for fact in row.facts),
        learn_facts=row.learn_facts,
        allows_training=row.allows_training,
    )


def user_ref(row: UserRow) -> UserRef:
    """The platform's view of a stored person."""
    return UserRef(platform=row.platform, id=row.platform_user_id, display_name=row.display_name)


def stored_message(message: MessageRow, user: UserRow | None) -> StoredMessage:
    """A stored turn as the rest of Parley sees it."""
    return StoredMessage(
        id=message.id,
        role=Role(message.role),
        text=message.text,
        user=user_ref(user) if user is not None else None,
        created_at=message.created_at,
        platform_message_id=message.platform_message_id,
        model_version=message.model_version,
        context=ContextReport.from_json(message.context) if message.context is not None else None,
        sentiment=_sentiment(message),
        blocked_reason=message.blocked_reason,
    )


def _sentiment(message: MessageRow) -> Sentiment | None:
    """The stored reading of a message's sentiment, if it has one."""
    if message.sentiment_label is None:
        return None
    return Sentiment(
        Mood(message.sentiment_label),
        message.sentiment_score or 0.0,
        message.sentiment_confidence or 0.0,
    )


def add_message(
    s: Session, conversation_id: int, draft: StoredMessage, *, user_id: int | None = None
) -> StoredMessage:
    """Insert a drafted turn (``user_id`` is its writer's row) and return it as stored."""
    sentiment = draft.sentiment
    row = MessageRow(
        conversation_id=conversation_id,
        role=draft.role.value,
        user_id=user_id,
        text=draft.text,
        platform_message_id=draft.platform_message_id,
        model_version=draft.model_version,
        context=draft.context.to_json() if draft.context is not None else None,
        sentiment_label=str(sentiment.label) if sentiment is not None else None,
        sentiment_score=sentiment.score if sentiment is not None else None,
        sentiment_confidence=sentiment.confidence if sentiment is not None else None,
        blocked_reason=draft.blocked_reason,
        created_at=draft.created_at,
    )
    s.add(row)
    s.flush()
    return replace(draft, id=row.id, created_at=row.created_at)
