"""Privacy in SQL: ``/forget`` and ``/export``, retention's purge and the usage figures.

:class:`core.store.PrivacyStore` and :class:`core.store.UsageStore` for
:class:`core.db.SqlStore`. On SQLite, forgetting and purging then empty the write-ahead
log, so that no copy of a deleted row stays in the database's files.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session

from core.db.engine import SqlPart, store_errors
from core.db.models import (
    AnswerJobRow,
    ConversationRow,
    FeedbackRow,
    LinkCodeRow,
    MessageRow,
    ProfileRow,
    UserRow,
)
from core.db.rows import (
    bulk_delete,
    conversation_key,
    dialect,
    of_person,
    profile_of,
    same_identity,
    stored_message,
    user_ref,
)
from core.store import Usage, personal_data_json
from core.types import Feedback, Rating, Role, UserRef

__all__ = ["SqlPrivacy"]


class SqlPrivacy(SqlPart):
    """:class:`core.store.PrivacyStore` and :class:`core.store.UsageStore` in SQL."""

    def forget(self, user: UserRef) -> int:
        """Remove everything held about a person, on every linked identity; return the count.

        On SQLite the write-ahead log is then emptied too: with ``secure_delete`` on, no copy
        of what was deleted stays in the database's files (see :meth:`_wipe`). Every row is
        deleted explicitly rather than left to ``ON DELETE CASCADE``, so the
        count is exact and nothing depends on SQLite's foreign-key enforcement. See
        :meth:`core.store.PrivacyStore.forget` for what goes and what is counted.
        """
        with self._session(write=True) as s:
            found = s.execute(
                select(UserRow.id, UserRow.person_id).where(*same_identity(user))
            ).first()
            if found is None:
                return 0
            person = found.person_id or found.id
            identities = s.scalars(select(UserRow.id).where(of_person(person))).all()
            theirs = MessageRow.user_id.in_(identities)
            others_wrote = select(MessageRow.conversation_id).where(
                MessageRow.user_id.is_not(None), MessageRow.user_id.not_in(identities)
            )
            private = s.scalars(
                select(MessageRow.conversation_id)
                .where(theirs, MessageRow.conversation_id.not_in(others_wrote))
                .distinct()
            ).all()
            if private and dialect(s) == "postgresql":
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
            bulk_delete(s, delete(AnswerJobRow).where(AnswerJobRow.message_id.in_(ids)))
            count = bulk_delete(s, delete(FeedbackRow).where(feedback))
            count += bulk_delete(s, delete(MessageRow).where(doomed))
            _drop_contexts_with(s, shared, removed)
            count += bulk_delete(s, delete(ConversationRow).where(ConversationRow.id.in_(private)))
            count += bulk_delete(s, delete(ProfileRow).where(ProfileRow.user_id == person))
            bulk_delete(s, delete(LinkCodeRow).where(LinkCodeRow.user_id.in_(identities)))
            count += bulk_delete(s, delete(UserRow).where(UserRow.id.in_(identities)))
        self._wipe()
        return count

    def personal_data(self, user: UserRef) -> dict[str, Any]:
        """Everything held about the person, JSON-ready (see the contract)."""
        with self._session(write=False) as s:
            found = s.execute(
                select(UserRow.id, UserRow.person_id).where(*same_identity(user))
            ).first()
            if found is None:
                return personal_data_json([], None, [], [])
            person = found.person_id or found.id
            people = s.scalars(select(UserRow).where(of_person(person)).order_by(UserRow.id)).all()
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
            turns = [(conversation_key(c), stored_message(m, u)) for m, u, c in rows]
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
                [user_ref(row) for row in people],
                profile_of(profile) if profile is not None else None,
                turns,
                feedback,
            )

    def purge_before(self, older_than: datetime) -> int:
        """Delete turns older than ``older_than``, their jobs and feedback, empty conversations."""
        with self._session(write=True) as s:
            old = select(MessageRow.id).where(MessageRow.created_at < older_than)
            bulk_delete(s, delete(AnswerJobRow).where(AnswerJobRow.message_id.in_(old)))
            bulk_delete(s, delete(FeedbackRow).where(FeedbackRow.answer_id.in_(old)))
            count = bulk_delete(s, delete(MessageRow).where(MessageRow.created_at < older_than))
            empty = (
                ~select(MessageRow.id)
                .where(MessageRow.conversation_id == ConversationRow.id)
                .exists()
            )
            bulk_delete(s, delete(ConversationRow).where(empty))
        self._wipe()
        return count

    def usage(self, since: datetime) -> Usage:
        """Messages, answers, distinct people and blocked answers since ``since``."""
        with self._session(write=False) as s:
            recent = MessageRow.created_at >= since
            asked = (recent, MessageRow.role == Role.USER.value)
            answered = (recent, MessageRow.role == Role.ASSISTANT.value)
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


def _drop_contexts_with(s: Session, conversations: set[int], removed: set[int]) -> None:
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
