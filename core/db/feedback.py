"""Feedback for learning, in SQL: the queries behind :class:`core.db.SqlStore`'s
``feedback_records`` and ``feedback_rates`` (:class:`core.feedback_data.FeedbackSource`).

Each function runs inside the caller's read transaction.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import ColumnElement, Integer, case, func, select
from sqlalchemy.orm import Session, aliased

from core.db.models import FeedbackRow, MessageRow, ProfileRow, UserRow
from core.db.rows import same_identity
from core.feedback_data import FeedbackRecord, VersionRates
from core.types import ContextReport, Rating, Role, UserRef

__all__ = ["feedback_rates", "feedback_records", "person_key"]


def feedback_records(
    s: Session,
    since: datetime | None,
    until: datetime | None,
    untrusted_platforms: Collection[str],
) -> list[FeedbackRecord]:
    """Current feedback in ``[since, until)`` on answers with a stored context, oldest first."""
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
                trusted=platform not in untrusted_platforms,
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


def _key(person_id: int) -> str:
    return f"person-{person_id}"


def person_key(s: Session, user: UserRef) -> str | None:
    """The person key of ``user``'s feedback records; ``None`` for someone never seen."""
    person = s.scalar(
        select(func.coalesce(UserRow.person_id, UserRow.id)).where(*same_identity(user))
    )
    return _key(person) if person is not None else None


def feedback_rates(s: Session) -> list[VersionRates]:
    """Answers and current feedback per model version, the most answered first."""

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
