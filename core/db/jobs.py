"""Answer jobs in SQL: :class:`core.jobs.JobStore` for :class:`core.db.SqlStore`.

Every change of a job is one
conditional UPDATE whose row count says whether it happened, so of two processes racing
for the same job exactly one moves it; on SQLite the transaction holds the database's
write lock from its start anyway.

A claim also depends on *other* rows: no earlier job of the conversation may still be
open. On PostgreSQL, under READ COMMITTED, the row lock of the UPDATE does not cover
those rows, and message ids come from a sequence in the order they are drawn, not
committed. So whatever opens, claims or ends a job first locks its conversation's row
(``SELECT ... FOR NO KEY UPDATE``, which still lets messages be inserted into the
conversation): within one conversation these steps run one at a time, and jobs are
opened in the order of their ids.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Unpack, cast

from sqlalchemy import (
    ColumnElement,
    CursorResult,
    Exists,
    SQLColumnExpression,
    Update,
    and_,
    exists,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session, aliased

from core.db.engine import SqlPart
from core.db.models import AnswerJobRow, ConversationRow
from core.db.rows import add_message
from core.jobs import (
    AnswerDetails,
    Claim,
    ClaimOutcome,
    DeliveryHold,
    Job,
    JobStatus,
    set_aside_reason,
    settled_claim,
)
from core.store import new_job_token
from core.types import ConversationKey, Role, StoredMessage, utcnow

__all__ = ["SqlJobs", "lock_conversation", "open_job", "read_job"]

OPEN = (JobStatus.QUEUED.value, JobStatus.RUNNING.value)
"""The statuses of a job that has not ended."""

_COLUMNS = (*AnswerJobRow.__table__.columns, ConversationRow.key)


class SqlJobs(SqlPart):
    """:class:`core.jobs.JobStore` in SQL."""

    def job(self, message_id: int) -> Job | None:
        """The job of one message, or ``None``."""
        with self._session(write=False) as s:
            return read_job(s, message_id)

    def claim_job(self, message_id: int, *, lease_seconds: float, max_attempts: int) -> Claim:
        """:meth:`core.jobs.JobStore.claim_job`: take the job if it is free, next and not spent."""
        with self._session(write=True) as s:
            now = utcnow()
            conversation_id = _lock_job(s, message_id)
            if conversation_id is None:
                return Claim(ClaimOutcome.UNKNOWN)
            free = (
                AnswerJobRow.message_id == message_id,
                or_(
                    AnswerJobRow.status == JobStatus.QUEUED.value,
                    and_(
                        AnswerJobRow.status == JobStatus.RUNNING.value,
                        AnswerJobRow.lease_until < now,
                    ),
                ),
                ~_open_before(AnswerJobRow.conversation_id, AnswerJobRow.message_id),
            )
            token = new_job_token()
            take = (
                update(AnswerJobRow)
                .where(*free, AnswerJobRow.attempts < max_attempts)
                .values(
                    status=JobStatus.RUNNING.value,
                    attempts=AnswerJobRow.attempts + 1,
                    lease_until=now + timedelta(seconds=lease_seconds),
                    token=token,
                    updated_at=now,
                )
            )
            if _changed(s, take):
                return Claim(ClaimOutcome.CLAIMED, read_job(s, message_id), token)
            job = read_job(s, message_id)
            if job is None:
                return Claim(ClaimOutcome.UNKNOWN)
            if (settled := settled_claim(job, now)) is not None:
                return settled
            if s.scalar(select(_open_before(conversation_id, message_id))):
                return Claim(ClaimOutcome.WAIT, job)
            set_aside = (
                update(AnswerJobRow)
                .where(*free, AnswerJobRow.attempts == job.attempts)
                .values(**_ending(JobStatus.FAILED, now, set_aside_reason(job.attempts)))
            )
            if _changed(s, set_aside):
                return Claim(ClaimOutcome.SET_ASIDE, read_job(s, message_id))
            # Unreachable while the conversation is locked; were it not, someone else is at it.
            return Claim(ClaimOutcome.BUSY, job)

    def finish_job(
        self, message_id: int, token: str, text: str, **answer: Unpack[AnswerDetails]
    ) -> StoredMessage | None:
        """Store the answer and end the job ``done``, in one transaction, if ``token`` holds it."""
        with self._session(write=True) as s:
            conversation_id = _end(s, message_id, JobStatus.DONE, now=utcnow(), token=token)
            if conversation_id is None:
                return None
            draft = StoredMessage(id=0, role=Role.ASSISTANT, text=text, **answer)
            stored = add_message(s, conversation_id, draft)
            _set_answer(s, message_id, stored.id)
            return stored

    def fail_job(self, message_id: int, reason: str, *, token: str | None = None) -> bool:
        """End the job ``failed``; True if this call ended it (see :class:`core.jobs.JobStore`)."""
        with self._session(write=True) as s:
            ended = _end(s, message_id, JobStatus.FAILED, now=utcnow(), token=token, error=reason)
            return ended is not None

    def next_job(self, key: ConversationKey) -> int | None:
        """The oldest open job of the conversation, if any."""
        with self._session(write=False) as s:
            conversation = select(ConversationRow.id).where(ConversationRow.key == key.encode())
            query = (
                select(AnswerJobRow.message_id)
                .where(
                    AnswerJobRow.conversation_id == conversation.scalar_subquery(),
                    AnswerJobRow.status.in_(OPEN),
                )
                .order_by(AnswerJobRow.message_id)
                .limit(1)
            )
            return s.scalar(query)

    def stalled_jobs(self, older_than: datetime, *, limit: int = 100) -> list[int]:
        """The oldest open job of each conversation, where it shows no life; oldest first."""
        with self._session(write=False) as s:
            now = utcnow()
            if limit <= 0:
                return []
            query = (
                select(AnswerJobRow.message_id)
                .where(
                    AnswerJobRow.status.in_(OPEN),
                    ~_open_before(AnswerJobRow.conversation_id, AnswerJobRow.message_id),
                    or_(
                        and_(
                            AnswerJobRow.status == JobStatus.QUEUED.value,
                            AnswerJobRow.updated_at < older_than,
                        ),
                        and_(
                            AnswerJobRow.status == JobStatus.RUNNING.value,
                            AnswerJobRow.lease_until < now,
                        ),
                    ),
                )
                .order_by(AnswerJobRow.message_id)
                .limit(limit)
            )
            return list(s.scalars(query).all())

    def touch_job(self, message_id: int) -> None:
        """Record that an open job was queued again now."""
        with self._session(write=True) as s:
            now = utcnow()
            s.execute(
                update(AnswerJobRow)
                .where(AnswerJobRow.message_id == message_id, AnswerJobRow.status.in_(OPEN))
                .values(updated_at=now)
                .execution_options(synchronize_session=False)
            )


def lock_conversation(s: Session, conversation_id: int) -> None:
    """On PostgreSQL, hold the conversation's row until the transaction ends."""
    if s.get_bind().dialect.name == "postgresql":
        s.execute(
            select(ConversationRow.id)
            .where(ConversationRow.id == conversation_id)
            .with_for_update(key_share=True)
        )


def open_job(
    s: Session,
    message_id: int,
    conversation_id: int,
    now: datetime,
    *,
    in_group: bool,
    hold: DeliveryHold | None = None,
) -> None:
    """Open the ``queued`` job of a message just stored (its conversation locked first).

    Its delivery is pending, held by ``hold`` when given (the accepting process).
    """
    s.execute(
        insert(AnswerJobRow).values(
            message_id=message_id,
            conversation_id=conversation_id,
            status=JobStatus.QUEUED.value,
            attempts=0,
            in_group=in_group,
            created_at=now,
            updated_at=now,
            delivery_holder=hold.holder if hold is not None else None,
            delivery_lease_until=(
                now + timedelta(seconds=hold.lease_seconds) if hold is not None else None
            ),
        )
    )


def read_job(s: Session, message_id: int) -> Job | None:
    """The job as it is now in this transaction, or ``None``."""
    row = s.execute(
        select(*_COLUMNS)
        .join(ConversationRow, AnswerJobRow.conversation_id == ConversationRow.id)
        .where(AnswerJobRow.message_id == message_id)
    ).first()
    if row is None:
        return None
    return Job(
        message_id=row.message_id,
        key=ConversationKey.decode(row.key),
        status=JobStatus(row.status),
        attempts=row.attempts,
        created_at=row.created_at,
        updated_at=row.updated_at,
        lease_until=row.lease_until,
        answer_id=row.answer_id,
        error=row.error,
        in_group=row.in_group,
        delivered=row.delivered_at is not None,
        delivery_holder=row.delivery_holder,
        delivery_lease_until=row.delivery_lease_until,
        shown=tuple(row.shown.splitlines()) if row.shown else (),
    )


def _end(
    s: Session,
    message_id: int,
    status: JobStatus,
    *,
    now: datetime,
    token: str | None = None,
    error: str | None = None,
) -> int | None:
    """End the job if ``token`` holds it (without one: if it is open).

    Returns the job's conversation id when this call ended it, else ``None``.
    """
    conversation_id = _lock_job(s, message_id)
    if conversation_id is None:
        return None
    if token is None:
        held: tuple[ColumnElement[bool], ...] = (AnswerJobRow.status.in_(OPEN),)
    else:
        held = (AnswerJobRow.status == JobStatus.RUNNING.value, AnswerJobRow.token == token)
    ending = (
        update(AnswerJobRow)
        .where(AnswerJobRow.message_id == message_id, *held)
        .values(**_ending(status, now, error))
    )
    return conversation_id if _changed(s, ending) else None


def _set_answer(s: Session, message_id: int, answer_id: int) -> None:
    """Name the answer of a job that this transaction ended ``done``."""
    s.execute(
        update(AnswerJobRow)
        .where(AnswerJobRow.message_id == message_id)
        .values(answer_id=answer_id)
        .execution_options(synchronize_session=False)
    )


def _lock_job(s: Session, message_id: int) -> int | None:
    """Lock the job's conversation (see the module docstring); its id, or ``None``: no job."""
    conversation_id = s.scalar(
        select(AnswerJobRow.conversation_id).where(AnswerJobRow.message_id == message_id)
    )
    if conversation_id is not None:
        lock_conversation(s, conversation_id)
    return conversation_id


def _open_before(
    conversation_id: SQLColumnExpression[int] | int, message_id: SQLColumnExpression[int] | int
) -> Exists:
    """Whether the conversation has an open job older than ``message_id``."""
    earlier = aliased(AnswerJobRow)
    return exists().where(
        earlier.conversation_id == conversation_id,
        earlier.message_id < message_id,
        earlier.status.in_(OPEN),
    )


def _ending(status: JobStatus, now: datetime, error: str | None) -> dict[str, Any]:
    """The values that end a job with ``status``."""
    return {
        "status": status.value,
        "error": error,
        "lease_until": None,
        "token": None,
        "updated_at": now,
    }


def _changed(s: Session, statement: Update) -> bool:
    """Run a conditional UPDATE of one job; True if it matched (the change happened)."""
    result = s.execute(statement.execution_options(synchronize_session=False))
    return int(cast(CursorResult[Any], result).rowcount) > 0
