"""Where Parley keeps conversations, feedback and profiles: the store contracts.

Small contracts, one per concern (answer jobs: :mod:`core.jobs`; feedback for learning:
:class:`core.feedback_data.FeedbackSource`). Each consumer takes the one it uses, or a
named join of two or three (:class:`PeopleStore`, :class:`ConversationFeedbackStore`,
:class:`AnsweringStore`); :class:`Store` joins them all. Two stores implement every one:
:class:`core.db.SqlStore` (SQLite and PostgreSQL) and :class:`core.memory.MemoryStore`,
the in-memory one used by tests and by anything that needs no persistence. The helpers
at the end are the rules both share.

Store methods are synchronous: they are short, and the same store serves the Celery
workers. Async callers run them in a thread. Turns are ordered by id; people appear with
the latest display name the store has seen for them (a later event without a name keeps it).

A person may reach Parley from several platforms; each platform account is an *identity*.
``/link`` joins identities into one person (:class:`IdentityStore`), who then has one
profile and is forgotten as a whole.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol, TypedDict, Unpack

from core.feedback_data import FeedbackSource
from core.intake import IntakeStore, ThreadStore
from core.jobs import JobStore
from core.sentiment import Sentiment
from core.types import (
    Answer,
    ContextReport,
    ConversationKey,
    Fact,
    Feedback,
    Role,
    StoredMessage,
    UserProfile,
    UserRef,
)

__all__ = [
    "LINK_CODE_ALPHABET",
    "LINK_CODE_TTL",
    "AnsweringStore",
    "ConversationFeedbackStore",
    "ConversationStore",
    "EventStore",
    "FeedbackStore",
    "IdentityStore",
    "JobStore",
    "NewTurn",
    "PeopleStore",
    "PrivacyStore",
    "ProfileStore",
    "Store",
    "TurnStore",
    "Usage",
    "UsageStore",
    "draft_turn",
    "merge_profiles",
    "new_job_token",
    "new_link_code",
    "normalize_link_code",
    "personal_data_json",
]

# No 0/O, 1/I/L: a code is read on one screen and typed on another.
LINK_CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
LINK_CODE_LENGTH = 8
LINK_CODE_TTL = timedelta(minutes=10)


class NewTurn(TypedDict, total=False):
    """What :meth:`ConversationStore.append` may store with a turn besides its role and text.

    With ``expects_answer`` the turn gets an answer job (:mod:`core.jobs`), ``queued``, in
    the same transaction: either both are stored or neither is. ``in_group`` is kept with
    the job: the message was sent in a group chat.
    """

    user: UserRef | None
    platform_message_id: str | None
    model_version: str | None
    context: ContextReport | None
    sentiment: Sentiment | None
    expects_answer: bool
    in_group: bool


class ConversationStore(Protocol):
    """Both sides of every conversation, in order, as the chat shows them."""

    def append(
        self, key: ConversationKey, role: Role, text: str, **turn: Unpack[NewTurn]
    ) -> StoredMessage:
        """Store one turn and return it with its id (and its answer job: see :class:`NewTurn`)."""
        ...

    def history(self, key: ConversationKey, limit: int) -> list[StoredMessage]:
        """The last ``limit`` turns since the conversation was last reset, oldest first."""
        ...

    def reset(self, key: ConversationKey) -> None:
        """Start a fresh context: earlier turns stay stored but leave the history."""
        ...

    def mark_delivered(self, message_id: int, platform_message_id: str) -> None:
        """Record the platform message that shows a stored answer; raise KeyError if unknown."""
        ...

    def find_by_platform_id(
        self, key: ConversationKey, platform_message_id: str
    ) -> StoredMessage | None:
        """The newest turn of the conversation shown by that platform message, or ``None``."""
        ...


class TurnStore(Protocol):
    """Single stored turns by id: what answering a message reads, and redaction rewrites."""

    def message(self, message_id: int) -> StoredMessage | None:
        """One stored turn by its id, or ``None``."""
        ...

    def answer(self, answer_id: int) -> Answer | None:
        """The stored answer with this id, with its conversation, or ``None``."""
        ...

    def history_before(self, message_id: int, limit: int) -> list[StoredMessage]:
        """What came before a message in its conversation: the prompt's history for it.

        The last ``limit`` turns since the last reset, oldest first, in *answer order*:
        earlier messages, each followed by its answer, even when later messages arrived
        before that answer was made. Later messages and their answers are left out.
        """
        ...

    def replace_text(self, message_id: int, text: str) -> bool:
        """Replace a stored turn's text (with its redacted form); False if it is gone."""
        ...


class FeedbackStore(Protocol):
    """People's verdicts on answers."""

    def save_feedback(self, feedback: Feedback) -> None:
        """Store feedback; a person's later feedback on the same answer replaces theirs.

        Raise KeyError when ``feedback.answer_id`` is no stored answer.
        """
        ...

    def feedback_for(self, answer_id: int) -> list[Feedback]:
        """All current feedback on one answer, in the order people first gave it."""
        ...


class ProfileStore(Protocol):
    """What Parley knows about each person."""

    def profile(self, user: UserRef) -> UserProfile:
        """The person's profile; an empty one for someone new."""
        ...

    def save_profile(self, user: UserRef, profile: UserProfile) -> None:
        """Replace the person's profile."""
        ...


class EventStore(Protocol):
    """Which platform events have been handled, so that a redelivered one is ignored."""

    def claim_event(self, platform: str, event_id: str) -> bool:
        """True for the first claim of an event, False ever after; atomic across processes."""
        ...

    def purge_events(self, older_than: datetime) -> int:
        """Forget events first claimed before ``older_than``; return how many."""
        ...

    def release_event(self, platform: str, event_id: str) -> None:
        """Undo a claim whose event could not be taken, so that its redelivery is new."""
        ...


class IdentityStore(Protocol):
    """One person on several platforms (``/link``): linked identities share one profile."""

    def create_link_code(self, user: UserRef, ttl: timedelta = LINK_CODE_TTL) -> str:
        """A new one-time code for the person; it replaces their earlier unused code."""
        ...

    def redeem_link_code(self, code: str, user: UserRef) -> UserRef | None:
        """Link ``user`` to the person who made the code and return that code's identity.

        The code matches whatever its case and surrounding spaces, and works once, before
        it expires, from an identity other than the one that made it; otherwise nothing
        changes and the answer is ``None``. The profiles merge (:func:`merge_profiles`,
        the code owner's kept), and every identity already linked to ``user`` joins too.
        """
        ...

    def linked_identities(self, user: UserRef) -> list[UserRef]:
        """All identities of the person: ``user`` first, then the others as first seen."""
        ...


class PrivacyStore(Protocol):
    """A person's data on request (forget, export), and expired with age (retention)."""

    def personal_data(self, user: UserRef) -> dict[str, Any]:
        """Everything held about the person (every linked identity), JSON-ready, for /export.

        Keys: ``identities``, ``profile``, ``messages`` (what they wrote, and the answers to
        it, oldest first, each with its conversation) and ``feedback`` (what they gave).
        """
        ...

    def purge_before(self, older_than: datetime) -> int:
        """Delete turns created before ``older_than`` with their jobs and feedback.

        Conversations left without turns go too. Returns how many turns were deleted.
        """
        ...

    def forget(self, user: UserRef) -> int:
        """Remove everything held about a person, on every linked identity; return the count.

        One person, one ``/forget``: forgetting any identity forgets all identities linked
        to it. Their messages go from every conversation; a conversation where nobody else
        wrote (a private chat) goes whole, answers included. Feedback they gave or that was
        given on a removed answer goes, then their profile, link codes and identities. Items
        counted: messages, conversations, feedback, the profile and each identity (link
        codes are keys, not data about the person, and are not counted); an unknown person
        gives 0.
        """
        ...


@dataclass(frozen=True, slots=True)
class Usage:
    """What Parley did since a moment: the figures of ``/admin usage``."""

    messages: int
    answers: int
    people: int
    blocked_answers: int


class UsageStore(Protocol):
    """Figures for operators."""

    def usage(self, since: datetime) -> Usage:
        """Messages people sent, answers, distinct people and blocked answers since then."""
        ...


class PeopleStore(ProfileStore, IdentityStore, Protocol):
    """A person's profile and linked identities (``/profile``, ``/link``)."""


class ConversationFeedbackStore(ConversationStore, FeedbackStore, Protocol):
    """A conversation's answers and people's verdicts on them (``/feedback``, ``/explain``)."""


class AnsweringStore(TurnStore, JobStore, ProfileStore, IntakeStore, Protocol):
    """What answering one message reads and writes: its job, its files, its history, the profile."""


class Store(
    ConversationStore,
    TurnStore,
    UsageStore,
    FeedbackStore,
    ProfileStore,
    IdentityStore,
    EventStore,
    PrivacyStore,
    JobStore,
    FeedbackSource,
    IntakeStore,
    ThreadStore,
    Protocol,
):
    """Every contract at once: what a complete store (SQL or memory) implements.

    Only the composition root and the conversation service, which hands the parts their
    share, take the whole of it; every other consumer names the small contract it uses.
    """


def new_link_code() -> str:
    """A random code of :data:`LINK_CODE_LENGTH` characters from :data:`LINK_CODE_ALPHABET`."""
    return "".join(secrets.choice(LINK_CODE_ALPHABET) for _ in range(LINK_CODE_LENGTH))


def new_job_token() -> str:
    """A fresh random token that proves who holds an answer job's lease."""
    return secrets.token_urlsafe(16)


def draft_turn(role: Role, text: str, turn: NewTurn) -> StoredMessage:
    """The turn a store is asked to keep, before it has its id (0 until the store draws it)."""
    return StoredMessage(
        id=0,
        role=role,
        text=text,
        user=turn.get("user"),
        platform_message_id=turn.get("platform_message_id"),
        model_version=turn.get("model_version"),
        context=turn.get("context"),
        sentiment=turn.get("sentiment"),
    )


def normalize_link_code(code: str) -> str:
    """The stored form of a code as a person typed it: trimmed, upper case."""
    return code.strip().upper()


def merge_profiles(kept: UserProfile, joining: UserProfile) -> UserProfile:
    """The profile of two linked identities: ``kept`` wins, ``joining`` fills its gaps.

    Preferences ``kept`` lacks come from ``joining``; facts are united, the first of any
    that differ only in case or surrounding spaces staying. Learning stays on only if
    both had it on: off is the choice someone made, on is merely the default.
    """
    facts: dict[str, Fact] = {}
    for fact in (*kept.facts, *joining.facts):
        facts.setdefault(fact.text.strip().casefold(), fact)
    return UserProfile(
        display_name=kept.display_name or joining.display_name,
        language=kept.language or joining.language,
        preferences={**joining.preferences, **kept.preferences},
        facts=tuple(facts.values()),
        learn_facts=kept.learn_facts and joining.learn_facts,
        allows_training=kept.allows_training and joining.allows_training,
    )


def personal_data_json(
    identities: list[UserRef],
    profile: UserProfile | None,
    turns: list[tuple[ConversationKey, StoredMessage]],
    feedback: list[Feedback],
) -> dict[str, Any]:
    """The JSON form of :meth:`PrivacyStore.personal_data`, the same for every store."""
    return {
        "identities": [
            {"platform": u.platform, "id": u.id, "display_name": u.display_name} for u in identities
        ],
        "profile": None
        if profile is None
        else {
            "display_name": profile.display_name,
            "language": profile.language,
            "preferences": dict(profile.preferences),
            "facts": [fact.to_json() for fact in profile.facts],
            "learn_facts": profile.learn_facts,
        },
        "messages": [
            {
                "id": turn.id,
                "conversation": {
                    "platform": key.platform,
                    "workspace": key.workspace,
                    "chat": key.chat,
                    "thread": key.thread,
                },
                "role": str(turn.role),
                "text": turn.text,
                "created_at": turn.created_at.isoformat(),
            }
            for key, turn in turns
        ],
        "feedback": [
            {
                "answer_id": f.answer_id,
                "rating": str(f.rating) if f.rating is not None else None,
                "correction": f.correction,
                "given_at": f.given_at.isoformat(),
            }
            for f in sorted(feedback, key=lambda f: f.answer_id)
        ],
    }
