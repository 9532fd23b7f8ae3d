"""Intakes and threads in SQL: :class:`core.intake.IntakeStore` and ``ThreadStore``.

Taking an intake over is one conditional UPDATE (its lease must have run out), so of two
processes that find the same stalled intake exactly one takes it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.orm import aliased

from core.db.engine import SqlPart
from core.db.jobs import OPEN, lock_conversation, open_job
from core.db.messages import conversation_id
from core.db.models import AnswerJobRow, ConversationRow, IntakeRow, MessageRow, ThreadRow
from core.db.people import user_id
from core.db.rows import add_message, bulk_delete, dialect, insert_for, rowcount
from core.intake import FileRef, Intake, message_from_json, message_to_json
from core.jobs import JobStatus
from core.sentiment import Sentiment
from core.store import NewTurn, draft_turn
from core.types import ConversationKey, Message, Role, StoredMessage, utcnow

__all__ = ["SqlIntakes", "SqlThreads"]


def _until(lease_seconds: float) -> datetime:
    return utcnow() + timedelta(seconds=lease_seconds)


def _intake(row: IntakeRow) -> Intake:
    return Intake(
        message_id=row.message_id,
        message=message_from_json(row.message),
        files=tuple(FileRef.from_json(file) for file in row.files),
        read=row.read,
        lease_until=row.lease_until,
        created_at=row.created_at,
    )


class SqlIntakes(SqlPart):
    """:class:`core.intake.IntakeStore` in SQL."""

    def store_with_files(
        self, message: Message, files: tuple[FileRef, ...], lease_seconds: float
    ) -> StoredMessage:
        """The message, its job and its intake in one transaction (as ``append`` stores)."""
        turn: NewTurn = {
            "user": message.user,
            "platform_message_id": message.message_id,
            "expects_answer": True,
            "in_group": message.is_group,
        }
        draft = draft_turn(Role.USER, message.text.strip(), turn)
        with self._session(write=True) as s:
            conversation = conversation_id(s, message.key)
            lock_conversation(s, conversation)  # before the message's id is drawn
            stored = add_message(s, conversation, draft, user_id=user_id(s, message.user))
            open_job(s, stored.id, conversation, stored.created_at, in_group=message.is_group)
            s.add(
                IntakeRow(
                    message_id=stored.id,
                    platform=message.platform,
                    message=message_to_json(message),
                    files=[file.to_json() for file in files],
                    read=False,
                    lease_until=_until(lease_seconds),
                    created_at=utcnow(),
                )
            )
            return stored

    def intake(self, message_id: int) -> Intake | None:
        with self._session(write=False) as s:
            row = s.get(IntakeRow, message_id)
            return _intake(row) if row is not None else None

    def renew_intake(self, message_id: int, lease_seconds: float) -> None:
        self._set(message_id, lease_until=_until(lease_seconds))

    def take_intake(self, message_id: int, lease_seconds: float) -> bool:
        now = utcnow()
        with self._session(write=True) as s:
            taken = s.execute(
                update(IntakeRow)
                .where(
                    IntakeRow.message_id == message_id,
                    or_(IntakeRow.lease_until.is_(None), IntakeRow.lease_until < now),
                )
                .values(lease_until=now + timedelta(seconds=lease_seconds))
            )
            return rowcount(taken) == 1

    def intake_read(self, message_id: int, text: str, sentiment: Sentiment | None) -> None:
        with self._session(write=True) as s:
            s.execute(
                update(MessageRow)
                .where(MessageRow.id == message_id)
                .values(
                    text=text,
                    sentiment_label=str(sentiment.label) if sentiment is not None else None,
                    sentiment_score=sentiment.score if sentiment is not None else None,
                    sentiment_confidence=sentiment.confidence if sentiment is not None else None,
                )
            )
            s.execute(update(IntakeRow).where(IntakeRow.message_id == message_id).values(read=True))

    def close_intake(self, message_id: int) -> None:
        with self._session(write=True) as s:
            bulk_delete(s, delete(IntakeRow).where(IntakeRow.message_id == message_id))

    def discard_intake(self, message_id: int) -> None:
        """Delete the message: its job and intake go with it (ON DELETE CASCADE)."""
        with self._session(write=True) as s:
            bulk_delete(s, delete(MessageRow).where(MessageRow.id == message_id))

    def stalled_intakes(self, platform: str, now: datetime, *, limit: int = 100) -> list[Intake]:
        with self._session(write=False) as s:
            rows = s.scalars(
                select(IntakeRow)
                .where(
                    IntakeRow.platform == platform,
                    or_(IntakeRow.lease_until.is_(None), IntakeRow.lease_until < now),
                )
                .order_by(IntakeRow.message_id)
                .limit(limit)
            )
            return [_intake(row) for row in rows]

    def waiting_after(
        self, key: ConversationKey, message_id: int, *, limit: int = 100
    ) -> list[int]:
        answer = aliased(MessageRow)
        conversation = (
            select(ConversationRow.id).where(ConversationRow.key == key.encode()).scalar_subquery()
        )
        undelivered = and_(
            AnswerJobRow.status == JobStatus.DONE.value, answer.platform_message_id.is_(None)
        )
        with self._session(write=False) as s:
            found = s.scalars(
                select(AnswerJobRow.message_id)
                .outerjoin(answer, answer.id == AnswerJobRow.answer_id)
                .where(
                    AnswerJobRow.conversation_id == conversation,
                    AnswerJobRow.message_id > message_id,
                    or_(AnswerJobRow.status.in_(OPEN), undelivered),
                )
                .order_by(AnswerJobRow.message_id)
                .limit(limit)
            )
            return list(found)

    def _set(self, message_id: int, **values: object) -> None:
        with self._session(write=True) as s:
            s.execute(update(IntakeRow).where(IntakeRow.message_id == message_id).values(**values))


class SqlThreads(SqlPart):
    """:class:`core.intake.ThreadStore` in SQL."""

    def join_thread(self, key: ConversationKey) -> None:
        with self._session(write=True) as s:
            s.execute(
                insert_for(dialect(s), ThreadRow)
                .values(key=key.encode(), joined_at=utcnow())
                .on_conflict_do_nothing(index_elements=[ThreadRow.key])
            )

    def in_thread(self, key: ConversationKey) -> bool:
        with self._session(write=False) as s:
            return s.get(ThreadRow, key.encode()) is not None
