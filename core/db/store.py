"""The persistent store: :class:`core.store.Store` in SQLite or PostgreSQL.

It behaves like :class:`core.memory_store.MemoryStore`, which the shared test suite checks against
all backends. Every method is one short transaction. People are created on first sight
and keep the latest display name any platform event gave them; conversations are created
with their first message. A person is the id of their first identity (``users.person_id``
on the others, see :class:`core.db.models.UserRow`), and their profile is kept under it.
The SQL of answer jobs, and how it stays atomic across processes, is in :mod:`core.db.jobs`.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    CursorResult,
    Delete,
    Engine,
    and_,
    delete,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from core.db import feedback, jobs
from core.db.engine import WRITE, store_errors
from core.db.models import (
    AnswerJobRow,
    Base,
    ConversationRow,
    EventRow,
    FeedbackRow,
    LinkCodeRow,
    MessageRow,
    ProfileRow,
    UserRow,
)
from core.errors import ConfigurationError
from core.feedback_data import UNTRUSTED_PLATFORMS, FeedbackRecord, VersionRates
from core.jobs import Claim, Job, JobStatus
from core.sentiment import Mood, Sentiment
from core.store import (
    LINK_CODE_TTL,
    Usage,
    merge_profiles,
    new_link_code,
    normalize_link_code,
    personal_data_json,
)
from core.types import (
    Answer,
    ContextReport,
    ConversationKey,
    Fact,
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
        self._writer = engine.execution_options(**WRITE)

    @property
    def engine(self) -> Engine:
        """The database this store keeps its data in (the adapter registry shares it)."""
        return self._engine

    def dispose(self) -> None:
        """Close the database connections (at shutdown)."""
        self._engine.dispose()

    def append(
        self,
        key: ConversationKey,
        role: Role,
        text: str,
        *,
        user: UserRef | None = None,
        platform_message_id: str | None = None,
        model_version: str | None = None,
        context: ContextReport | None = None,
        sentiment: Sentiment | None = None,
        expects_answer: bool = False,
        in_group: bool = False,
    ) -> StoredMessage:
        """Store one turn and return it with its id; with its answer job if it expects one."""
        with self._session(write=True) as s:
            conversation_id = self._conversation_id(s, key)
            if expects_answer:  # before the message's id is drawn: see core.db.jobs
                jobs.lock_conversation(s, conversation_id)
            user_id = self._user_id(s, user) if user is not None else None
            stored = self._add_message(
                s,
                conversation_id,
                role,
                text,
                user=user,
                user_id=user_id,
                platform_message_id=platform_message_id,
                model_version=model_version,
                context=context,
                sentiment=sentiment,
            )
            if expects_answer:
                jobs.open_job(s, stored.id, conversation_id, stored.created_at, in_group=in_group)
            return stored

    def history(self, key: ConversationKey, limit: int) -> list[StoredMessage]:
        """The last ``limit`` turns since the conversation was last reset, oldest first."""
        if limit <= 0:
            return []
        query = (
            select(MessageRow, UserRow)
            .join(ConversationRow, MessageRow.conversation_id == ConversationRow.id)
            .outerjoin(UserRow, MessageRow.user_id == UserRow.id)
            .where(ConversationRow.key == key.encode())
            .where(MessageRow.id > ConversationRow.context_since)
            .order_by(MessageRow.id.desc())
            .limit(limit)
        )
        with self._session(write=False) as s:
            rows = s.execute(query).all()
            return [_stored(message, user) for message, user in reversed(rows)]

    def message(self, message_id: int) -> StoredMessage | None:
        """One stored turn by its id, or ``None``."""
        query = (
            select(MessageRow, UserRow)
            .outerjoin(UserRow, MessageRow.user_id == UserRow.id)
            .where(MessageRow.id == message_id)
        )
        with self._session(write=False) as s:
            row = s.execute(query).first()
            return _stored(*row) if row is not None else None

    def history_before(self, message_id: int, limit: int) -> list[StoredMessage]:
        """What came before a message in its conversation, in answer order (see the contract)."""
        if limit <= 0:
            return []
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
        with self._session(write=False) as s:
            rows = s.execute(query).all()
            return [_stored(message, user) for message, user in reversed(rows)]

    def reset(self, key: ConversationKey) -> None:
        """Start a fresh context: earlier turns stay stored but leave the history."""
        last = (
            select(func.max(MessageRow.id))
            .where(MessageRow.conversation_id == ConversationRow.id)
            .scalar_subquery()
        )
        with self._session(write=True) as s:
            s.execute(
                update(ConversationRow)
                .where(ConversationRow.key == key.encode())
                .values(context_since=func.coalesce(last, ConversationRow.context_since))
            )

    def mark_delivered(self, message_id: int, platform_message_id: str) -> None:
        """Record the platform message that shows a stored answer; raise KeyError if unknown."""
        change = (
            update(MessageRow)
            .where(MessageRow.id == message_id)
            .values(platform_message_id=platform_message_id)
        )
        with self._session(write=True) as s:
            if _rowcount(s.execute(change)) == 0:
                raise KeyError(f"no message with id {message_id}")

    def find_by_platform_id(
        self, key: ConversationKey, platform_message_id: str
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
        with self._session(write=False) as s:
            row = s.execute(query).first()
            return _stored(*row) if row is not None else None

    def answer(self, answer_id: int) -> Answer | None:
        """The stored answer with this id, or ``None``."""
        query = (
            select(MessageRow, UserRow, ConversationRow)
            .join(ConversationRow, MessageRow.conversation_id == ConversationRow.id)
            .outerjoin(UserRow, MessageRow.user_id == UserRow.id)
            .where(MessageRow.id == answer_id, MessageRow.role == Role.ASSISTANT.value)
        )
        with self._session(write=False) as s:
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
            return Answer(message=_stored(message, user), conversation=key)

    def save_feedback(self, feedback: Feedback) -> None:
        """Store feedback; a person's later feedback on the same answer replaces theirs."""
        is_answer = (MessageRow.id == feedback.answer_id, MessageRow.role == Role.ASSISTANT.value)
        with self._session(write=True) as s:
            if s.scalar(select(MessageRow.id).where(*is_answer)) is None:
                raise KeyError(f"no answer with id {feedback.answer_id}")
            insert = self._insert(FeedbackRow).values(
                answer_id=feedback.answer_id,
                user_id=self._user_id(s, feedback.user),
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

    def feedback_records(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        *,
        untrusted_platforms: Collection[str] = UNTRUSTED_PLATFORMS,
    ) -> list[FeedbackRecord]:
        """See :meth:`core.feedback_data.FeedbackSource.feedback_records`."""
        with self._session(write=False) as s:
            return feedback.feedback_records(s, since, until, untrusted_platforms)

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
                    user=_user_ref(user),
                    rating=Rating(row.rating) if row.rating is not None else None,
                    correction=row.correction,
                    given_at=row.given_at,
                )
                for row, user in s.execute(query).all()
            ]

    def profile(self, user: UserRef) -> UserProfile:
        """The person's profile, shared by their linked identities; empty for someone new."""
        query = (
            select(ProfileRow)
            .join(UserRow, ProfileRow.user_id == func.coalesce(UserRow.person_id, UserRow.id))
            .where(*_same(user))
        )
        with self._session(write=False) as s:
            row = s.scalar(query)
            return _profile(row) if row is not None else UserProfile()

    def save_profile(self, user: UserRef, profile: UserProfile) -> None:
        """Replace the person's profile, for all their linked identities."""
        with self._session(write=True) as s:
            self._put_profile(s, self._identity(s, user)[1], profile)

    def create_link_code(self, user: UserRef, ttl: timedelta = LINK_CODE_TTL) -> str:
        """A new one-time code for the person; it replaces their earlier unused code.

        Expired codes of anyone are cleared on the way.
        """
        now = utcnow()
        with self._session(write=True) as s:
            me, person = self._identity(s, user)
            s.execute(
                delete(LinkCodeRow).where(
                    or_(
                        LinkCodeRow.expires_at <= now,
                        and_(
                            LinkCodeRow.used_at.is_(None),
                            LinkCodeRow.user_id.in_(select(UserRow.id).where(_of(person))),
                        ),
                    )
                )
            )
            while True:  # a clash is one in a trillion, but a clash must not link strangers
                code = new_link_code()
                insert = (
                    self._insert(LinkCodeRow)
                    .values(code=code, user_id=me, created_at=now, expires_at=now + ttl)
                    .on_conflict_do_nothing(index_elements=[LinkCodeRow.code])
                    .returning(LinkCodeRow.code)
                )
                if s.execute(insert).first() is not None:
                    return code

    def redeem_link_code(self, code: str, user: UserRef) -> UserRef | None:
        """Link ``user`` to the person who made the code and return that code's identity.

        Claiming the code is one conditional UPDATE, so of concurrent redeemers only one
        links. See :meth:`core.store.IdentityStore.redeem_link_code`.
        """
        now = utcnow()
        usable = (
            LinkCodeRow.code == normalize_link_code(code),
            LinkCodeRow.used_at.is_(None),
            LinkCodeRow.expires_at > now,
        )
        query = select(UserRow).join(LinkCodeRow, LinkCodeRow.user_id == UserRow.id).where(*usable)
        with self._session(write=True) as s:
            found = s.scalar(query)
            if found is None or (found.platform, found.platform_user_id) == (
                user.platform,
                user.id,
            ):
                return None
            owner, person = _user_ref(found), found.person_id or found.id
            if _rowcount(s.execute(update(LinkCodeRow).where(*usable).values(used_at=now))) == 0:
                return None
            mine = self._identity(s, user)[1]
            if mine != person:
                self._join_profiles(s, person, mine)
                s.execute(
                    update(UserRow)
                    .where(_of(mine))
                    .values(person_id=person)
                    .execution_options(synchronize_session=False)
                )
            return owner

    def linked_identities(self, user: UserRef) -> list[UserRef]:
        """All identities of the person: ``user`` first, then the others as first seen."""
        with self._session(write=False) as s:
            me = s.scalar(select(UserRow).where(*_same(user)))
            if me is None:
                return [user]
            others = s.scalars(
                select(UserRow)
                .where(_of(me.person_id or me.id), UserRow.id != me.id)
                .order_by(UserRow.id)
            ).all()
            return [_user_ref(me), *(_user_ref(other) for other in others)]

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
            _delete(s, delete(EventRow).where(*same))

    def purge_events(self, older_than: datetime) -> int:
        """Forget events first claimed before ``older_than``; return how many."""
        with self._session(write=True) as s:
            return _delete(s, delete(EventRow).where(EventRow.seen_at < older_than))

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
        self,
        message_id: int,
        token: str,
        text: str,
        *,
        model_version: str,
        context: ContextReport | None,
        blocked_reason: str | None = None,
    ) -> StoredMessage | None:
        """Store the answer and end the job ``done``, in one transaction, if ``token`` holds it."""
        with self._session(write=True) as s:
            conversation_id = jobs.end(s, message_id, JobStatus.DONE, now=utcnow(), token=token)
            if conversation_id is None:
                return None
            stored = self._add_message(
                s,
                conversation_id,
                Role.ASSISTANT,
                text,
                model_version=model_version,
                context=context,
                blocked_reason=blocked_reason,
            )
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
        count = self._forget(user)
        self._wipe()
        return count

    def _forget(self, user: UserRef) -> int:
        """Remove everything held about a person, on every linked identity; return the count.

        Every row is deleted explicitly rather than left to ``ON DELETE CASCADE``, so the
        count is exact and nothing depends on SQLite's foreign-key enforcement. See
        :meth:`core.store.PrivacyStore.forget` for what goes and what is counted.
        """
        with self._session(write=True) as s:
            found = s.execute(select(UserRow.id, UserRow.person_id).where(*_same(user))).first()
            if found is None:
                return 0
            person = found.person_id or found.id
            identities = s.scalars(select(UserRow.id).where(_of(person))).all()
            theirs = MessageRow.user_id.in_(identities)
            others_wrote = select(MessageRow.conversation_id).where(
                MessageRow.user_id.is_not(None), MessageRow.user_id.not_in(identities)
            )
            private = s.scalars(
                select(MessageRow.conversation_id)
                .where(theirs, MessageRow.conversation_id.not_in(others_wrote))
                .distinct()
            ).all()
            if private and self._engine.dialect.name == "postgresql":
                # Lock them before deleting their jobs: claims lock a conversation, then
                # its job, and taking the two the other way round could deadlock.
                s.execute(
                    select(ConversationRow.id)
                    .where(ConversationRow.id.in_(private))
                    .order_by(ConversationRow.id)
                    .with_for_update()
                )
            # The answers to their messages go too: they quote them, in text and context.
            answers = s.scalars(
                select(AnswerJobRow.answer_id).where(
                    AnswerJobRow.message_id.in_(select(MessageRow.id).where(theirs)),
                    AnswerJobRow.answer_id.is_not(None),
                )
            ).all()
            doomed = or_(
                theirs, MessageRow.conversation_id.in_(private), MessageRow.id.in_(answers)
            )
            removed = set(s.scalars(select(MessageRow.id).where(doomed)).all())
            shared = set(
                s.scalars(select(MessageRow.conversation_id).where(theirs).distinct()).all()
            ) - set(private)
            ids = select(MessageRow.id).where(doomed)
            feedback = or_(FeedbackRow.user_id.in_(identities), FeedbackRow.answer_id.in_(ids))
            _delete(s, delete(AnswerJobRow).where(AnswerJobRow.message_id.in_(ids)))
            count = _delete(s, delete(FeedbackRow).where(feedback))
            count += _delete(s, delete(MessageRow).where(doomed))
            self._drop_contexts_with(s, shared, removed)
            count += _delete(s, delete(ConversationRow).where(ConversationRow.id.in_(private)))
            count += _delete(s, delete(ProfileRow).where(ProfileRow.user_id == person))
            _delete(s, delete(LinkCodeRow).where(LinkCodeRow.user_id.in_(identities)))
            return count + _delete(s, delete(UserRow).where(UserRow.id.in_(identities)))

    def _drop_contexts_with(self, s: Session, conversations: set[int], removed: set[int]) -> None:
        """Forget the prompts of other answers in shared chats that held removed turns."""
        if not conversations or not removed:
            return
        rows = s.execute(
            select(MessageRow.id, MessageRow.context).where(
                MessageRow.conversation_id.in_(conversations), MessageRow.context.is_not(None)
            )
        ).all()
        stale = [
            row.id
            for row in rows
            if any(seg.get("message_id") in removed for seg in row.context.get("segments", []))
        ]
        if stale:
            s.execute(
                update(MessageRow)
                .where(MessageRow.id.in_(stale))
                .values(context=None)
                .execution_options(synchronize_session=False)
            )

    def personal_data(self, user: UserRef) -> dict[str, Any]:
        """Everything held about the person, JSON-ready (see the contract)."""
        with self._session(write=False) as s:
            found = s.execute(select(UserRow.id, UserRow.person_id).where(*_same(user))).first()
            if found is None:
                return personal_data_json([], None, [], [])
            person = found.person_id or found.id
            people = s.scalars(select(UserRow).where(_of(person)).order_by(UserRow.id)).all()
            identities = [row.id for row in people]
            mine = select(MessageRow.id).where(MessageRow.user_id.in_(identities))
            answers = select(AnswerJobRow.answer_id).where(AnswerJobRow.message_id.in_(mine))
            rows = s.execute(
                select(MessageRow, UserRow, ConversationRow)
                .join(ConversationRow, MessageRow.conversation_id == ConversationRow.id)
                .outerjoin(UserRow, MessageRow.user_id == UserRow.id)
                .where(or_(MessageRow.id.in_(mine), MessageRow.id.in_(answers)))
                .order_by(MessageRow.id)
            ).all()
            turns = [(_key(c), _stored(m, u)) for m, u, c in rows]
            given = s.scalars(select(FeedbackRow).where(FeedbackRow.user_id.in_(identities)))
            feedback = [
                Feedback(
                    answer_id=row.answer_id,
                    user=user,
                    rating=Rating(row.rating) if row.rating is not None else None,
                    correction=row.correction,
                    given_at=row.given_at,
                )
                for row in given
            ]
            profile = s.get(ProfileRow, person)
            return personal_data_json(
                [_user_ref(row) for row in people],
                _profile(profile) if profile is not None else None,
                turns,
                feedback,
            )

    def replace_text(self, message_id: int, text: str) -> bool:
        """Replace a stored turn's text; False if it is gone."""
        change = update(MessageRow).where(MessageRow.id == message_id).values(text=text)
        with self._session(write=True) as s:
            return _rowcount(s.execute(change)) > 0

    def purge_before(self, older_than: datetime) -> int:
        """Delete turns older than ``older_than``, their jobs and feedback, empty conversations."""
        old = select(MessageRow.id).where(MessageRow.created_at < older_than)
        with self._session(write=True) as s:
            _delete(s, delete(AnswerJobRow).where(AnswerJobRow.message_id.in_(old)))
            _delete(s, delete(FeedbackRow).where(FeedbackRow.answer_id.in_(old)))
            count = _delete(s, delete(MessageRow).where(MessageRow.created_at < older_than))
            empty = (
                ~select(MessageRow.id)
                .where(MessageRow.conversation_id == ConversationRow.id)
                .exists()
            )
            _delete(s, delete(ConversationRow).where(empty))
        self._wipe()
        return count

    def usage(self, since: datetime) -> Usage:
        """Messages, answers, distinct people and blocked answers since ``since``."""
        recent = MessageRow.created_at >= since
        asked = (recent, MessageRow.role == Role.USER.value)
        answered = (recent, MessageRow.role == Role.ASSISTANT.value)
        with self._session(write=False) as s:
            return Usage(
                messages=s.scalar(select(func.count()).where(*asked)) or 0,
                answers=s.scalar(select(func.count()).where(*answered)) or 0,
                people=s.scalar(select(func.count(func.distinct(MessageRow.user_id))).where(*asked))
                or 0,
                blocked_answers=s.scalar(
                    select(func.count()).where(*answered, MessageRow.blocked_reason.is_not(None))
                )
                or 0,
            )

    def _wipe(self) -> None:
        """SQLite: move the write-ahead log into the database and truncate it (best effort).

        Older copies of deleted rows live on in the log's frames until a checkpoint; the
        checkpoint waits for no reader, and one that cannot finish is done by a later one.
        """
        if self._engine.dialect.name != "sqlite":
            return
        with store_errors(self._engine), self._engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")

    @contextmanager
    def _session(self, *, write: bool) -> Iterator[Session]:
        """One transaction; a write takes SQLite's write lock when it begins."""
        with (
            store_errors(self._engine),
            Session(self._writer if write else self._engine) as session,
            session.begin(),
        ):
            yield session

    def _insert(self, table: type[Base]) -> postgresql.Insert | sqlite.Insert:
        """An INSERT that can say what to do ON CONFLICT, in this database's dialect."""
        if self._engine.dialect.name == "postgresql":
            return postgresql.insert(table)
        return sqlite.insert(table)

    def _put_profile(self, s: Session, person: int, profile: UserProfile) -> None:
        """Insert or replace the person's profile."""
        insert = self._insert(ProfileRow).values(
            user_id=person,
            display_name=profile.display_name,
            language=profile.language,
            preferences=dict(profile.preferences),
            facts=[fact.to_json() for fact in profile.facts],
            learn_facts=profile.learn_facts,
            allows_training=profile.allows_training,
            updated_at=utcnow(),
        )
        replaced = (
            "display_name",
            "language",
            "preferences",
            "facts",
            "learn_facts",
            "allows_training",
            "updated_at",
        )
        s.execute(
            insert.on_conflict_do_update(
                index_elements=[ProfileRow.user_id],
                set_={name: insert.excluded[name] for name in replaced},
            )
        )

    def _join_profiles(self, s: Session, person: int, joining: int) -> None:
        """Merge the joining person's profile into the person's and drop it."""
        rows = s.scalars(select(ProfileRow).where(ProfileRow.user_id.in_((person, joining))))
        profiles = {row.user_id: _profile(row) for row in rows}
        if joining not in profiles:
            return
        kept = profiles.get(person, UserProfile())
        _delete(s, delete(ProfileRow).where(ProfileRow.user_id == joining))
        self._put_profile(s, person, merge_profiles(kept, profiles[joining]))

    def _identity(self, s: Session, user: UserRef) -> tuple[int, int]:
        """The identity's row id and its person's, created on first sight."""
        user_id = self._user_id(s, user)
        person = s.scalar(select(UserRow.person_id).where(UserRow.id == user_id))
        return user_id, person or user_id

    def _user_id(self, s: Session, user: UserRef) -> int:
        """The identity's row id: created on first sight, renamed when their name changed."""
        same = _same(user)
        row = s.execute(select(UserRow.id, UserRow.display_name).where(*same)).first()
        if row is None:
            s.execute(
                self._insert(UserRow)
                .values(
                    platform=user.platform,
                    platform_user_id=user.id,
                    display_name=user.display_name,
                    created_at=utcnow(),
                )
                .on_conflict_do_nothing(index_elements=[UserRow.platform, UserRow.platform_user_id])
            )
            return s.execute(select(UserRow.id).where(*same)).scalar_one()
        if user.display_name is not None and user.display_name != row.display_name:
            s.execute(
                update(UserRow).where(UserRow.id == row.id).values(display_name=user.display_name)
            )
        return int(row.id)

    def _add_message(
        self,
        s: Session,
        conversation_id: int,
        role: Role,
        text: str,
        *,
        user: UserRef | None = None,
        user_id: int | None = None,
        platform_message_id: str | None = None,
        model_version: str | None = None,
        context: ContextReport | None = None,
        sentiment: Sentiment | None = None,
        blocked_reason: str | None = None,
    ) -> StoredMessage:
        """Insert one turn (``user_id`` is ``user``'s row) and return it as stored."""
        row = MessageRow(
            conversation_id=conversation_id,
            role=role.value,
            user_id=user_id,
            text=text,
            platform_message_id=platform_message_id,
            model_version=model_version,
            context=context.to_json() if context is not None else None,
            sentiment_label=str(sentiment.label) if sentiment is not None else None,
            sentiment_score=sentiment.score if sentiment is not None else None,
            sentiment_confidence=sentiment.confidence if sentiment is not None else None,
            blocked_reason=blocked_reason,
            created_at=utcnow(),
        )
        s.add(row)
        s.flush()
        return StoredMessage(
            id=row.id,
            role=role,
            text=text,
            user=user,
            created_at=row.created_at,
            platform_message_id=platform_message_id,
            model_version=model_version,
            context=context,
            sentiment=sentiment,
            blocked_reason=blocked_reason,
        )

    def _conversation_id(self, s: Session, key: ConversationKey) -> int:
        """The conversation's row id, created with its first message."""
        same = ConversationRow.key == key.encode()
        found = s.scalar(select(ConversationRow.id).where(same))
        if found is not None:
            return found
        s.execute(
            self._insert(ConversationRow)
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


def _rowcount(result: object) -> int:
    """How many rows a data-changing statement touched."""
    return int(cast(CursorResult[Any], result).rowcount)


def _delete(s: Session, statement: Delete) -> int:
    """Run a bulk DELETE without syncing the session (it holds no objects); return the count."""
    return _rowcount(s.execute(statement.execution_options(synchronize_session=False)))


def _same(user: UserRef) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
    """The condition that picks the identity's row."""
    return UserRow.platform == user.platform, UserRow.platform_user_id == user.id


def _of(person: int) -> ColumnElement[bool]:
    """The condition that picks every identity of the person."""
    return or_(UserRow.id == person, UserRow.person_id == person)


def _key(row: ConversationRow) -> ConversationKey:
    """A stored conversation's key."""
    return ConversationKey(
        platform=row.platform, workspace=row.workspace, chat=row.chat, thread=row.thread
    )


def _profile(row: ProfileRow) -> UserProfile:
    """A stored profile as the rest of Parley sees it."""
    return UserProfile(
        display_name=row.display_name,
        language=row.language,
        preferences=dict(row.preferences),
        facts=tuple(Fact.from_json(fact) for fact in row.facts),
        learn_facts=row.learn_facts,
        allows_training=row.allows_training,
    )


def _user_ref(row: UserRow) -> UserRef:
    """The platform's view of a stored person."""
    return UserRef(platform=row.platform, id=row.platform_user_id, display_name=row.display_name)


def _stored(message: MessageRow, user: UserRow | None) -> StoredMessage:
    """A stored turn as the rest of Parley sees it."""
    return StoredMessage(
        id=message.id,
        role=Role(message.role),
        text=message.text,
        user=_user_ref(user) if user is not None else None,
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
