"""Feedback in SQL: people's verdicts on answers, and the records the fine-tuning loop
reads (:class:`core.feedback_data.FeedbackSource`), for :class:`core.db.SqlStore`.
"""

from __future__ import annotations

from typing import Unpack

from sqlalchemy import ColumnElement, Integer, case, func, select
from sqlalchemy.orm import aliased

from core.db.engine import SqlPart
from core.db.models import FeedbackRow, MessageRow, ProfileRow, UserRow
from core.db.people import user_id
from core.db.rows import dialect, insert_for, same_identity, user_ref
from core.feedback_data import UNTRUSTED_PLATFORMS, FeedbackRecord, FeedbackWindow, VersionRates
from core.types import ContextReport, Feedback, Rating, Role, UserRef, utcnow

__all__ = ["SqlFeedback"]


class SqlFeedback(SqlPart):
    """:class:`core.store.FeedbackStore` and :class:`core.feedback_data.FeedbackSource`."""

    def save_feedback(self, feedback: Feedback) -> None:
        """Store feedback; a person's later feedback on the same answer replaces theirs."""
        is_answer = (MessageRow.id == feedback.answer_id, MessageRow.role == Role.ASSISTANT.value)
        with self._session(write=True) as s:
            if s.scalar(select(MessageRow.id).where(*is_answer)) is None:
                raise KeyError(f"no answer with id {feedback.answer_id}")
            insert = insert_for(dialect(s), FeedbackRow).values(
                answer_id=feedback.answer_id,
                user_id=user_id(s, feedback.user),
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

    def feedback_records(self, **window: Unpack[FeedbackWindow]) -> list[FeedbackRecord]:
        """See :meth:`core.feedback_data.FeedbackSource.feedback_records`."""
        since, until = window.get("since"), window.get("until")
        untrusted = window.get("untrusted_platforms", UNTRUSTED_PLATFORMS)
        with self._session(write=False) as s:
            giver = aliased(UserRow)
            person = func.coalesce(giver.person_id, giver.id)
            query = (
                select(FeedbackRow, MessageRow, giver.platform, person, ProfileRow.allows_training)
                .join(MessageRow, FeedbackRow.answer_id == MessageRow.id)
                .join(giver, FeedbackRow.user_id == giver.id)
                .outerjoin(ProfileRow, ProfileRow.user_id == person)
                .where(
                    MessageRow.role == Role.ASSISTANT.value,
                    MessageRow.context.is_not(None),
                    # Answers moderation replaced are never training data.
                    MessageRow.blocked_reason.is_(None),
                )
                .order_by(FeedbackRow.given_at, FeedbackRow.id)
            )
            if since is not None:
                query = query.where(FeedbackRow.given_at >= since)
            if until is not None:
                query = query.where(FeedbackRow.given_at < until)
            records = []
            for feedback, answer, platform, person_id, allows in s.execute(query).all():
                assert answer.context is not None
                records.append(
                    FeedbackRecord(
                        feedback_id=feedback.id,
                        answer_id=answer.id,
                        person=_key(person_id),
                        platform=platform,
                        trusted=platform not in untrusted,
                        allows_training=allows is not False,
                        prompt=ContextReport.from_json(answer.context).turns,
                        answer=answer.text,
                        rating=Rating(feedback.rating) if feedback.rating is not None else None,
                        correction=feedback.correction,
                        model_version=answer.model_version,
                        given_at=feedback.given_at,
                    )
                )
            return records

    def person_key(self, user: UserRef) -> str | None:
        """The person key of ``user``'s feedback records; ``None`` for someone never seen."""
        with self._session(write=False) as s:
            person = s.scalar(
                select(func.coalesce(UserRow.person_id, UserRow.id)).where(*same_identity(user))
            )
            return _key(person) if person is not None else None

    def feedback_rates(self) -> list[VersionRates]:
        """Answers and current feedback per model version, the most answered first."""
        with self._session(write=False) as s:

            def counted(condition: ColumnElement[bool]) -> ColumnElement[int]:
                return func.coalesce(func.sum(case((condition, 1), else_=0)), 0).cast(Integer)

            version = func.coalesce(MessageRow.model_version, "unknown")
            answers = func.count(func.distinct(MessageRow.id))
            query = (
                select(
                    version,
                    answers,
                    counted(FeedbackRow.rating == Rating.GOOD.value),
                    counted(FeedbackRow.rating == Rating.BAD.value),
                    counted(FeedbackRow.correction.is_not(None)),
                )
                .outerjoin(FeedbackRow, FeedbackRow.answer_id == MessageRow.id)
                .where(MessageRow.role == Role.ASSISTANT.value)
                .group_by(version)
                .order_by(answers.desc(), version)
            )
            return [
                VersionRates(model_version=v, answers=a, good=g, bad=b, corrections=c)
                for v, a, g, b, c in s.execute(query).all()
            ]


def _key(person_id: int) -> str:
    return f"person-{person_id}"
