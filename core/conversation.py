"""The conversation service: a message in, a streamed reply out.

Every adapter hands each :class:`core.types.Message` to :meth:`ConversationService.handle`
and renders what comes back. A message gets exactly one reply: an answer from the model,
a command's notice, or a short apology when something failed (the trace goes to the log).
The person's message is stored before the model starts, so nothing accepted is lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from contextlib import aclosing
from dataclasses import dataclass, field, replace

from core.commands import COMMANDS, Command, parse_command, parse_feedback
from core.context import ContextBuilder, MessageTooLong
from core.generator import GenerationRequest, Generator, TokenCounter
from core.store import Store
from core.streaming import Streamed
from core.types import Feedback, Message, Rating, Reply, ReplyKind, Role, StoredMessage

__all__ = ["ConversationOptions", "ConversationService"]

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
        return Streamed(self._handle(message))

    async def _handle(self, message: Message) -> AsyncIterator[str | Reply]:
        text = message.text.strip()
        if not text:
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
        thanks = "Thanks, noted that my last answer was " + (
            "helpful." if parsed.rating is Rating.GOOD else "not good."
        )
        if parsed.correction:
            thanks += " I saved your correction; it will help me learn."
        return Reply(text=thanks)

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
