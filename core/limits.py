"""Rate limits, daily token quotas and one answer at a time, per person and per chat.

:class:`Limits` is the policy over a :class:`core.limiters.Limiter` (in this process for the
embedded deployment, on a shared Redis for the scaled one)::

    limits = Limits(MemoryLimiter(), LimitOptions(person_per_minute=20))
    refusal = limits.admit(message)            # None, or a Refusal with the wait time
    refusal = limits.within_quota(message)     # the same, for the daily token quotas
    ticket = limits.queue(message.user)        # None: too many of theirs wait already
    if limits.take_turn(message.user, ticket): # False: another answer of theirs runs
        ...                                    # generate
    limits.charge(user, key, tokens)           # after an answer: count its model tokens
    limits.end_answer(message.user, ticket)    # the turn and the place in the queue

One answer at a time means a queue per person, not a refusal: a message that arrives while
the person's previous one is being answered waits its turn, and only one beyond
``max_queued`` waiting is refused (:func:`busy_text` says when to send it again).

Windows are fixed (a minute, a day) and start with their first hit; a refusal says how long
until the window ends. Nothing here holds message text: keys name people and chats only.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from core.limiters import Limiter, MemoryLimiter, RedisLimiter
from core.metrics import LIMITS_HIT
from core.types import ConversationKey, Message, UserRef

__all__ = [
    "LimitOptions",
    "Limiter",
    "Limits",
    "MemoryLimiter",
    "RedisLimiter",
    "Refusal",
    "busy_text",
    "describe_wait",
]

MINUTE = 60.0
DAY = 86_400.0


@dataclass(frozen=True, slots=True, kw_only=True)
class LimitOptions:
    """How much each person and chat may ask; 0 turns a limit off."""

    person_per_minute: int = 0
    chat_per_minute: int = 0
    person_tokens_per_day: int = 0
    chat_tokens_per_day: int = 0
    one_at_a_time: bool = False
    """A person's answers are generated one after another (across all their chats)."""
    max_queued: int = 5
    """With one at a time: how many of a person's messages may wait for their turn."""
    busy_ttl_s: float = 300.0
    """How long an answer holds its person's turn at most (if its process dies meanwhile)."""

    @property
    def queue_ttl_s(self) -> float:
        """The longest a place in a person's queue lasts: the answers before it, and its own."""
        return self.busy_ttl_s * (max(self.max_queued, 0) + 1)


@dataclass(frozen=True, slots=True)
class Refusal:
    """A message refused by a limit: which one, how long to wait, and what to say."""

    limit: str
    wait_s: float
    text: str


def describe_wait(seconds: float) -> str:
    """A wait as people say it: "40 seconds", "3 minutes", "5 hours"."""
    seconds = max(1, round(seconds))
    if seconds < 90:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = round(seconds / 60)
    if minutes < 90:
        return f"{minutes} minutes"
    return f"{round(minutes / 60)} hours"


def _id(*parts: str | None) -> str:
    """An unambiguous key part (ids may contain ':' or anything else)."""
    return json.dumps(list(parts), separators=(",", ":"))


class Limits:
    """Parley's limits over a :class:`Limiter`."""

    def __init__(self, limiter: Limiter, options: LimitOptions) -> None:
        self.limiter = limiter
        self.options = options

    @staticmethod
    def person_keys(user: UserRef) -> list[str]:
        """Every key that names the person (what /forget removes)."""
        who = _id(user.platform, user.id)
        return [f"msg:user:{who}", f"tok:user:{who}", f"busy:{who}", f"queue:{who}"]

    @staticmethod
    def chat_keys(key: ConversationKey) -> list[str]:
        """The keys of one chat's counters."""
        chat = _id(key.platform, key.workspace, key.chat)
        return [f"msg:chat:{chat}", f"tok:chat:{chat}"]

    def admit(self, message: Message) -> Refusal | None:
        """Count the message against the person's and the chat's rate limits."""
        person = self.person_keys(message.user)[0]
        chat = self.chat_keys(message.key)[0]
        return self._check(
            [
                ("person_rate", person, self.options.person_per_minute, MINUTE, 1, "You are"),
                ("chat_rate", chat, self.options.chat_per_minute, MINUTE, 1, "This chat is"),
            ]
        )

    def within_quota(self, message: Message) -> Refusal | None:
        """Check (without counting) that the person and the chat have tokens left today."""
        person = self.person_keys(message.user)[1]
        chat = self.chat_keys(message.key)[1]
        return self._check(
            [
                ("person_quota", person, self.options.person_tokens_per_day, DAY, 0, "You have"),
                ("chat_quota", chat, self.options.chat_tokens_per_day, DAY, 0, "This chat has"),
            ]
        )

    def _check(self, checks: list[tuple[str, str, int, float, int, str]]) -> Refusal | None:
        for name, key, limit, window, amount, who in checks:
            if limit <= 0:
                continue
            wait = self.limiter.hit(key, limit, window, amount)
            if wait > 0:
                LIMITS_HIT.labels(name).inc()
                return Refusal(name, wait, _refusal_text(name, who, limit, wait))
        return None

    def queue(self, user: UserRef, key: ConversationKey) -> str | None:
        """A place in the person's queue of answers (the one in progress and those waiting).

        Its ticket, or ``None`` when ``max_queued`` wait already behind the one in progress.
        With one-at-a-time off, always a ticket (``""``, that holds nothing). A ticket names
        its conversation (``key``): the person's turn is held by a conversation, so that it
        can pass from one answer to the next of the same chat (see :meth:`end_answer`).
        """
        if not self.options.one_at_a_time:
            return ""
        options = self.options
        size = max(options.max_queued, 0) + 1
        place = self.limiter.join(self.person_keys(user)[3], size, options.queue_ttl_s)
        if place is None:
            LIMITS_HIT.labels("busy").inc()
            return None
        return f"{place} {self.chat_keys(key)[0]}"

    def take_turn(self, user: UserRef, ticket: str) -> bool:
        """Start the ticket's answer unless an answer of the person in another chat runs."""
        if not ticket:
            return True
        _, holder = ticket.split(" ", 1)
        key = self.person_keys(user)[2]
        return self.limiter.acquire(key, self.options.busy_ttl_s, token=holder) is not None

    def end_answer(self, user: UserRef, ticket: str, *, keep_turn: bool = False) -> None:
        """Give back the ticket's place in the queue, and the person's turn unless ``keep_turn``.

        The turn is kept when the next message of the same chat, the person's own, waits to
        be answered: it goes on to that one before any other chat of theirs.
        """
        if ticket:
            place, holder = ticket.split(" ", 1)
            _, _, busy, queue = self.person_keys(user)
            if not keep_turn:
                self.limiter.release(busy, holder)
            self.limiter.leave(queue, place)

    @property
    def busy_text(self) -> str:
        """What a person hears when their queue is full."""
        return busy_text(self.options.max_queued)

    def charge(self, user: UserRef, key: ConversationKey, tokens: int) -> None:
        """Count an answer's model tokens against the person's and the chat's quotas."""
        if tokens <= 0:
            return
        if self.options.person_tokens_per_day > 0:
            self.limiter.charge(self.person_keys(user)[1], tokens, DAY)
        if self.options.chat_tokens_per_day > 0:
            self.limiter.charge(self.chat_keys(key)[1], tokens, DAY)

    def forget(
        self, identities: Sequence[UserRef], conversations: Sequence[ConversationKey] = ()
    ) -> int:
        """Remove every counter and lock of these people, and of the chats they wrote in."""
        keys = [k for user in identities for k in self.person_keys(user)]
        keys += [k for key in dict.fromkeys(conversations) for k in self.chat_keys(key)]
        return self.limiter.delete(keys)


def busy_text(max_queued: int) -> str:
    """The refusal of a message beyond a person's queue: what is going on, and when to resend."""
    if max_queued <= 0:
        return (
            "I'm still answering your previous message. Please send this one again once that "
            "answer has arrived."
        )
    waiting = f"{max_queued} more message{'s' if max_queued != 1 else ''} of yours"
    return (
        f"I'm still answering your earlier messages, and {waiting} "
        f"{'are' if max_queued != 1 else 'is'} waiting, as many as I keep. "
        "Please send this one again once my next answer to you has arrived."
    )


def _refusal_text(name: str, who: str, limit: int, wait: float) -> str:
    when = describe_wait(wait)
    if name.endswith("rate"):
        return (
            f"{who} sending messages faster than I can take them (at most {limit} a minute). "
            f"Please wait {when} and send it again."
        )
    return (
        f"{who} used up today's share of my time ({limit:,} tokens a day). "
        f"Please try again in {when}."
    )
