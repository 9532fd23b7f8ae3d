"""Answering one accepted message: the work that both deployments share.

The conversation service *accepts* a message (stores it with an answer job, see
:mod:`core.jobs`); a :class:`Responder` then answers the job wherever the model runs: in
the same process in the embedded deployment (:class:`InProcessAnswerer`), in a Celery
worker in the scaled one (:mod:`workers.tasks`). Either way the steps are the same::

    claim = responder.claim(message_id)          # who may answer, and may it be now?
    async for item in responder.run(claim): ...  # str deltas, then one Reply

``run`` builds the context from the store as it is when the job runs (so the answers to
earlier messages are in it), generates, and ends the job with the answer, or with an
apology when the model fails for good. A claim that finds the job ended yields the reply
it ended with, so a task that runs twice sends the same answer, never a second one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass, replace
from typing import Protocol

from core.context import ContextBuilder, MessageTooLong
from core.errors import GenerationError
from core.generator import GenerationRequest, Generator
from core.jobs import Claim, ClaimOutcome, Job, JobStatus
from core.moderation import SAFE_REPLY
from core.prompt_guard import without_canary
from core.safety import Safety
from core.sentiment import Sentiment, running_mood
from core.store import AnsweringStore
from core.streaming import Streamed
from core.turn_commands import CANCELLED, DROPPED, STOPPED_NOTE, StopCheck
from core.types import (
    ContextReport,
    Reply,
    ReplyKind,
    StoredMessage,
    UserProfile,
    UserRef,
)

__all__ = [
    "APOLOGY",
    "FEEDBACK_OFFER",
    "SET_ASIDE",
    "SHORT_ANSWER_TOKENS",
    "UPSET_GUIDANCE",
    "UPSET_MOOD",
    "Answerer",
    "InProcessAnswerer",
    "JobOptions",
    "Responder",
    "is_upset",
    "mood_of",
]

log = logging.getLogger(__name__)

APOLOGY = "Sorry, something went wrong while I was answering. Please try again in a moment."
SET_ASIDE = (
    "Sorry, I could not answer this message: trying to answer it failed several times, so I "
    "set it aside. Please rephrase it, or try again later."
)

UPSET_MOOD = -0.3
"""A running mood at or below this reads as frustrated or sad."""
UPSET_GUIDANCE = (
    "The user seems frustrated or upset. Start with one short sentence that acknowledges "
    "how they feel, then answer calmly and briefly."
)
FEEDBACK_OFFER = (
    "\n\n(If I did not help, tell me what you needed with /feedback bad followed by the "
    "answer you expected: I learn from it.)"
)
SHORT_ANSWER_TOKENS = 96
"""The longest answer for people who asked for short ones (``/profile length short``)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class JobOptions:
    """How answer jobs are run; built from the settings."""

    lease_seconds: float = 120.0
    """How long a runner holds a job before another may take it over (above the time limit)."""
    max_attempts: int = 3
    """Claims of one job before it is set aside as poisoned."""
    wait_seconds: float = 0.2
    """In-process: how often to look again while an earlier message is being answered."""


class Answerer(Protocol):
    """Gets an accepted message answered and streams the answer back."""

    def answer(self, message_id: int) -> Streamed[Reply]:
        """The reply to the stored message ``message_id`` (deltas, then one Reply)."""
        ...

    async def stop(self, message_id: int) -> None:
        """Ask whoever answers ``message_id`` to stop: its answer ends with what was shown."""
        ...


class Responder:
    """Claims answer jobs and answers them with the store's context and the generator."""

    def __init__(
        self,
        *,
        store: AnsweringStore,
        generator: Generator,
        context: ContextBuilder,
        max_new_tokens: int,
        history_turns: int,
        jobs: JobOptions | None = None,
        spell: _Speller | None = None,
        safety: Safety | None = None,
    ) -> None:
        self._store = store
        self.safety = safety or Safety()
        self._generator = generator
        self._context = context
        self._max_new_tokens = max_new_tokens
        self._history_turns = history_turns
        self.jobs = jobs or JobOptions()
        self._spell = spell or (lambda _platform, text: text)

    def claim(self, message_id: int) -> Claim:
        """Try to take the job of ``message_id`` (blocking: call it in a thread).

        A message whose files are not read yet (:mod:`core.intake`) WAITs: the process that
        reads them asks again once its text is in.
        """
        intake = self._store.intake(message_id)
        if intake is not None and not intake.read:
            return Claim(ClaimOutcome.WAIT)
        return self._store.claim_job(
            message_id,
            lease_seconds=self.jobs.lease_seconds,
            max_attempts=self.jobs.max_attempts,
        )

    def ended(self, claim: Claim) -> Reply | None:
        """The reply of a job that has ended (DONE, FAILED, SET_ASIDE), else ``None``."""
        ended = (ClaimOutcome.DONE, ClaimOutcome.FAILED, ClaimOutcome.SET_ASIDE)
        if claim.outcome not in ended or claim.job is None:
            return None
        return self.reply_for(claim.job)

    def reply_for(self, job: Job) -> Reply | None:
        """The reply a job ended with (read from the store), or ``None`` while it runs."""
        if not job.status.ended:
            return None
        if job.error == CANCELLED:
            return Reply(text=DROPPED)
        if job.status is JobStatus.DONE and job.answer_id is not None:
            answer = self._store.answer(job.answer_id)
            if answer is not None:
                return Reply(
                    kind=ReplyKind.ANSWER,
                    text=answer.message.text,
                    answer_id=answer.message.id,
                    model_version=answer.message.model_version,
                )
        return Reply(kind=ReplyKind.ERROR, text=SET_ASIDE if job.set_aside else APOLOGY)

    async def run(
        self, claim: Claim, stop: StopCheck | None = None
    ) -> AsyncGenerator[str | Reply, None]:
        """Answer a CLAIMED job: stream the answer and end the job with it.

        ``stop`` is asked before generating and between tokens: once it says so (/cancel),
        generation stops and the job ends with what was shown and
        :data:`core.turn_commands.STOPPED_NOTE` (before any text: failed, as cancelled).

        The model failing (:class:`GenerationError`) ends the job with an apology; other
        errors (the database down) propagate with the job still held, so that the caller
        may retry or let the lease expire.
        """
        assert claim.outcome is ClaimOutcome.CLAIMED
        assert claim.job is not None
        assert claim.token is not None
        job, token = claim.job, claim.token
        store = self._store
        asked = await asyncio.to_thread(store.message, job.message_id)
        if asked is None:  # forgotten between the claim and now
            await asyncio.to_thread(store.fail_job, job.message_id, "forgotten", token=token)
            return
        if stop is not None and stop():  # /cancel came before its turn: it gets no answer
            await asyncio.to_thread(store.fail_job, job.message_id, CANCELLED, token=token)
            await self._scrub(asked)
            yield DROPPED
            yield Reply(text=DROPPED)
            return
        try:
            context, max_new_tokens, upset = await asyncio.to_thread(
                self._prepare, asked, job.in_group
            )
        except MessageTooLong as exc:
            await asyncio.to_thread(store.fail_job, job.message_id, str(exc), token=token)
            await self._scrub(asked)
            yield str(exc)
            yield Reply(kind=ReplyKind.ERROR, text=str(exc))
            return
        stream = self._generator.generate(
            GenerationRequest(
                turns=context.turns,
                max_new_tokens=max_new_tokens,
                request_id=str(job.message_id),
            )
        )
        safety = self.safety
        gate = safety.gate(context.turns[0].content if context.turns else "")
        shown: list[str] = []
        stopped = False

        async def keep(
            text: str, blocked: str | None = None, version: str | None = None
        ) -> StoredMessage | None:
            """Store the answer (redacted), and the question redacted once answered."""
            stored = await asyncio.to_thread(
                store.finish_job,
                job.message_id,
                token,
                safety.clean(text),
                model_version=version or self._generator.model_version,
                context=without_canary(context, safety.guard),  # a per-process secret
                blocked_reason=blocked,
            )
            await self._scrub(asked)
            return stored

        try:
            async for delta in stream:
                for part in gate.feed(delta) if gate is not None else (delta,):
                    shown.append(part)
                    yield part
                if gate is not None and gate.blocked is not None:
                    await stream.aclose()
                    break
                if stop is not None and stop():
                    stopped = True
                    await stream.aclose()
                    break
            else:
                if gate is not None:
                    for part in gate.close():
                        shown.append(part)
                        yield part
        except GenerationError as exc:
            log.warning("answering message %s failed: %s", job.message_id, exc)
            partial = "".join(shown).strip()
            if partial:  # what the person saw stays the answer, as when they stop it
                await keep(partial)
            else:
                await asyncio.to_thread(store.fail_job, job.message_id, str(exc), token=token)
                await self._scrub(asked)
            apology = ("\n\n" if shown else "") + APOLOGY
            yield apology
            yield Reply(kind=ReplyKind.ERROR, text="".join(shown) + apology)
            return
        except (GeneratorExit, asyncio.CancelledError):
            # The reader went away (Ctrl-C in the console): what the person saw is kept
            # as the answer, so that the context stays true and feedback can name it.
            await stream.aclose()
            await keep("".join(shown).strip() or "…")
            raise
        blocked = gate.blocked if gate is not None else None
        note = ""
        if blocked is not None:
            log.warning("answer to message %s blocked: %s", job.message_id, blocked)
            text, version = SAFE_REPLY, self._generator.model_version
        elif stopped:
            log.info("answer to message %s stopped with /cancel", job.message_id)
            partial = "".join(shown).strip()
            note = ("\n\n" if partial else "") + STOPPED_NOTE
            text, version = partial + note, self._generator.model_version
            yield note
        else:
            result = stream.result
            safety.charge(asked.user, job.key, result.prompt_tokens + result.completion_tokens)
            # As the model wrote it: the person sees their own data; the store keeps it redacted.
            text, version = result.text or "…", result.model_version
        stored = await keep(text, blocked, version)
        if stored is None:
            # Another runner took the job over (this one was too slow); its answer stands.
            log.warning("message %s was answered by another runner", job.message_id)
            current = await asyncio.to_thread(self.claim, job.message_id)
            reply = self.ended(current)
            if reply is not None:
                yield reply
            return
        if blocked is not None:
            yield Reply(
                kind=ReplyKind.ANSWER,
                text=SAFE_REPLY,
                answer_id=stored.id,
                model_version=stored.model_version,
            )
            return
        # Someone having a bad time is told how to say what went wrong: that feedback is
        # what the nightly fine-tuning learns from.
        offer = self._spell(job.key.platform, FEEDBACK_OFFER) if upset and not note else ""
        if offer:
            yield offer
        yield Reply(
            kind=ReplyKind.ANSWER,
            text=text + offer,
            answer_id=stored.id,
            model_version=stored.model_version,
        )

    async def _scrub(self, asked: StoredMessage) -> None:
        """Once a question is answered (or failed), keep only its redacted text."""
        clean = self.safety.clean(asked.text)
        if clean != asked.text:
            await asyncio.to_thread(self._store.replace_text, asked.id, clean)

    def _prepare(self, asked: StoredMessage, group: bool) -> tuple[ContextReport, int, bool]:
        """The context, answer length and mood for answering ``asked`` (runs in a thread)."""
        store = self._store
        history = store.history_before(asked.id, self._history_turns)
        user = asked.user
        profile = store.profile(user) if user is not None else UserProfile()
        if profile.display_name is None and user is not None and user.display_name:
            profile = replace(profile, display_name=user.display_name)
        upset = user is not None and is_upset(mood_of(history, user, asked.sentiment))
        context = self._context.build(
            history=history,
            text=asked.text,
            speaker=user,
            profile=profile,
            group=group,
            guidance=(UPSET_GUIDANCE,) if upset else (),
        )
        max_new_tokens = self._max_new_tokens
        if upset or profile.preferences.get("length", "").lower() in ("short", "brief"):
            max_new_tokens = min(max_new_tokens, SHORT_ANSWER_TOKENS)
        return context, max_new_tokens, upset


class _Speller(Protocol):
    def __call__(self, platform: str, text: str) -> str: ...


class InProcessAnswerer:
    """The embedded deployment's answerer: the responder runs in this process."""

    def __init__(self, responder: Responder) -> None:
        self._responder = responder
        self._stopping: set[int] = set()
        """Messages whose answer /cancel stopped, until their run ends."""

    def answer(self, message_id: int) -> Streamed[Reply]:
        return Streamed(self._answer(message_id))

    async def stop(self, message_id: int) -> None:
        self._stopping.add(message_id)

    async def _answer(self, message_id: int) -> AsyncIterator[str | Reply]:
        responder = self._responder
        while True:
            claim = await asyncio.to_thread(responder.claim, message_id)
            if claim.outcome is ClaimOutcome.CLAIMED:
                try:
                    stop = lambda: message_id in self._stopping  # noqa: E731
                    async with aclosing(responder.run(claim, stop)) as answering:
                        async for item in answering:
                            yield item
                finally:
                    self._stopping.discard(message_id)
                return
            if claim.outcome in (ClaimOutcome.WAIT, ClaimOutcome.BUSY):
                # An earlier message of this conversation is still being answered here.
                await asyncio.sleep(responder.jobs.wait_seconds)
                continue
            reply = await asyncio.to_thread(responder.ended, claim)
            if reply is None:  # UNKNOWN: forgotten meanwhile
                reply = Reply(kind=ReplyKind.ERROR, text=APOLOGY)
            yield reply.text
            yield reply
            return


def mood_of(history: list[StoredMessage], user: UserRef, reading: Sentiment | None) -> float | None:
    """The person's running mood over their turns in this conversation, this one included."""
    mood: float | None = None
    me = (user.platform, user.id)
    for turn in history:
        if (
            turn.sentiment is not None
            and turn.user is not None
            and (turn.user.platform, turn.user.id) == me
        ):
            mood = running_mood(mood, turn.sentiment)
    return running_mood(mood, reading) if reading is not None else mood


def is_upset(mood: float | None) -> bool:
    """True when the running mood reads as frustrated or sad."""
    return mood is not None and mood <= UPSET_MOOD
