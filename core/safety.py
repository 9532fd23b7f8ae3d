"""The safety checks around every message and answer, in one object the wiring builds.

:class:`Safety` is what the conversation service and the responder call, in order::

    refusal = await safety.admit(message)           # access rules, then rate limits
    screening = await safety.screen(message, text)  # moderation, injection, quotas, queue
    ...                                             # the message is stored
    await safety.take_turn(user, screening.busy, place)  # the person's turn, in chat order
    ...                                             # the message is answered
    safety.gate()                                   # the answer, screened as it streams
    safety.clean(text)                              # what is stored: personal data redacted
    safety.charge(user, key, tokens)                # the answer's tokens on the quotas
    safety.finish(user, screening.busy, place)      # the turn passes on

Every part is optional: ``Safety()`` checks nothing (the tests' default), the wiring turns
on what the settings ask for. Nothing here logs message text.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from core.access import REFUSAL, AccessPolicy
from core.limits import Limits
from core.metrics import ACCESS_REFUSED, INJECTION_ATTEMPTS, MODERATION_BLOCKS
from core.moderation import INPUT_REFUSAL, AnswerScreen, Gate, Moderator
from core.prompt_guard import PromptGuard, looks_like_injection
from core.redaction import redact
from core.types import ConversationKey, Message, UserRef

__all__ = ["Place", "Safety", "Screening"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Screening:
    """The verdict on a message that wants an answer: a refusal, or its place in the queue."""

    refusal: str | None = None
    busy: str | None = None


@dataclass(frozen=True, slots=True)
class Place:
    """Where an answer stands in its conversation, for taking and passing the person's turn."""

    message_id: int
    head: Callable[[], int | None]
    """The first message of the conversation still owed an answer (blocking: the store's)."""
    private: bool
    """A private chat: every message in it is the person's own."""

    def first(self) -> bool:
        """No earlier message of the conversation is still owed an answer."""
        head = self.head()
        return head is None or head >= self.message_id

    def followed(self) -> bool:
        """A later message of the conversation is owed an answer (asked once this one ended)."""
        head = self.head()
        return head is not None and head > self.message_id


@dataclass(slots=True, kw_only=True)
class Safety:
    """Access, limits, moderation, the prompt guard and redaction, as configured."""

    access: AccessPolicy = field(default_factory=AccessPolicy)
    limits: Limits | None = None
    moderator: Moderator | None = None
    input_threshold: float = 0.95
    output_threshold: float = 0.8
    guard: PromptGuard | None = None
    redact_stored: bool = False
    turn_poll_s: float = 0.1
    """How often a waiting answer looks again whether its turn has come."""

    def instructions(self, system_prompt: str) -> str:
        """The system prompt the model sees: with the canary when the guard is on."""
        return self.guard.instructions(system_prompt) if self.guard else system_prompt

    async def admit(self, message: Message) -> str | None:
        """A refusal for someone not let in or over a rate limit; ``None`` to go on.

        Runs before anything of the message is stored.
        """
        if not self.access.allows(message):
            ACCESS_REFUSED.labels(message.platform).inc()
            log.info("refused a %s message: not on the access list", message.platform)
            return REFUSAL
        if self.limits is not None:
            refusal = await asyncio.to_thread(self.limits.admit, message)
            if refusal is not None:
                log.info("refused a %s message: %s", message.platform, refusal.limit)
                return refusal.text
        return None

    async def screen(self, message: Message, text: str) -> Screening:
        """Check a message the model is to answer; on success it holds a place in the person's
        queue of answers (``Screening.busy``), which :meth:`finish` gives back."""
        if looks_like_injection(text):
            INJECTION_ATTEMPTS.inc()
            log.warning(
                "a message in %s reads like a prompt injection (answered as user text)",
                message.key.encode(),
            )
        if self.moderator is not None:
            try:
                [score] = await asyncio.to_thread(self.moderator.score, [text])
            except Exception:  # a broken classifier must not cost the person their answer
                log.exception("moderating a message failed")
                score = 0.0
            if score >= self.input_threshold:
                MODERATION_BLOCKS.labels("input").inc()
                log.info("refused a message in %s: offensive %.2f", message.key.encode(), score)
                return Screening(refusal=INPUT_REFUSAL)
        if self.limits is None:
            return Screening(busy="")
        refusal = await asyncio.to_thread(self.limits.within_quota, message)
        if refusal is not None:
            return Screening(refusal=refusal.text)
        busy = await asyncio.to_thread(self.limits.queue, message.user, message.key)
        if busy is None:
            log.info("refused a message in %s: its person's queue is full", message.key.encode())
            return Screening(refusal=self.limits.busy_text)
        return Screening(busy=busy)

    async def take_turn(self, user: UserRef, busy: str | None, place: Place) -> None:
        """Wait until the answer that ``busy`` queued for may start, then hold the person's turn.

        It may start when it is first in line in its conversation and no answer of the
        person in another chat holds the turn. The turn is only ever held by an answer that
        can run at once, or kept by a private chat whose next message (the person's own) is
        first in line, so a person's chats never wait on each other in a circle. After as
        long as its place lasts (a turn whose holder died), or when the limiter fails, the
        answer goes ahead: an accepted message is always answered.
        """
        limits = self.limits
        if limits is None or not busy:
            return
        deadline = time.monotonic() + limits.options.queue_ttl_s

        def ready() -> bool:
            return place.first() and limits.take_turn(user, busy)

        while True:
            try:
                if await asyncio.to_thread(ready):
                    return
            except Exception:
                log.exception("could not take a %s user's turn; answering anyway", user.platform)
                return
            if time.monotonic() > deadline:
                log.warning("a %s user's turn did not come in time; answering", user.platform)
                return
            await asyncio.sleep(self.turn_poll_s)

    async def finish(self, user: UserRef, busy: str | None, place: Place | None = None) -> None:
        """The answer that ``busy`` queued for has ended: its place is given back, and the turn
        too, unless the next message of its private chat waits (best effort: both expire)."""
        limits = self.limits
        if limits is None or not busy:
            return

        def end() -> None:
            keep = place is not None and place.private and place.followed()
            limits.end_answer(user, busy, keep_turn=keep)

        try:
            await asyncio.to_thread(end)
        except Exception:
            log.exception("could not release the answer lock of a %s user", user.platform)

    def gate(self, instructions: str) -> Gate | None:
        """A gate for one answer (``None`` when nothing screens answers)."""
        if self.moderator is None and self.guard is None:
            return None
        return AnswerScreen(
            moderator=self.moderator,
            threshold=self.output_threshold,
            guard=self.guard,
            instructions=instructions,
        ).gate()

    def clean(self, text: str) -> str:
        """``text`` as it may be stored: personal data redacted when that is on."""
        return redact(text) if self.redact_stored else text

    def charge(self, user: UserRef | None, key: ConversationKey, tokens: int) -> None:
        """Count an answer's model tokens against its person's and chat's quotas."""
        if self.limits is None or user is None:
            return
        try:
            self.limits.charge(user, key, tokens)
        except Exception:  # a quota that cannot count must not cost the answer
            log.exception("could not count an answer's tokens")
