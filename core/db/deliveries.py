"""Answer deliveries in SQL: :class:`core.jobs.DeliveryStore` for :class:`core.db.SqlStore`.

Each step is one conditional UPDATE of the job's row whose row count says whether it
happened: of two processes racing to take a delivery, exactly one does (on PostgreSQL the
second waits for the first's row lock, then finds the row no longer free).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import ColumnElement, and_, or_, select, update
from sqlalchemy.orm import Session

from core.db.engine import SqlPart
from core.db.jobs import read_job
from core.db.models import AnswerJobRow, ConversationRow, IntakeRow
from core.db.rows import rowcount
from core.jobs import DeliveryHold, Job
from core.types import utcnow

__all__ = ["SqlDeliveries"]


class SqlDeliveries(SqlPart):
    """:class:`core.jobs.DeliveryStore` in SQL."""

    delivery_hold: DeliveryHold | None = None
    """How the jobs opened through this store are held (read by ``append``)."""

    def hold_deliveries(self, hold: DeliveryHold | None) -> None:
        """Open the jobs of messages stored from now on held by ``hold``."""
        self.delivery_hold = hold

    def claim_delivery(self, message_id: int, holder: str, *, lease_seconds: float) -> Job | None:
        """Hold the job's delivery if it is pending and free; the job, or ``None``."""
        with self._session(write=True) as s:
            now = utcnow()
            free = or_(
                AnswerJobRow.delivery_holder.is_(None),
                AnswerJobRow.delivery_holder == holder,
                AnswerJobRow.delivery_lease_until < now,
            )
            taken = _update(
                s,
                (AnswerJobRow.message_id == message_id, _pending(), free),
                delivery_holder=holder,
                delivery_lease_until=now + timedelta(seconds=lease_seconds),
            )
            return read_job(s, message_id) if taken else None

    def renew_deliveries(self, holder: str, *, lease_seconds: float) -> int:
        """Extend every pending hold of ``holder``."""
        with self._session(write=True) as s:
            until = utcnow() + timedelta(seconds=lease_seconds)
            return _update(s, _held_by(holder), delivery_lease_until=until)

    def release_deliveries(self, holder: str) -> int:
        """Let go of every pending hold of ``holder``."""
        with self._session(write=True) as s:
            return _update(s, _held_by(holder), delivery_holder=None, delivery_lease_until=None)

    def record_shown(self, message_id: int, holder: str, shown: Sequence[str]) -> bool:
        """Record the platform messages sent so far, while ``holder`` holds the delivery."""
        with self._session(write=True) as s:
            where = (AnswerJobRow.message_id == message_id, *_held_by(holder))
            return _update(s, where, shown="\n".join(shown) or None) > 0

    def finish_delivery(self, message_id: int, holder: str) -> bool:
        """Mark the reply delivered, unless another process holds the delivery."""
        with self._session(write=True) as s:
            mine = or_(
                AnswerJobRow.delivery_holder.is_(None), AnswerJobRow.delivery_holder == holder
            )
            where = (AnswerJobRow.message_id == message_id, _pending(), mine)
            done = _update(
                s, where, delivered_at=utcnow(), delivery_holder=None, delivery_lease_until=None
            )
            return done > 0

    def undelivered(self, platforms: Sequence[str], *, limit: int = 100) -> list[Job]:
        """Pending deliveries free to claim in conversations of ``platforms``, oldest first."""
        if limit <= 0 or not platforms:
            return []
        with self._session(write=False) as s:
            now = utcnow()
            ids = s.scalars(
                select(AnswerJobRow.message_id)
                .join(ConversationRow, AnswerJobRow.conversation_id == ConversationRow.id)
                .where(
                    _pending(),
                    ConversationRow.platform.in_(list(platforms)),
                    or_(
                        AnswerJobRow.delivery_holder.is_(None),
                        AnswerJobRow.delivery_lease_until < now,
                    ),
                    # A message whose files are still open is the intake resumer's.
                    AnswerJobRow.message_id.not_in(select(IntakeRow.message_id)),
                )
                .order_by(AnswerJobRow.message_id)
                .limit(limit)
            ).all()
            jobs = (read_job(s, message_id) for message_id in ids)
            return [job for job in jobs if job is not None]


def _pending() -> ColumnElement[bool]:
    return AnswerJobRow.delivered_at.is_(None)


def _held_by(holder: str) -> tuple[ColumnElement[bool], ...]:
    return (_pending(), AnswerJobRow.delivery_holder == holder)


def _update(s: Session, where: Sequence[ColumnElement[bool]], **values: object) -> int:
    """Run a conditional UPDATE of jobs; how many rows it changed."""
    result = s.execute(
        update(AnswerJobRow)
        .where(and_(*where))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return rowcount(result)
