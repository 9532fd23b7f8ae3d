"""The vocabulary every part of Parley shares: messages, replies, feedback and profiles.

Adapters in ``bots/`` translate platform events into these types and render them back;
nothing platform-specific travels past an adapter. All types are frozen so that a value
handed to the core cannot change under it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from core.media import Attachment
from core.sentiment import Sentiment

__all__ = [
    "Answer",
    "ChatTurn",
    "ContextReport",
    "ConversationKey",
    "Fact",
    "Feedback",
    "Message",
    "Rating",
    "Reply",
    "ReplyKind",
    "Role",
    "Segment",
    "StoredMessage",
    "UserProfile",
    "UserRef",
    "utcnow",
]


def utcnow() -> datetime:
    """Return the current time, timezone-aware in UTC."""
    return datetime.now(UTC)


class Role(StrEnum):
    """Who wrote a turn of a conversation."""

    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"


@dataclass(frozen=True, slots=True)
class ConversationKey:
    """Identifies one conversation: a platform, a workspace, a chat and a thread in it.

    ``workspace`` is the Slack team (``None`` on platforms without one) and ``thread`` the
    Slack thread or Telegram forum topic (``None`` for the chat's main line). The encoded
    form is a JSON array, so two different keys can never share an encoding: ``None`` and
    ``""`` stay distinct and no separator inside an id can shift the fields.
    """

    platform: str
    workspace: str | None
    chat: str
    thread: str | None = None

    def encode(self) -> str:
        """Return the unambiguous string form used as the database key."""
        return json.dumps([self.platform, self.workspace, self.chat, self.thread])

    @classmethod
    def decode(cls, encoded: str) -> ConversationKey:
        """Parse a string made by :meth:`encode`."""
        platform, workspace, chat, thread = json.loads(encoded)
        return cls(platform=platform, workspace=workspace, chat=chat, thread=thread)


@dataclass(frozen=True, slots=True)
class UserRef:
    """A person as a platform knows them."""

    platform: str
    id: str
    display_name: str | None = None

    @property
    def label(self) -> str:
        """The name to show for this person in a group conversation."""
        return self.display_name or f"user {self.id}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Message:
    """One message a person sent to Parley, already translated from its platform.

    ``mentions_bot`` and ``reply_to_bot`` say how a group message addresses Parley;
    ``reply_to`` is the platform id of the message it answers; ``media`` names the kinds
    of non-text content it carries ("photo", "voice", "file", ...), with ``text`` as caption;
    ``attachments`` are those of them Parley can read (voice, audio, images), with a fetcher.
    """

    platform: str
    chat: str
    user: UserRef
    text: str
    workspace: str | None = None
    thread: str | None = None
    message_id: str | None = None
    sent_at: datetime = field(default_factory=utcnow)
    is_group: bool = False
    mentions_bot: bool = False
    reply_to: str | None = None
    reply_to_bot: bool = False
    media: tuple[str, ...] = ()
    attachments: tuple[Attachment, ...] = ()

    @property
    def key(self) -> ConversationKey:
        """The conversation this message belongs to."""
        return ConversationKey(self.platform, self.workspace, self.chat, self.thread)


class ReplyKind(StrEnum):
    """What a reply is: a model's answer, a command's notice, or an error for the user."""

    ANSWER = "answer"
    NOTICE = "notice"
    ERROR = "error"


@dataclass(frozen=True, slots=True, kw_only=True)
class Reply:
    """What Parley says back. Only answers carry an ``answer_id`` that feedback can name."""

    text: str
    kind: ReplyKind = ReplyKind.NOTICE
    answer_id: int | None = None
    model_version: str | None = None
    attachments: tuple[tuple[str, bytes], ...] = ()


class Rating(StrEnum):
    """A person's verdict on one answer."""

    GOOD = "good"
    BAD = "bad"


@dataclass(frozen=True, slots=True, kw_only=True)
class Feedback:
    """A person's judgement of one answer: a rating, a correction, or both."""

    answer_id: int
    user: UserRef
    rating: Rating | None = None
    correction: str | None = None
    given_at: datetime = field(default_factory=utcnow)


@dataclass(frozen=True, slots=True)
class Fact:
    """Something a person told Parley about themselves, or set explicitly.

    Learned facts keep the turn they came from and a confidence; facts the person set with
    ``/profile`` have confidence 1 and no source.
    """

    text: str
    confidence: float = 1.0
    source_message_id: int | None = None
    learned: bool = False

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready form for storage."""
        return {
            "text": self.text,
            "confidence": self.confidence,
            "source_message_id": self.source_message_id,
            "learned": self.learned,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any] | str) -> Fact:
        """Rebuild a stored fact (a plain string is an explicit fact)."""
        if isinstance(data, str):
            return cls(text=data)
        return cls(
            text=data["text"],
            confidence=float(data.get("confidence", 1.0)),
            source_message_id=data.get("source_message_id"),
            learned=bool(data.get("learned", False)),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class UserProfile:
    """What Parley knows about a person and may use to personalise its answers.

    Explicit settings (name, language, preferences, facts with ``learned=False``) win over
    learned ones; ``learn_facts=False`` turns learning off and hides learned facts.
    ``allows_training=False`` keeps the person's feedback out of fine-tuning.
    """

    display_name: str | None = None
    language: str | None = None
    preferences: dict[str, str] = field(default_factory=dict)
    facts: tuple[Fact, ...] = ()
    learn_facts: bool = True
    allows_training: bool = True

    def is_empty(self) -> bool:
        """True when there is nothing to tell the model about this person."""
        return not (self.display_name or self.language or self.preferences or self.facts)

    def active_facts(self) -> tuple[Fact, ...]:
        """The facts that may enter a prompt: explicit ones, and learned ones unless turned off."""
        return tuple(f for f in self.facts if self.learn_facts or not f.learned)


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredMessage:
    """A turn as the store keeps it: either side of the conversation."""

    id: int
    role: Role
    text: str
    user: UserRef | None = None
    created_at: datetime = field(default_factory=utcnow)
    platform_message_id: str | None = None
    model_version: str | None = None
    context: ContextReport | None = None
    sentiment: Sentiment | None = None
    blocked_reason: str | None = None
    """Set on an answer that moderation replaced with a safe reply: never training data."""


@dataclass(frozen=True, slots=True)
class ChatTurn:
    """One entry of a chat-template conversation, as the model sees it."""

    role: Role
    content: str

    def as_dict(self) -> dict[str, str]:
        """The ``{"role", "content"}`` form that chat templates take."""
        return {"role": str(self.role), "content": self.content}


@dataclass(frozen=True, slots=True, kw_only=True)
class Segment:
    """One part of a prompt (instructions, a profile fact, a turn) and its size in tokens."""

    kind: str
    label: str
    tokens: int
    included: bool = True
    message_id: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ContextReport:
    """How a prompt was built: what went in, what was left out, and what it cost.

    Stored with every answer so that ``/explain`` and the training data can show the
    context as it was when the answer was made.
    """

    turns: tuple[ChatTurn, ...]
    segments: tuple[Segment, ...]
    prompt_tokens: int
    budget_tokens: int
    dropped_turns: int = 0

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready form for storage."""
        return {
            "turns": [t.as_dict() for t in self.turns],
            "segments": [
                {
                    "kind": s.kind,
                    "label": s.label,
                    "tokens": s.tokens,
                    "included": s.included,
                    "message_id": s.message_id,
                }
                for s in self.segments
            ],
            "prompt_tokens": self.prompt_tokens,
            "budget_tokens": self.budget_tokens,
            "dropped_turns": self.dropped_turns,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ContextReport:
        """Rebuild a report stored by :meth:`to_json`."""
        return cls(
            turns=tuple(ChatTurn(Role(t["role"]), t["content"]) for t in data["turns"]),
            segments=tuple(Segment(**s) for s in data["segments"]),
            prompt_tokens=data["prompt_tokens"],
            budget_tokens=data["budget_tokens"],
            dropped_turns=data.get("dropped_turns", 0),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Answer:
    """A stored answer together with the context that produced it."""

    message: StoredMessage
    conversation: ConversationKey
