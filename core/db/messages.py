"""Conversations in SQL: the turns of :class:`core.db.SqlStore`.

:class:`SqlConversations` is a conversation as the chat shows it (storing turns, the
history since the last reset, platform message ids); :class:`SqlTurns` reads single turns
by id (an answer with its conversation, the history before one message in answer order)
and rewrites their text.
"""

from __future__ import annotations

from typing import Unpack

from sqlalchemy import Select, func, select, update
from sqlalchemy.orm import Session

from core.db.engine import SqlPart
from core.db.jobs import lock_conversation, open_job
from core.db.models import AnswerJobRow, ConversationRow, MessageRow, UserRow
from core.db.people import user_id
from core.db.rows import (
    add_message,
    conversation_key,
    dialect,
    insert_for,
    rowcount,
    stored_message,
)
from core.jobs import DeliveryHold
from core.store import NewTurn, draft_turn
from core.types import Answer, ConversationKey, Role, StoredMessage, utcnow

__all__ = ["SqlConversations", "SqlTurns", "conversation_id"]


class SqlConversations(SqlPart):
    """:class:`core.store.ConversationStore` in SQL."""

    delivery_hold: DeliveryHold | None = None
    """Who holds the deliveries of the jobs opened here (see :mod:`core.db.deliveries`)."""

    def append(
        self, key: ConversationKey, role: Role, text: str, **turn: Unpack[NewTurn]
    ) -> StoredMessage:
        """Store one turn and return it with its id; with its answer job if it expects one."""
        user, expects_answer = turn.get("user"), turn.get("expects_answer", False)
        with self._session(write=True) as s:
            conversation = conversation_id(s, key)
            if expects_answer:  # before the message's id is drawn: see core.db.jobs
                lock_conversation(s, conversation)
            writer = user_id(s, user) if user is not None else None
            stored = add_message(s, conversation, draft_turn(role, text, turn), user_id=writer)
            if expects_answer:
                in_group = turn.get("in_group", False)
                open_job(
                    s,
                    stored.id,
                    conversation,
                    stored.created_at,
                    in_group=in_group,
                    hold=self.delivery_hold,
                )
            return stored

    def history(self, key: ConversationKey, limit: int) -> list[StoredMessage]:
        """The last ``limit`` turns since the conversation was last reset, oldest first."""
        if limit <= 0:
            return []
        with self._session(write=False) as s:
            query = (
                _turns_with_writers()
                .where(ConversationRow.key == key.encode())
                .where(MessageRow.id > ConversationRow.context_since)
                .order_by(MessageRow.id.desc())
                .limit(limit)
            )
            rows = s.execute(query).all()
            return [stored_message(message, user) for message, user in reversed(rows)]

    def reset(self, key: ConversationKey) -> None:
        """Start a fresh context: earlier turns stay stored but leave the history."""
        with self._session(write=True) as s:
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

    def mark_delivered(self, message_id: int, platform_message_id: str) -> None:
        """Record the platform message that shows a stored answer; raise KeyError if unknown."""
        with self._session(write=True) as s:
            change = (
                update(MessageRow)
                .where(MessageRow.id == message_id)
                .values(platform_message_id=platform_message_id)
            )
            if rowcount(s.execute(change)) == 0:
                raise KeyError(f"no message with id {message_id}")

    def find_by_platform_id(
        self, key: ConversationKey, platform_message_id: str
    ) -> StoredMessage | None:
        """The newest turn of the conversation shown by that platform message, or ``None``."""
        with self._session(write=False) as s:
            query = (
                _turns_with_writers()
                .where(ConversationRow.key == key.encode())
                .where(MessageRow.platform_message_id == platform_message_id)
                .order_by(MessageRow.id.desc())
                .limit(1)
            )
            row = s.execute(query).first()
            return stored_message(*row) if row is not None else None


class SqlTurns(SqlPart):
    """:class:`core.store.TurnStore` in SQL."""

    def message(self, message_id: int) -> StoredMessage | None:
        """One stored turn by its id, or ``None``."""
        with self._session(write=False) as s:
            query = (
                select(MessageRow, UserRow)
                .outerjoin(UserRow, MessageRow.user_id == UserRow.id)
                .where(MessageRow.id == message_id)
            )
            row = s.execute(query).first()
            return stored_message(*row) if row is not None else None

    def answer(self, answer_id: int) -> Answer | None:
        """The stored answer with this id, or ``None``."""
        with self._session(write=False) as s:
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
            return Answer(
                message=stored_message(message, user), conversation=conversation_key(conversation)
            )

    def history_before(self, message_id: int, limit: int) -> list[StoredMessage]:
        """What came before a message in its conversation, in answer order (see the contract)."""
        if limit <= 0:
            return []
        with self._session(write=False) as s:
            conversation = (
                select(MessageRow.conversation_id)
                .where(MessageRow.id == message_id)
                .scalar_subquery()
            )
            # An answer takes the place of the message it answers.
            place = func.coalesce(AnswerJobRow.message_id, MessageRow.id)
            query = (
                _turns_with_writers()
                .outerjoin(AnswerJobRow, AnswerJobRow.answer_id == MessageRow.id)
                .where(ConversationRow.id == conversation)
                .where(MessageRow.id > ConversationRow.context_since)
                .where(place < message_id)
                .order_by(place.desc(), MessageRow.id.desc())
                .limit(limit)
            )
            rows = s.execute(query).all()
            return [stored_message(message, user) for message, user in reversed(rows)]

    def replace_text(self, message_id: int, text: str) -> bool:
        """Replace a stored turn's text; False if it is gone."""
        with self._session(write=True) as s:
            change = update(MessageRow).where(MessageRow.id == message_id).values(text=text)
            return rowcount(s.execute(change)) > 0


def _turns_with_writers() -> Select[MessageRow, UserRow]:
    """Turns with their conversations joined in, each with its writer (``None``: Parley)."""
    return (
        select(MessageRow, UserRow)
        .join(ConversationRow, MessageRow.conversation_id == ConversationRow.id)
        .outerjoin(UserRow, MessageRow.user_id == UserRow.id)
    )


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
