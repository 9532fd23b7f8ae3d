"""Conversations in SQL: the statements behind :class:`core.db.SqlStore`'s turns.

Storing a turn, reading a conversation's history (since its last reset, or before one
message in answer order), finding a turn by its own or its platform message's id, and
reading an answer with its conversation. Each function runs inside the caller's
transaction; the ones that change rows need a write transaction.
"""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from core.db.models import AnswerJobRow, ConversationRow, MessageRow, UserRow
from core.db.rows import dialect, insert_for, rowcount, stored_message
from core.types import (
    Answer,
    ConversationKey,
    Role,
    StoredMessage,
    utcnow,
)

__all__ = [
    "add_message",
    "answer",
    "conversation_id",
    "find_by_platform_id",
    "history",
    "history_before",
    "mark_delivered",
    "message",
    "reset",
]


def history(s: Session, key: ConversationKey, limit: int) -> list[StoredMessage]:
    """The last ``limit`` turns since the conversation was last reset, oldest first."""
    query = (
        select(MessageRow, UserRow)
        .join(ConversationRow, MessageRow.conversation_id == ConversationRow.id)
        .outerjoin(UserRow, MessageRow.user_id == UserRow.id)
        .where(ConversationRow.key == key.encode())
        .where(MessageRow.id > ConversationRow.context_since)
        .order_by(MessageRow.id.desc())
        .limit(limit)
    )
    rows = s.execute(query).all()
    return [stored_message(message, user) for message, user in reversed(rows)]


def message(s: Session, message_id: int) -> StoredMessage | None:
    """One stored turn by its id, or ``None``."""
    query = (
        select(MessageRow, UserRow)
        .outerjoin(UserRow, MessageRow.user_id == UserRow.id)
        .where(MessageRow.id == message_id)
    )
    row = s.execute(query).first()
    return stored_message(*row) if row is not None else None


def history_before(s: Session, message_id: int, limit: int) -> list[StoredMessage]:
    """What came before a message in its conversation, in answer order (see the contract)."""
    conversation = (
        select(MessageRow.conversation_id).where(MessageRow.id == message_id).scalar_subquery()
    )
    # An answer takes the place of the message it answers.
    place = func.coalesce(AnswerJobRow.message_id, MessageRow.id)
    query = (
        select(MessageRow, UserRow)
        .join(ConversationRow, MessageRow.conversation_id == ConversationRow.id)
        .outerjoin(UserRow, MessageRow.user_id == UserRow.id)
        .outerjoin(AnswerJobRow, AnswerJobRow.answer_id == MessageRow.id)
        .where(ConversationRow.id == conversation)
        .where(MessageRow.id > ConversationRow.context_since)
        .where(place < message_id)
        .order_by(place.desc(), MessageRow.id.desc())
        .limit(limit)
    )
    rows = s.execute(query).all()
    return [stored_message(message, user) for message, user in reversed(rows)]


def reset(s: Session, key: ConversationKey) -> None:
    """Start a fresh context: earlier turns stay stored but leave the history."""
    last = (
        select(func.max(MessageRow.id))
        .where(MessageRow.conversation_id == ConversationRow.id)
        .scalar_subquery()
    )
    s.execute(
        update(ConversationRow)
        .where(ConversationRow.key == key.encode())
        .values(context_since=func.coalesce(last, ConversationRow.context_since))
    )


def mark_delivered(s: Session, message_id: int, platform_message_id: str) -> None:
    """Record the platform message that shows a stored answer; raise KeyError if unknown."""
    change = (
        update(MessageRow)
        .where(MessageRow.id == message_id)
        .values(platform_message_id=platform_message_id)
    )
    if rowcount(s.execute(change)) == 0:
        raise KeyError(f"no message with id {message_id}")


def find_by_platform_id(
    s: Session, key: ConversationKey, platform_message_id: str
) -> StoredMessage | None:
    """The newest turn of the conversation shown by that platform message, or ``None``."""
    query = (
        select(MessageRow, UserRow)
        .join(ConversationRow, MessageRow.conversation_id == ConversationRow.id)
        .outerjoin(UserRow, MessageRow.user_id == UserRow.id)
        .where(ConversationRow.key == key.encode())
        .where(MessageRow.platform_message_id == platform_message_id)
        .order_by(MessageRow.id.desc())
        .limit(1)
    )
    row = s.execute(query).first()
    return stored_message(*row) if row is not None else None


def answer(s: Session, answer_id: int) -> Answer | None:
    """The stored answer with this id, or ``None``."""
    query = (
        select(MessageRow, UserRow, ConversationRow)
        .join(ConversationRow, MessageRow.conversation_id == ConversationRow.id)
        .outerjoin(UserRow, MessageRow.user_id == UserRow.id)
        .where(MessageRow.id == answer_id, MessageRow.role == Role.ASSISTANT.value)
    )
    row = s.execute(query).first()
    if row is None:
        return None
    message, user, conversation = row
    key = ConversationKey(
        platform=conversation.platform,
        workspace=conversation.workspace,
        chat=conversation.chat,
        thread=conversation.thread,
    )
    return Answer(message=stored_message(message, user), conversation=key)


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


def conversation_id(s: Session, key: ConversationKey) -> int:
    """The conversation's row id, created with its first message."""
    same = ConversationRow.key == key.encode()
    found = s.scalar(select(ConversationRow.id).where(same))
    if found is not None:
        return found
    s.execute(
        insert_for(dialect(s), ConversationRow)
        .values(
            key=key.encode(),
            platform=key.platform,
            workspace=key.workspace,
            chat=key.chat,
            thread=key.thread,
            context_since=0,
            created_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=[ConversationRow.key])
    )
    return s.execute(select(ConversationRow.id).where(same)).scalar_one()
