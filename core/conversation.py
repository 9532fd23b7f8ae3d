"""The conversation service: a message in, a streamed reply out.

Every adapter hands each :class:`core.types.Message` to :meth:`ConversationService.handle`
and renders what comes back. A message gets exactly one reply: an answer from the model,
a command's notice, or a short apology when something failed (the trace goes to the log).
The person's message is stored before the model starts, so nothing accepted is lost.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from contextlib import aclosing
from dataclasses import dataclass, field, replace

from core.access import REFUSAL
from core.answer_commands import thanks
from core.commands import COMMANDS, Command, CommandRegistry, parse_command
from core.context import ContextBuilder
from core.facts import extract_facts, merge_facts
from core.generator import Generator, TokenCounter
from core.intake import FileRef
from core.media import Attachment, MediaError, MediaIntake, heading, nothing_read, turn_text
from core.metrics import ANSWER_SECONDS, FIRST_TOKEN_SECONDS, MESSAGES, REPLIES
from core.profile_commands import describe_profile
from core.prompt_guard import looks_like_injection
from core.reading import StoredFiles
from core.responder import (
    APOLOGY,
    FEEDBACK_OFFER,
    SHORT_ANSWER_TOKENS,
    UPSET_GUIDANCE,
    Answerer,
    JobOptions,
    Responder,
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

_COMMAND_MENTION = re.compile(rf"(?<![\w/])/({'|'.join(COMMANDS)})\b")


@dataclass(frozen=True, slots=True, kw_only=True)
class ConversationOptions:
    """How conversations are run; built from the settings by the wiring."""

    system_prompt: str
    prompt_budget: int
    assistant_name: str = "Parley"
    max_new_tokens: int
    history_turns: int = 50
    max_message_chars: int = 8000
    profile_tokens: int | None = None
    command_prefixes: Mapping[str, str] = field(default_factory=lambda: {"slack": "/parley "})
    """How each platform spells a command, where it is not ``/name`` (Slack has one /parley)."""


@dataclass(frozen=True, slots=True)
class Accepted:
    """A message the service has taken (:meth:`ConversationService.accept`).

    Exactly one of four: a reply that is ready (``reply``), a command to run
    (``command``), a stored message whose answer is owed (``message_id``), or files to
    read first (``media``). Files with a platform reference are stored with the message
    (``message_id`` and ``media``, see :mod:`core.intake`): read when the message's turn
    comes, the text read replacing it; others are read after the acknowledgement and then
    stored as text.
    """

    message: Message
    reply: Reply | None = None
    command: Command | None = None
    message_id: int | None = None
    media: tuple[Attachment, ...] = ()
    busy: str | None = None
    """The answer's place in its person's queue (one answer at a time), given back when it ends."""
    heading: str = ""
    """Shown before the answer (a /retry's: which message it answers again)."""


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
            return self._ready(message, refusal, kind=ReplyKind.ERROR)
        text = message.text.strip()
        if message.attachments and self.media is not None:
            refusal = self.media.check(message.attachments)
            if refusal is not None:
                return self._ready(message, refusal, kind=ReplyKind.ERROR)
            if all(item.ref is not None for item in message.attachments):
                return await self._accept_files(message)
            return Accepted(message, media=message.attachments)
        if message.media:
            kinds = " and ".join(dict.fromkeys(message.media))
            return self._ready(
                message,
                (
                    f"I can only read text for now, so I can't open {kinds} messages yet. "
                    if self.media is None
                    else "I read text, voice messages, audio files and images, but I can't "
                    f"open {kinds} messages. "
                )
                + "Please type your question"
                + (" (I did not read the caption)." if text else "."),
            )
        if not text:
            return self._ready(
                message, "I got an empty message. Type a question, or /help to see what I can do."
            )
        if len(text) > self._options.max_message_chars:
            return self._ready(
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
            return self._ready(message, screening.refusal, kind=ReplyKind.ERROR)
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
            return self._ready(message, NOTHING_TO_RETRY)
        accepted = await self._accept_text(replace(message, text=asked.text), asked.text)
        return replace(accepted, heading=retry_heading(asked.text))

    async def _accept_files(self, message: Message) -> Accepted:
        """Store a message with files, its job and its intake: read once it is its turn.

        It holds the person's turn (one answer at a time) from now, as a text would.
        """
        assert self.media is not None
        files = tuple(FileRef.of(item) for item in message.attachments)
        screening = await self.safety.screen(message, message.text.strip())
        if screening.refusal is not None:
            return self._ready(message, screening.refusal, kind=ReplyKind.ERROR)
        try:
            asked = await asyncio.to_thread(
                self._store.store_with_files, message, files, self.media.lease_seconds
            )
        except BaseException:
            await self.safety.finish(message.user, screening.busy)
            raise
        return Accepted(
            message, message_id=asked.id, media=message.attachments, busy=screening.busy
        )

    def reply(self, accepted: Accepted) -> Streamed[Reply]:
        """The reply to an accepted message; iterate the result for streamed text."""
        return Streamed(self._measured(self._reply(accepted)))

    async def _measured(
        self, replies: AsyncGenerator[str | Reply, None]
    ) -> AsyncIterator[str | Reply]:
        started = time.perf_counter()
        first = True
        async with aclosing(replies):
            async for item in replies:
                if isinstance(item, Reply):
                    REPLIES.labels(str(item.kind)).inc()
                    if item.kind is ReplyKind.ANSWER:
                        ANSWER_SECONDS.observe(time.perf_counter() - started)
                elif first:
                    first = False
                    FIRST_TOKEN_SECONDS.observe(time.perf_counter() - started)
                yield item

    async def _reply(self, accepted: Accepted) -> AsyncGenerator[str | Reply, None]:
        message = accepted.message
        if accepted.media and accepted.message_id is not None:
            async with aclosing(self._read_stored(accepted, accepted.message_id)) as replies:
                async for item in replies:
                    yield item
            return
        if accepted.media:
            async with aclosing(self._read_then_reply(accepted)) as replies:
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

    async def _read_then_reply(self, accepted: Accepted) -> AsyncGenerator[str | Reply, None]:
        """Read the message's files, take the text as the person's turn, and answer it.

        The answer starts with what was heard or read, so that the person can correct it.
        """
        assert self.media is not None
        message = accepted.message
        try:
            readings = await self.media.read(accepted.media)
        except MediaError as exc:
            log.info("refused a %s in %s: %s", exc.reason, message.key.encode(), exc)
            yield str(exc)
            yield Reply(kind=ReplyKind.ERROR, text=str(exc))
            return
        empty = nothing_read(readings)
        if empty is not None:
            yield empty
            yield Reply(text=empty)
            return
        text = turn_text(readings, message.text)
        said = replace(message, text=text, attachments=())
        if len(text) > self._options.max_message_chars:
            taken = self._ready(
                said,
                f"That is {len(text):,} characters, and I take at most "
                f"{self._options.max_message_chars:,}. Please send a shorter one.",
                kind=ReplyKind.ERROR,
            )
        else:
            taken = await self._accept_text(said, text)
        first = heading(readings)
        yield first
        async with aclosing(self._reply(taken)) as replies:
            async for item in replies:
                yield replace(item, text=first + item.text) if isinstance(item, Reply) else item

    def _place(self, accepted: Accepted) -> Place:
        """Where the answer stands in its conversation (for the person's turn)."""
        key = accepted.message.key
        return Place(
            accepted.message_id or 0,
            lambda: self._store.next_job(key),
            private=not accepted.message.is_group,
        )

    async def _read_stored(
        self, accepted: Accepted, message_id: int
    ) -> AsyncGenerator[str | Reply, None]:
        """Read the files of a stored message (its intake), then answer its job.

        The intake's lease is renewed meanwhile, so that no other process takes it over.
        """
        assert self.media is not None
        files = StoredFiles(
            store=self._store,
            media=self.media,
            safety=self.safety,
            max_chars=self._options.max_message_chars,
            learn=self._learn,
            sentiment=self._read_sentiment,
        )
        renewing = asyncio.ensure_future(files.renew(message_id))
        try:
            intake = await asyncio.to_thread(self._store.intake, message_id)
            taken = replace(accepted, media=())
            first = ""
            if intake is not None and not intake.read:
                first, said = await files.read_into(accepted, message_id)
                if isinstance(said, Reply):
                    reply = replace(said, text=self._spell(accepted.message.platform, said.text))
                    yield reply.text
                    yield reply
                    return
                taken = replace(taken, message=said)
                yield first
            async with aclosing(self._reply(taken)) as replies:
                async for item in replies:
                    yield replace(item, text=first + item.text) if isinstance(item, Reply) else item
        finally:
            renewing.cancel()

    def _ready(self, message: Message, text: str, kind: ReplyKind = ReplyKind.NOTICE) -> Accepted:
        return Accepted(message, reply=Reply(kind=kind, text=text))

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


def spell(options: ConversationOptions, platform: str, text: str) -> str:
    """``text`` with commands spelled the way ``platform`` types them."""
    prefix = options.command_prefixes.get(platform)
    if prefix is None:
        return text
    return _COMMAND_MENTION.sub(lambda m: prefix + m.group(1), text)


def build_responder(
    *,
    store: Store,
    generator: Generator,
    tokens: TokenCounter,
    options: ConversationOptions,
    safety: Safety,
    jobs: JobOptions | None = None,
) -> Responder:
    """The responder that answers the conversations run with ``options``."""
    return Responder(
        store=store,
        generator=generator,
        context=ContextBuilder(
            tokens,
            safety.instructions(options.system_prompt),
            options.prompt_budget,
            options.assistant_name,
            profile_budget=options.profile_tokens,
        ),
        max_new_tokens=options.max_new_tokens,
        history_turns=options.history_turns,
        jobs=jobs,
        spell=lambda platform, text: spell(options, platform, text),
        safety=safety,
    )
