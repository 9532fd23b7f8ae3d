"""The conversation service: a message in, a streamed reply out.

Every adapter hands each :class:`core.types.Message` to :meth:`ConversationService.handle`
and renders what comes back. A message gets exactly one reply: an answer from the model,
a command's notice, or a short apology when something failed (the trace goes to the log).
The person's message is stored before the model starts, so nothing accepted is lost.

What a taken message owes is an :class:`core.accepted.Accepted`; the options and the
responder built from them are in :mod:`core.conversation_options`, and messages with files
go their own path (:mod:`core.file_messages`). All are importable from here as before.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from dataclasses import replace

from core.accepted import Accepted, ready
from core.access import REFUSAL
from core.answer_commands import thanks
from core.commands import CommandRegistry, parse_command
from core.conversation_options import ConversationOptions, build_responder, spell
from core.facts import extract_facts, merge_facts
from core.file_messages import FileMessages, unreadable
from core.media import MediaIntake
from core.metrics import MESSAGES, measured
from core.profile_commands import describe_profile
from core.prompt_guard import looks_like_injection
from core.responder import (
    APOLOGY,
    FEEDBACK_OFFER,
    SHORT_ANSWER_TOKENS,
    UPSET_GUIDANCE,
    Answerer,
    is_upset,
    mood_of,
)
from core.safety import Place, Safety
from core.sentiment import Sentiment, SentimentClassifier
from core.store import Store
from core.streaming import Streamed
from core.turn_commands import (
    CANCEL,
    NOTHING_TO_RETRY,
    RETRY,
    TurnCommands,
    retry_heading,
)
from core.types import (
    Feedback,
    Message,
    Rating,
    Reply,
    ReplyKind,
    Role,
    UserProfile,
    UserRef,
)

__all__ = [
    "APOLOGY",
    "FEEDBACK_OFFER",
    "SHORT_ANSWER_TOKENS",
    "UPSET_GUIDANCE",
    "Accepted",
    "ConversationOptions",
    "ConversationService",
    "build_responder",
    "describe_profile",
    "is_upset",
    "mood_of",
    "spell",
]

log = logging.getLogger(__name__)


class ConversationService:
    """Answers messages with context from the store, and runs the core's commands.

    Answering is two steps, so that an adapter can acknowledge its platform only once the
    message is safely stored: :meth:`accept` (store it and open its answer job) and
    :meth:`reply` (stream the reply). :meth:`handle` does both. Who answers is the
    ``answerer``: the model in this process (:class:`core.responder.InProcessAnswerer`), or
    Celery workers; commands run from the ``commands`` registry.
    """

    def __init__(
        self,
        *,
        store: Store,
        options: ConversationOptions,
        answerer: Answerer,
        commands: CommandRegistry,
        safety: Safety,
        sentiment: SentimentClassifier | None = None,
        media: MediaIntake | None = None,
    ) -> None:
        """Every part is built once, by the composition root (:mod:`config.wiring`)."""
        self._store = store
        self._options = options
        self.answerer = answerer
        """Who answers accepted messages: the model in this process, or Celery workers."""
        self.commands = commands
        self.safety = safety
        self._sentiment = sentiment
        self.media = media
        """Reads voice messages and images (``None``: they get an explanation only)."""
        self._turns = TurnCommands(store, answerer.stop, history_turns=options.history_turns)
        """/retry and /cancel, which reach into answering (:mod:`core.turn_commands`)."""

    @property
    def store(self) -> Store:
        """Where conversations, jobs and profiles are kept."""
        return self._store

    def handle(self, message: Message) -> Streamed[Reply]:
        """Reply to one message; iterate the result for streamed text."""
        return Streamed(self._handle(message))

    async def _handle(self, message: Message) -> AsyncIterator[str | Reply]:
        try:
            accepted = await self.accept(message)
        except Exception:
            # Storing failed: the person is told, and the platform may deliver it again.
            log.exception("accepting a message in %s failed", message.key.encode())
            yield APOLOGY
            yield Reply(kind=ReplyKind.ERROR, text=APOLOGY)
            return
        async with aclosing(self.reply(accepted)) as replies:
            async for delta in replies:
                yield delta
            result = replies.result
        if accepted.media and accepted.message_id is not None:
            await asyncio.to_thread(self._store.close_intake, accepted.message_id)
        yield result

    async def accept(self, message: Message) -> Accepted:
        """Take a message: store it with its answer job, or decide its reply at once.

        Raises :class:`core.errors.StoreError` when the database is down: the adapter then
        refuses the event so that the platform delivers it again.
        """
        MESSAGES.labels(message.platform).inc()
        if (refusal := await self.safety.admit(message)) is not None:
            return ready(message, refusal, kind=ReplyKind.ERROR)
        text = message.text.strip()
        if message.attachments and self.media is not None:
            refusal = self.media.check(message.attachments)
            if refusal is not None:
                return ready(message, refusal, kind=ReplyKind.ERROR)
            if all(item.ref is not None for item in message.attachments):
                return await self._files().accept(message)
            return Accepted(message, media=message.attachments)
        if message.media:
            return ready(message, unreadable(message, reading=self.media is not None))
        if not text:
            return ready(
                message, "I got an empty message. Type a question, or /help to see what I can do."
            )
        if len(text) > self._options.max_message_chars:
            return ready(
                message,
                f"Your message is too long: {len(text):,} characters, and I take at most "
                f"{self._options.max_message_chars:,}. Please shorten it or split it into parts.",
                kind=ReplyKind.ERROR,
            )
        return await self._accept_text(message, text)

    async def _accept_text(self, message: Message, text: str) -> Accepted:
        """Take a message's text (typed, or heard or read from its files): run or store it."""
        if (command := parse_command(text)) is not None:
            if command.name == RETRY:
                return await self._accept_retry(message)
            return Accepted(message, command=command)
        screening = await self.safety.screen(message, text)
        if screening.refusal is not None:
            return ready(message, screening.refusal, kind=ReplyKind.ERROR)
        try:
            reading = await self._read_sentiment(text)
            asked = await asyncio.to_thread(
                self._store.append,
                message.key,
                Role.USER,
                text,
                user=message.user,
                platform_message_id=message.message_id,
                sentiment=reading,
                expects_answer=True,
                in_group=message.is_group,
            )
        except BaseException:
            await self.safety.finish(message.user, screening.busy)
            raise
        try:
            await asyncio.to_thread(self._learn, message.user, text, asked.id)
        except Exception:  # learning a fact is a bonus; the message is accepted
            log.exception("learning from message %s failed", asked.id)
        return Accepted(message, message_id=asked.id, busy=screening.busy)

    async def _accept_retry(self, message: Message) -> Accepted:
        """/retry: the sender's last message here, stored again to be answered anew."""
        asked = await self._turns.last_question(message)
        if asked is None:
            return ready(message, NOTHING_TO_RETRY)
        accepted = await self._accept_text(replace(message, text=asked.text), asked.text)
        return replace(accepted, heading=retry_heading(asked.text))

    def reply(self, accepted: Accepted) -> Streamed[Reply]:
        """The reply to an accepted message; iterate the result for streamed text."""
        return Streamed(measured(self._reply(accepted)))

    async def _reply(self, accepted: Accepted) -> AsyncGenerator[str | Reply, None]:
        message = accepted.message
        if accepted.media:
            async with aclosing(self._files().reply(accepted)) as replies:
                async for item in replies:
                    yield item
            return
        if accepted.reply is not None:
            reply = accepted.reply
        elif accepted.command is not None:
            try:
                if accepted.command.name == CANCEL:
                    reply = await self._turns.cancel(message)
                else:
                    reply = await self.commands.run(message, accepted.command)
            except Exception:
                log.exception("command /%s failed", accepted.command.name)
                reply = Reply(kind=ReplyKind.ERROR, text=APOLOGY)
        else:
            assert accepted.message_id is not None
            shown: list[str] = [accepted.heading] if accepted.heading else []
            place = self._place(accepted)
            if accepted.heading:
                yield accepted.heading
            try:
                await self.safety.take_turn(message.user, accepted.busy, place)
                async with aclosing(self.answerer.answer(accepted.message_id)) as answering:
                    async for item in answering:
                        shown.append(item)
                        yield item
                    result = answering.result
                    yield replace(result, text=accepted.heading + result.text)
            except Exception:
                # The message is stored: the person gets one reply, and the log the trace.
                log.exception("answering message %s failed", accepted.message_id)
                apology = ("\n\n" if shown else "") + APOLOGY
                yield apology
                yield Reply(kind=ReplyKind.ERROR, text="".join(shown) + apology)
            finally:
                await self.safety.finish(message.user, accepted.busy, place)
            return
        reply = replace(reply, text=self._spell(message.platform, reply.text))
        yield reply.text
        yield reply

    def _files(self) -> FileMessages:
        """The path of a message with files: accepted, read, then answered like a text."""
        assert self.media is not None
        return FileMessages(
            store=self._store,
            media=self.media,
            safety=self.safety,
            max_chars=self._options.max_message_chars,
            learn=self._learn,
            sentiment=self._read_sentiment,
            spell=self._spell,
            accept_text=self._accept_text,
            replies=self._reply,
        )

    def _place(self, accepted: Accepted) -> Place:
        """Where the answer stands in its conversation (for the person's turn)."""
        key = accepted.message.key
        return Place(
            accepted.message_id or 0,
            lambda: self._store.next_job(key),
            private=not accepted.message.is_group,
        )

    async def rate(self, answer_id: int, user: UserRef, rating: Rating) -> Reply:
        """A 👍/👎 on one answer; a person's later rating replaces their earlier one."""
        answer = await asyncio.to_thread(self._store.answer, answer_id)
        if answer is not None and not self.safety.access.allows_in(user, answer.conversation):
            return Reply(kind=ReplyKind.ERROR, text=REFUSAL)
        if answer is None:
            return Reply(
                text="I can't find that answer any more, so I could not record your rating."
            )
        await asyncio.to_thread(
            self._store.save_feedback, Feedback(answer_id=answer_id, user=user, rating=rating)
        )
        return Reply(text=thanks(rating))

    async def _read_sentiment(self, text: str) -> Sentiment | None:
        """How the message reads; ``None`` without a classifier or when it fails."""
        if self._sentiment is None:
            return None
        try:
            [reading] = await asyncio.to_thread(self._sentiment.classify, [text])
        except Exception:  # a broken classifier must not cost the person their answer
            log.exception("reading the sentiment of a message failed")
            return None
        return reading

    def _spell(self, platform: str, text: str) -> str:
        return spell(self._options, platform, text)

    def _learn(self, user: UserRef, text: str, message_id: int) -> UserProfile:
        """The person's profile, with any facts they just shared learned (runs in a thread)."""
        profile = self._store.profile(user)
        if not profile.learn_facts or looks_like_injection(text):
            return profile  # nothing that reads like instructions becomes a profile line
        learned = merge_facts(profile, extract_facts(self.safety.clean(text), message_id))
        if learned is not profile:
            self._store.save_profile(user, learned)
        return learned
