"""Feedback as the fine-tuning loop reads it: each verdict with the answer it judges.

A :class:`FeedbackRecord` is one person's current feedback on one answer, together with the
prompt exactly as the model saw it when it answered (the stored context), the model version
that answered, and who gave it. Stores produce them with ``feedback_records``; the dataset
builder (:mod:`workers.training.dataset`) turns them into training examples.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, TypedDict, Unpack

from core.types import ChatTurn, Rating, UserRef

__all__ = [
    "UNTRUSTED_PLATFORMS",
    "FeedbackRecord",
    "FeedbackSource",
    "FeedbackWindow",
    "VersionRates",
]

UNTRUSTED_PLATFORMS = ("telegram",)
"""Platforms whose users are the public: their feedback is not trusted by default."""


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedbackRecord:
    """One person's feedback on one answer, with everything needed to learn from it.

    ``person`` is a stable, opaque key for the person (linked accounts share it), used to cap
    each person's share of a run. ``trusted`` is False for public platforms (Telegram), whose
    weight configuration may lower. ``allows_training`` is False when the person opted out
    with ``/profile training off``: such records must never reach a training file.
    """

    feedback_id: int
    answer_id: int
    person: str
    platform: str
    trusted: bool
    allows_training: bool
    prompt: tuple[ChatTurn, ...]
    answer: str
    rating: Rating | None
    correction: str | None
    model_version: str | None
    given_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class VersionRates:
    """How people judged the answers of one model version."""

    model_version: str
    answers: int
    good: int
    bad: int
    corrections: int

    @property
    def rated(self) -> int:
        """Ratings given (a person's latest verdict on an answer counts once)."""
        return self.good + self.bad

    @property
    def good_rate(self) -> float | None:
        """The share of ratings that were good; ``None`` before any rating."""
        return self.good / self.rated if self.rated else None


class FeedbackWindow(TypedDict, total=False):
    """Which feedback :meth:`FeedbackSource.feedback_records` reads (all of it by default).

    Feedback given in ``[since, until)`` (either end open when left out); feedback from
    ``untrusted_platforms`` (default :data:`UNTRUSTED_PLATFORMS`) is marked ``trusted=False``.
    """

    since: datetime | None
    until: datetime | None
    untrusted_platforms: Collection[str]


class FeedbackSource(Protocol):
    """Where the nightly job and the admin commands read feedback from (both stores)."""

    def feedback_records(self, **window: Unpack[FeedbackWindow]) -> list[FeedbackRecord]:
        """Current feedback given in the window on answers with a stored context, oldest
        first; answers that moderation blocked are left out."""
        ...

    def feedback_rates(self) -> list[VersionRates]:
        """Answers and feedback per model version, the most answered first."""
        ...

    def person_key(self, user: UserRef) -> str | None:
        """The ``person`` of ``user``'s records (shared by linked accounts); ``None`` if
        Parley has never seen them."""
        ...
