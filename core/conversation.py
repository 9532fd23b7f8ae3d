"""The conversation service: a message in, a streamed reply out.

Every adapter hands each :class:`core.types.Message` to :meth:`ConversationService.handle`
and renders what comes back. A message gets exactly one reply: an answer from the model,
a command's notice, or a short apology when something failed (the trace goes to the log).
The person's message is stored before the model starts, so nothing accepted is lost.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from contextlib import aclosing
from dataclasses import dataclass, field, replace

from core.commands import (
    COMMANDS,
    PROFILE_FIELDS,
    Command,
    parse_command,
    parse_feedback,
    parse_profile,
)
from core.context import ContextBuilder, MessageTooLong
from core.generator import GenerationRequest, Generator, TokenCounter
from core.metrics import ANSWER_SECONDS, FIRST_TOKEN_SECONDS, MESSAGES, REPLIES
from core.store import Store
from core.streaming import Streamed
from core.types import (
    Feedback,
    Message,
    Rating,
    Reply,
    ReplyKind,
    Role,
    StoredMessage,
    UserProfile,
    UserRef,
)

__all__ = ["ConversationOptions", "ConversationService", "describe_profile", "explain_context"]

log = logging.getLogger(__name__)

APOLOGY = "Sorry, something went wrong while I was answering. Please try again in a moment."


@dataclass(frozen=True, slots=True, kw_only=True)
class ConversationOptions:
    """How conversations are run; built from the settings by the wiring."""

    system_prompt: str
    prompt_budget: int
    assistant_name: str = "Parley"
    max_new_tokens: int
    history_turns: int = 50
    max_message_chars: int = 8000
    extra_commands: Mapping[str, str] = field(default_factory=dict)


class ConversationService:
    """Answers messages with context from the store, and runs the core's commands."""

    def __init__(
        self,
        *,
        store: Store,
        generator: Generator,
        tokens: TokenCounter,
        options: ConversationOptions,
    ) -> None:
        self._store = store
        self._generator = generator
        self._options = options
        self._context = ContextBuilder(
            tokens, options.system_prompt, options.prompt_budget, options.assistant_name
        )

    def handle(self, message: Message) -> Streamed[Reply]:
        """Reply to one message; iterate the result for streamed text."""
        return Streamed(self._measured(message))

    async def _measured(self, message: Message) -> AsyncIterator[str | Reply]:
        MESSAGES.labels(message.platform).inc()
        started = time.perf_counter()
        first = True
        async with aclosing(self._handle(message)) as replies:
            async for item in replies:
                if isinstance(item, Reply):
                    REPLIES.labels(str(item.kind)).inc()
                    if item.kind is ReplyKind.ANSWER:
                        ANSWER_SECONDS.observe(time.perf_counter() - started)
                elif first:
                    first = False
                    FIRST_TOKEN_SECONDS.observe(time.perf_counter() - started)
                yield item

    def should_answer(self, message: Message) -> bool:
        """Private chats get an answer to everything; groups when Parley is addressed."""
        if not message.is_group:
            return True
        addressed = message.mentions_bot or message.reply_to_bot
        return addressed or parse_command(message.text.strip()) is not None

    async def first_delivery(self, platform: str, event_id: str) -> bool:
        """True the first time a platform event arrives; False for redeliveries and retries.

        Raises :class:`core.errors.StoreError` when the database is down: the caller must
        then refuse the event so that the platform delivers it again.
        """
        return await asyncio.to_thread(self._store.claim_event, platform, event_id)

    async def delivered(self, answer_id: int, platform_message_id: str) -> None:
        """Record which platform message shows an answer, so replies to it can name it."""
        await asyncio.to_thread(self._store.mark_delivered, answer_id, platform_message_id)

    async def rate(self, answer_id: int, user: UserRef, rating: Rating) -> Reply:
        """A 👍/👎 on one answer; a person's later rating replaces their earlier one."""
        answer = await asyncio.to_thread(self._store.answer, answer_id)
        if answer is None:
            return Reply(
                text="I can't find that answer any more, so I could not record your rating."
            )
        await asyncio.to_thread(
            self._store.save_feedback, Feedback(answer_id=answer_id, user=user, rating=rating)
        )
        return Reply(text=_thanks(rating))

    async def _handle(self, message: Message) -> AsyncGenerator[str | Reply, None]:
        text = message.text.strip()
        if message.media:
            kinds = " and ".join(dict.fromkeys(message.media))
            reply = Reply(
                text=f"I can only read text for now, so I can't open {kinds} messages yet. "
                "Please type your question" + (" (I did not read the caption)." if text else ".")
            )
        elif not text:
            reply = Reply(
                text="I got an empty message. Type a question, or /help to see what I can do."
            )
        elif len(text) > self._options.max_message_chars:
            reply = Reply(
                kind=ReplyKind.ERROR,
                text=f"Your message is too long: {len(text):,} characters, and I take at most "
                f"{self._options.max_message_chars:,}. Please shorten it or split it into parts.",
            )
        elif (command := parse_command(text)) is not None:
            try:
                reply = await self._command(message, command)
            except Exception:
                log.exception("command /%s failed", command.name)
                reply = Reply(kind=ReplyKind.ERROR, text=APOLOGY)
        else:
            shown = False
            try:
                async with aclosing(self._answer(message, text)) as answering:
                    async for item in answering:
                        shown = shown or isinstance(item, str)
                        yield item
            except Exception:
                # The message is stored (or its storing failed and the platform may resend):
                # either way the person gets one reply, and the log gets the trace.
                log.exception("answering a message in %s failed", message.key.encode())
                yield ("\n\n" if shown else "") + APOLOGY
                yield Reply(kind=ReplyKind.ERROR, text=APOLOGY)
            return
        yield reply.text
        yield reply

    async def _answer(self, message: Message, text: str) -> AsyncGenerator[str | Reply, None]:
        key = message.key
        store = self._store
        asked = await asyncio.to_thread(
            store.append,
            key,
            Role.USER,
            text,
            user=message.user,
            platform_message_id=message.message_id,
        )
        try:
            history = await asyncio.to_thread(store.history, key, self._options.history_turns + 1)
            history = [turn for turn in history if turn.id != asked.id]
            profile = await asyncio.to_thread(store.profile, message.user)
            if profile.display_name is None and message.user.display_name:
                profile = replace(profile, display_name=message.user.display_name)
            context = self._context.build(
                history=history,
                text=text,
                speaker=message.user,
                profile=profile,
                group=message.is_group,
            )
        except MessageTooLong as exc:
            yield str(exc)
            yield Reply(kind=ReplyKind.ERROR, text=str(exc))
            return
        stream = self._generator.generate(
            GenerationRequest(
                turns=context.turns,
                max_new_tokens=self._options.max_new_tokens,
                request_id=str(asked.id),
            )
        )
        shown: list[str] = []
        try:
            async for delta in stream:
                shown.append(delta)
                yield delta
        finally:
            if shown and not stream.finished:
                # Stopped or failed part-way: what the person saw is kept as the answer,
                # so that the context stays true and feedback can name it.
                await stream.aclose()
                partial = "".join(shown).strip()
                await asyncio.to_thread(
                    store.append,
                    key,
                    Role.ASSISTANT,
                    partial,
                    model_version=self._generator.model_version,
                    context=context,
                )
        result = stream.result
        answer_text = result.text or "…"
        stored = await asyncio.to_thread(
            store.append,
            key,
            Role.ASSISTANT,
            answer_text,
            model_version=result.model_version,
            context=context,
        )
        yield Reply(
            kind=ReplyKind.ANSWER,
            text=answer_text,
            answer_id=stored.id,
            model_version=result.model_version,
        )

    async def _command(self, message: Message, command: Command) -> Reply:
        name = command.name
        if name == "help":
            return Reply(text=self._help())
        if name == "start":
            return Reply(text=f"Hi! I'm {self._options.assistant_name}. {self._help()}")
        if name == "profile":
            return await self._profile(message, command.args)
        if name == "forget":
            removed = await asyncio.to_thread(self._store.forget, message.user)
            return Reply(
                text="Done: I deleted everything I held about you: your messages, feedback "
                f"and profile ({removed} item{'s' if removed != 1 else ''})."
            )
        if name == "reset":
            await asyncio.to_thread(self._store.reset, message.key)
            return Reply(
                text="Fresh start: I no longer see our earlier messages. (Your feedback is kept.)"
            )
        if name == "feedback":
            return await self._feedback(message, command.args)
        if name == "explain":
            return await self._explain(message)
        return Reply(text=f"I don't know the command /{name}. {self._help()}")

    def _help(self) -> str:
        commands = {**COMMANDS, **self._options.extra_commands}
        lines = [f"/{name} — {about}" for name, about in commands.items()]
        return "Ask me anything, or use a command:\n" + "\n".join(lines)

    async def _last_answer(self, message: Message) -> StoredMessage | None:
        history = await asyncio.to_thread(
            self._store.history, message.key, self._options.history_turns
        )
        return next((t for t in reversed(history) if t.role is Role.ASSISTANT), None)

    async def _feedback(self, message: Message, args: str) -> Reply:
        parsed = parse_feedback(args)
        if parsed is None:
            return Reply(
                text="Usage: /feedback good or /feedback bad [what the answer should have been]. "
                "For example: /feedback bad The meeting is on Tuesday."
            )
        answer = None
        if message.reply_to is not None:
            named = await asyncio.to_thread(
                self._store.find_by_platform_id, message.key, message.reply_to
            )
            answer = named if named is not None and named.role is Role.ASSISTANT else None
        if answer is None:
            answer = await self._last_answer(message)
        if answer is None:
            return Reply(text="There is no answer of mine to rate yet in this conversation.")
        feedback = Feedback(
            answer_id=answer.id,
            user=message.user,
            rating=parsed.rating,
            correction=parsed.correction,
        )
        await asyncio.to_thread(self._store.save_feedback, feedback)
        thanks = _thanks(parsed.rating)
        if parsed.correction:
            thanks += " I saved your correction; it will help me learn."
        return Reply(text=thanks)

    async def _profile(self, message: Message, args: str) -> Reply:
        parsed = parse_profile(args)
        if parsed is None:
            fields = ", ".join(PROFILE_FIELDS)
            return Reply(
                text=f"Usage: /profile to see it, /profile FIELD VALUE to set one of {fields} "
                "(e.g. /profile length short), /profile clear [FIELD] to clear."
            )
        user = message.user
        profile = await asyncio.to_thread(self._store.profile, user)
        if parsed.action == "show":
            return Reply(text=describe_profile(profile))
        if parsed.action == "clear" and parsed.field is None:
            profile = UserProfile()
        else:
            profile = _set_field(profile, parsed.field or "", parsed.value)
        await asyncio.to_thread(self._store.save_profile, user, profile)
        return Reply(text="Saved. " + describe_profile(profile))

    async def _explain(self, message: Message) -> Reply:
        answer = await self._last_answer(message)
        if answer is None or answer.context is None:
            return Reply(
                text="There is nothing to explain yet: I have not answered in this conversation."
            )
        return Reply(text=explain_context(answer))


def explain_context(answer: StoredMessage) -> str:
    """A short account of what went into an answer's prompt."""
    report = answer.context
    assert report is not None
    lines = [
        f"My last answer came from {answer.model_version or 'the model'} and used "
        f"{report.prompt_tokens} of {report.budget_tokens} prompt tokens:"
    ]
    for segment in report.segments:
        if not segment.included:
            continue
        lines.append(f"• {segment.kind} — {segment.label} ({segment.tokens} tokens)")
    if report.dropped_turns:
        lines.append(f"{report.dropped_turns} older turn(s) did not fit and were left out.")
    return "\n".join(lines)


def _thanks(rating: Rating) -> str:
    good = rating is Rating.GOOD
    return "Thanks, noted that my answer was " + ("helpful." if good else "not good.")


def describe_profile(profile: UserProfile) -> str:
    """What Parley knows about a person, as a short text."""
    if profile.is_empty():
        return "I don't know anything about you yet. Set something with /profile name Ada."
    lines = ["What I know about you:"]
    if profile.display_name:
        lines.append(f"• name: {profile.display_name}")
    if profile.language:
        lines.append(f"• language: {profile.language}")
    lines.extend(f"• {key}: {value}" for key, value in sorted(profile.preferences.items()))
    lines.extend(f"• fact: {fact}" for fact in profile.facts)
    return "\n".join(lines)


def _set_field(profile: UserProfile, name: str, value: str | None) -> UserProfile:
    """The profile with one field set (or cleared, when ``value`` is None)."""
    if name == "name":
        return replace(profile, display_name=value)
    if name == "language":
        return replace(profile, language=value)
    preferences = dict(profile.preferences)
    if value is None:
        preferences.pop(name, None)
    else:
        preferences[name] = value
    return replace(profile, preferences=preferences)
