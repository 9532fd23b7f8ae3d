"""``/retry`` and ``/cancel``: commands about the turn in progress, not about stored answers.

:class:`TurnCommands` serves both for :class:`core.conversation.ConversationService`,
which runs them itself because both reach into answering:

- ``/retry`` answers the person's last message in the conversation again. The service
  stores a new copy of that message with its own answer job, so the new answer goes the
  answering path of any message (limits, moderation, one reply) and gets its own answer
  id and 👍/👎 buttons; the earlier answer stays stored. :meth:`TurnCommands.last_question`
  finds the message.
- ``/cancel`` stops the person's answer in progress: the answerer is told to stop
  (:meth:`core.responder.Answerer.stop`: a flag read between tokens, in this process or
  through Redis), and the responder ends the job with what was shown plus
  :data:`STOPPED_NOTE`. The person's messages that wait for an answer are told to stop too:
  whoever claims one finds the flag before generating, fails its job with :data:`CANCELLED`
  and gives :data:`DROPPED` as its one reply (the claim decides, so no answer is cut twice).
  The inbox runs ``/cancel`` at once rather than in the conversation's turn
  (:func:`stops_an_answer`), since that turn is the answer it stops.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Protocol

from core.commands import parse_command
from core.jobs import Job, JobStatus, JobStore
from core.store import ConversationStore
from core.types import Message, Reply, Role, StoredMessage

__all__ = [
    "CANCEL",
    "CANCELLED",
    "DROPPED",
    "NOTHING_TO_CANCEL",
    "NOTHING_TO_RETRY",
    "RETRY",
    "STOPPED_NOTE",
    "TURN_COMMANDS",
    "StopCheck",
    "TurnCommands",
    "TurnJobStore",
    "cancelled",
    "retry_heading",
    "stops_an_answer",
]

RETRY = "retry"
CANCEL = "cancel"
TURN_COMMANDS = (RETRY, CANCEL)
"""The commands of this module (their /help lines are in :data:`core.commands.COMMANDS`)."""

STOPPED_NOTE = "(stopped)"
"""Ends an answer stopped with /cancel: what was shown stays the answer."""
CANCELLED = "cancelled with /cancel"
"""The error of the job of a waiting message that /cancel dropped."""
DROPPED = "(Cancelled before I answered it.)"
"""The one reply of a message dropped by /cancel."""
NOTHING_TO_CANCEL = "Nothing to cancel."
NOTHING_TO_RETRY = "There is no message of yours to answer again yet in this conversation."
_QUOTE_CHARS = 60

StopCheck = Callable[[], bool]
"""Asked between tokens while answering: True once the answer should stop."""


def stops_an_answer(message: Message) -> bool:
    """True for ``/cancel``, which must not wait behind the answer it stops."""
    command = parse_command(message.text.strip())
    return command is not None and command.name == CANCEL


def retry_heading(question: str) -> str:
    """What a retried answer starts with, so that the person sees which message it answers."""
    quote = " ".join(question.split())
    if len(quote) > _QUOTE_CHARS:
        quote = quote[: _QUOTE_CHARS - 1].rstrip() + "…"
    return f"🔁 Another answer to “{quote}”:\n\n"


class TurnJobStore(ConversationStore, JobStore, Protocol):
    """What the turn commands read: the conversation's turns and their answer jobs."""


class TurnCommands:
    """Finds what ``/retry`` answers again, and runs ``/cancel``."""

    def __init__(
        self,
        store: TurnJobStore,
        stop: Callable[[int], Awaitable[None]],
        *,
        history_turns: int,
    ) -> None:
        """``stop(message_id)`` tells whoever answers that message to stop now."""
        self._store = store
        self._stop = stop
        self._history_turns = history_turns

    async def last_question(self, message: Message) -> StoredMessage | None:
        """The sender's latest message in this conversation (since the last /reset)."""
        turns = await asyncio.to_thread(self._store.history, message.key, self._history_turns)
        return next((t for t in reversed(turns) if _sent_by(t, message)), None)

    async def cancel(self, message: Message, args: str = "") -> Reply:
        """Stop the sender's answer in progress and drop their messages waiting for one."""
        jobs = await asyncio.to_thread(self._open_jobs, message)
        for job in jobs:
            await self._stop(job.message_id)
        stopped = sum(job.status is JobStatus.RUNNING for job in jobs)
        return Reply(text=cancelled(stopped, len(jobs) - stopped))

    def _open_jobs(self, message: Message) -> list[Job]:
        """The sender's messages here whose answer has not ended, oldest first (in a thread)."""
        turns = self._store.history(message.key, self._history_turns)
        jobs = (self._store.job(t.id) for t in turns if _sent_by(t, message))
        return [job for job in jobs if job is not None and not job.status.ended]


def cancelled(stopped: int, dropped: int) -> str:
    """The reply to /cancel, saying what it stopped and what it dropped."""
    if not stopped and not dropped:
        return NOTHING_TO_CANCEL
    waiting = (
        "your message that was waiting for an answer"
        if dropped == 1
        else f"your {dropped} messages that were waiting for answers"
    )
    if not dropped:
        return "OK, I stopped my answer."
    if not stopped:
        return f"OK, I dropped {waiting}."
    return f"OK, I stopped my answer and dropped {waiting}."


def _sent_by(turn: StoredMessage, message: Message) -> bool:
    """Whether a stored turn is a message from the sender of ``message``."""
    user = turn.user
    return (
        turn.role is Role.USER
        and user is not None
        and (user.platform, user.id) == (message.user.platform, message.user.id)
    )
