"""The SQL store: :class:`core.store.Store` in SQLite or PostgreSQL.

It behaves like :class:`core.memory.MemoryStore`, which the shared test suite checks
against all backends. Every method is one short transaction. People are created on first
sight and keep the latest display name any platform event gave them; conversations are
created with their first message. The statements live next door, one concern a module:
conversations and their turns in :mod:`core.db.messages`; answer jobs, and how they stay
atomic across processes, in :mod:`core.db.jobs`; people, their profiles and link codes in
:mod:`core.db.people`; forgetting, export, retention and usage in :mod:`core.db.privacy`;
feedback for learning in :mod:`core.db.feedback`; the shared row helpers in
:mod:`core.db.rows`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Unpack

from sqlalchemy import Engine, delete, select
from sqlalchemy.dialects import postgresql, sqlite

from core.db import feedback, jobs, messages, people, privacy
from core.db.engine import Transactions, store_errors
from core.db.models import Base, EventRow, FeedbackRow, MessageRow, UserRow
from core.db.rows import bulk_delete, insert_for, user_ref
from core.errors import ConfigurationError
from core.feedback_data import (
    UNTRUSTED_PLATFORMS,
    FeedbackRecord,
    FeedbackWindow,
    VersionRates,
)
from core.jobs import AnswerDetails, Claim, Job, JobStatus
from core.store import LINK_CODE_TTL, NewTurn, Usage, draft_turn
from core.types import (
    Answer,
    ConversationKey,
    Feedback,
    Rating,
    Role,
    StoredMessage,
    UserProfile,
    UserRef,
    utcnow,
)

__all__ = ["SqlStore"]

_DIALECTS = ("postgresql", "sqlite")


class SqlStore:
    """A complete store in a database made by :func:`core.db.create_engine_for`.

    Create its tables first with :func:`core.db.upgrade`. Failures of the database raise
    :class:`core.errors.StoreError`.
    """

    def __init__(self, engine: Engine) -> None:
        if engine.dialect.name not in _DIALECTS:
            raise ConfigurationError(f"Parley cannot store in {engine.dialect.name} databases")
        self._engine = engine
        self._session = Transactions(engine)

    @property
    def engine(self) -> Engine:
        """The database this store keeps its data in (the adapter registry shares it)."""
        return self._engine

    def dispose(self) -> None:
        """Close the database connections (at shutdown)."""
        self._engine.dispose()

    def append(
        self, key: ConversationKey, role: Role, text: str, **turn: Unpack[NewTurn]
    ) -> StoredMessage:
        """Store one turn and return it with its id; with its answer job if it expects one."""
        user, expects_answer = turn.get("user"), turn.get("expects_answer", False)
        with self._session(write=True) as s:
            conversation_id = messages.conversation_id(s, key)
            if expects_answer:  # before the message's id is drawn: see core.db.jobs
                jobs.lock_conversation(s, conversation_id)
            user_id = people.user_id(s, user) if user is not None else None
            draft = draft_turn(role, text, turn)
            stored = messages.add_message(s, conversation_id, draft, user_id=user_id)
            if expects_answer:
                in_group = turn.get("in_group", False)
                jobs.open_job(s, stored.id, conversation_id, stored.created_at, in_group=in_group)
            return stored

    def history(self, key: ConversationKey, limit: int) -> list[StoredMessage]:
        """The last ``limit`` turns since the conversation was last reset, oldest first."""
        if limit <= 0:
            return []
        with self._session(write=False) as s:
            return messages.history(s, key, limit)

    def message(self, message_id: int) -> StoredMessage | None:
        """One stored turn by its id, or ``None``."""
        with self._session(write=False) as s:
            return messages.message(s, message_id)

    def history_before(self, message_id: int, limit: int) -> list[StoredMessage]:
        """What came before a message in its conversation, in answer order (see the contract)."""
        if limit <= 0:
            return []
        with self._session(write=False) as s:
            return messages.history_before(s, message_id, limit)

    def reset(self, key: ConversationKey) -> None:
        """Start a fresh context: earlier turns stay stored but leave the history."""
        with self._session(write=True) as s:
            messages.reset(s, key)

    def mark_delivered(self, message_id: int, platform_message_id: str) -> None:
        """Record the platform message that shows a stored answer; raise KeyError if unknown."""
        with self._session(write=True) as s:
            messages.mark_delivered(s, message_id, platform_message_id)

    def find_by_platform_id(
        self, key: ConversationKey, platform_message_id: str
    ) -> StoredMessage | None:
        """The newest turn of the conversation shown by that platform message, or ``None``."""
        with self._session(write=False) as s:
            return messages.find_by_platform_id(s, key, platform_message_id)

    def answer(self, answer_id: int) -> Answer | None:
        """The stored answer with this id, or ``None``."""
        with self._session(write=False) as s:
            return messages.answer(s, answer_id)

    def save_feedback(self, feedback: Feedback) -> None:
        """Store feedback; a person's later feedback on the same answer replaces theirs."""
        is_answer = (MessageRow.id == feedback.answer_id, MessageRow.role == Role.ASSISTANT.value)
        with self._session(write=True) as s:
            if s.scalar(select(MessageRow.id).where(*is_answer)) is None:
                raise KeyError(f"no answer with id {feedback.answer_id}")
            insert = self._insert(FeedbackRow).values(
                answer_id=feedback.answer_id,
                user_id=people.user_id(s, feedback.user),
                rating=feedback.rating.value if feedback.rating is not None else None,
                correction=feedback.correction,
                given_at=feedback.given_at,
                updated_at=utcnow(),
            )
            replaced = ("rating", "correction", "given_at", "updated_at")
            s.execute(
                insert.on_conflict_do_update(
                    index_elements=[FeedbackRow.answer_id, FeedbackRow.user_id],
                    set_={name: insert.excluded[name] for name in replaced},
                )
            )

    def feedback_records(self, **window: Unpack[FeedbackWindow]) -> list[FeedbackRecord]:
        """See :meth:`core.feedback_data.FeedbackSource.feedback_records`."""
        since, until = window.get("since"), window.get("until")
        untrusted = window.get("untrusted_platforms", UNTRUSTED_PLATFORMS)
        with self._session(write=False) as s:
            return feedback.feedback_records(s, since, until, untrusted)

    def person_key(self, user: UserRef) -> str | None:
        """See :meth:`core.feedback_data.FeedbackSource.person_key`."""
        with self._session(write=False) as s:
            return feedback.person_key(s, user)

    def feedback_rates(self) -> list[VersionRates]:
        """See :meth:`core.feedback_data.FeedbackSource.feedback_rates`."""
        with self._session(write=False) as s:
            return feedback.feedback_rates(s)

    def feedback_for(self, answer_id: int) -> list[Feedback]:
        """All current feedback on one answer, in the order people first gave it."""
        query = (
            select(FeedbackRow, UserRow)
            .join(UserRow, FeedbackRow.user_id == UserRow.id)
            .where(FeedbackRow.answer_id == answer_id)
            .order_by(FeedbackRow.id)
        )
        with self._session(write=False) as s:
            return [
                Feedback(
                    answer_id=row.answer_id,
                    user=user_ref(user),
                    rating=Rating(row.rating) if row.rating is not None else None,
                    correction=row.correction,
                    given_at=row.given_at,
                )
                for row, user in s.execute(query).all()
            ]

    def profile(self, user: UserRef) -> UserProfile:
        """The person's profile, shared by their linked identities; empty for someone new."""
        with self._session(write=False) as s:
            return people.profile(s, user)

    def save_profile(self, user: UserRef, profile: UserProfile) -> None:
        """Replace the person's profile, for all their linked identities."""
        with self._session(write=True) as s:
            people.save_profile(s, user, profile)

    def create_link_code(self, user: UserRef, ttl: timedelta = LINK_CODE_TTL) -> str:
        """A new one-time code for the person; it replaces their earlier unused code.

        Expired codes of anyone are cleared on the way.
        """
        now = utcnow()
        with self._session(write=True) as s:
            return people.create_link_code(s, user, ttl, now)

    def redeem_link_code(self, code: str, user: UserRef) -> UserRef | None:
        """Link ``user`` to the person who made the code and return that code's identity.

        Claiming the code is one conditional UPDATE, so of concurrent redeemers only one
        links. See :meth:`core.store.IdentityStore.redeem_link_code`.
        """
        now = utcnow()
        with self._session(write=True) as s:
            return people.redeem_link_code(s, code, user, now)

    def linked_identities(self, user: UserRef) -> list[UserRef]:
        """All identities of the person: ``user`` first, then the others as first seen."""
        with self._session(write=False) as s:
            return people.linked_identities(s, user)

    def claim_event(self, platform: str, event_id: str) -> bool:
        """True for the first claim of an event, False ever after; atomic across processes.

        The unique key decides: of concurrent inserts exactly one adds the row, and only
        that one gets it back from RETURNING (SQLAlchemy reports no rowcount for an INSERT
        on psycopg, so RETURNING is the reliable signal on both databases).
        """
        insert = (
            self._insert(EventRow)
            .values(platform=platform, event_id=event_id, seen_at=utcnow())
            .on_conflict_do_nothing(index_elements=[EventRow.platform, EventRow.event_id])
            .returning(EventRow.event_id)
        )
        with self._session(write=True) as s:
            return s.execute(insert).first() is not None

    def release_event(self, platform: str, event_id: str) -> None:
        """Undo a claim whose event could not be taken, so that its redelivery is new."""
        same = (EventRow.platform == platform, EventRow.event_id == event_id)
        with self._session(write=True) as s:
            bulk_delete(s, delete(EventRow).where(*same))

    def purge_events(self, older_than: datetime) -> int:
        """Forget events first claimed before ``older_than``; return how many."""
        with self._session(write=True) as s:
            return bulk_delete(s, delete(EventRow).where(EventRow.seen_at < older_than))

    def job(self, message_id: int) -> Job | None:
        """The job of one message, or ``None``."""
        with self._session(write=False) as s:
            return jobs.read_job(s, message_id)

    def claim_job(self, message_id: int, *, lease_seconds: float, max_attempts: int) -> Claim:
        """Take the job to answer it, if it is free, next in its conversation and not spent.

        See :meth:`core.jobs.JobStore.claim_job`; atomic across processes (:mod:`core.db.jobs`).
        """
        with self._session(write=True) as s:
            return jobs.claim(
                s,
                message_id,
                lease_seconds=lease_seconds,
                max_attempts=max_attempts,
                now=utcnow(),
            )

    def finish_job(
        self, message_id: int, token: str, text: str, **answer: Unpack[AnswerDetails]
    ) -> StoredMessage | None:
        """Store the answer and end the job ``done``, in one transaction, if ``token`` holds it."""
        with self._session(write=True) as s:
            conversation_id = jobs.end(s, message_id, JobStatus.DONE, now=utcnow(), token=token)
            if conversation_id is None:
                return None
            draft = StoredMessage(id=0, role=Role.ASSISTANT, text=text, **answer)
            stored = messages.add_message(s, conversation_id, draft)
            jobs.set_answer(s, message_id, stored.id)
            return stored

    def fail_job(self, message_id: int, reason: str, *, token: str | None = None) -> bool:
        """End the job ``failed``; True if this call ended it (see :class:`core.jobs.JobStore`)."""
        with self._session(write=True) as s:
            ended = jobs.end(
                s, message_id, JobStatus.FAILED, now=utcnow(), token=token, error=reason
            )
            return ended is not None

    def next_job(self, key: ConversationKey) -> int | None:
        """The oldest job of the conversation that has not ended, if any."""
        with self._session(write=False) as s:
            return jobs.next_job(s, key)

    def stalled_jobs(self, older_than: datetime, *, limit: int = 100) -> list[int]:
        """The oldest open job of each conversation, if it shows no life; oldest first."""
        with self._session(write=False) as s:
            return jobs.stalled(s, older_than, limit=limit, now=utcnow())

    def touch_job(self, message_id: int) -> None:
        """Record that the job was queued again now."""
        with self._session(write=True) as s:
            jobs.touch(s, message_id, utcnow())

    def forget(self, user: UserRef) -> int:
        """Remove everything held about a person, on every linked identity; return the count.

        On SQLite the write-ahead log is then emptied too: with ``secure_delete`` on, no
        copy of what was deleted stays in the database's files (see :meth:`_wipe`).
        """
        with self._session(write=True) as s:
            count = privacy.forget(s, user)
        self._wipe()
        return count

    def personal_data(self, user: UserRef) -> dict[str, Any]:
        """Everything held about the person, JSON-ready (see the contract)."""
        with self._session(write=False) as s:
            return privacy.personal_data(s, user)

    def replace_text(self, message_id: int, text: str) -> bool:
        """Replace a stored turn's text; False if it is gone."""
        with self._session(write=True) as s:
            return privacy.replace_text(s, message_id, text)

    def purge_before(self, older_than: datetime) -> int:
        """Delete turns older than ``older_than``, their jobs and feedback, empty conversations."""
        with self._session(write=True) as s:
            count = privacy.purge_before(s, older_than)
        self._wipe()
        return count

    def usage(self, since: datetime) -> Usage:
        """Messages, answers, distinct people and blocked answers since ``since``."""
        with self._session(write=False) as s:
            return privacy.usage(s, since)

    def _wipe(self) -> None:
        """SQLite: move the write-ahead log into the database and truncate it (best effort).

        Older copies of deleted rows live on in the log's frames until a checkpoint; the
        checkpoint waits for no reader, and one that cannot finish is done by a later one.
        """
        if self._engine.dialect.name != "sqlite":
            return
        with store_errors(self._engine), self._engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")

    def _insert(self, table: type[Base]) -> postgresql.Insert | sqlite.Insert:
        """An INSERT that can say what to do ON CONFLICT, in this database's dialect."""
        return insert_for(self._engine.dialect.name, table)
