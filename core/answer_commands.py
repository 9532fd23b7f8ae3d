"""``/feedback`` and ``/explain``: commands about Parley's answers.

:class:`AnswerCommands` runs both for :class:`core.conversation.ConversationService`:
``/feedback`` rates an answer (the one replied to, else the last) and may correct it,
``/explain`` shows what the last answer was built from. :func:`thanks` is the reply to
any rating, a 👍/👎 button's too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from core.commands import parse_feedback
from core.explanation import Explainer, explain_context
from core.store import ConversationFeedbackStore
from core.types import Feedback, Message, Rating, Reply, Role, StoredMessage

__all__ = ["AnswerCommands", "thanks"]


class AnswerCommands:
    """The ``/feedback`` and ``/explain`` commands, on answers in the message's conversation."""

    def __init__(
        self,
        store: ConversationFeedbackStore,
        clean: Callable[[str], str],
        *,
        history_turns: int,
        explainer: Explainer | None = None,
    ) -> None:
        self._store = store
        self._clean = clean
        """Takes personal data out of a correction before it is saved."""
        self._history_turns = history_turns
        self._explainer = explainer

    async def feedback(self, message: Message, args: str) -> Reply:
        """``/feedback good|bad [correction]`` on the answer replied to, or the last one."""
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
            correction=self._clean(parsed.correction) if parsed.correction else None,
        )
        await asyncio.to_thread(self._store.save_feedback, feedback)
        text = thanks(parsed.rating)
        if parsed.correction:
            text += " I saved your correction; it will help me learn."
        return Reply(text=text)

    async def explain(self, message: Message, args: str = "") -> Reply:
        """``/explain``: what the last answer was built from, and the model's view if it has one."""
        answer = await self._last_answer(message)
        if answer is None or answer.context is None:
            return Reply(
                text="There is nothing to explain yet: I have not answered in this conversation."
            )
        text = explain_context(answer)
        if self._explainer is None:
            return Reply(text=text)
        explanation = await asyncio.to_thread(self._explainer.explain, answer)
        first = (("explain.png", explanation.picture),) if explanation.picture else ()
        attachments = (*first, *explanation.more_pictures)
        return Reply(text="\n".join([*explanation.lines, "", text]), attachments=attachments)

    async def _last_answer(self, message: Message) -> StoredMessage | None:
        """Parley's latest answer in the message's conversation (within the history kept)."""
        history = await asyncio.to_thread(self._store.history, message.key, self._history_turns)
        return next((t for t in reversed(history) if t.role is Role.ASSISTANT), None)


def thanks(rating: Rating) -> str:
    """The reply to a rating of an answer."""
    good = rating is Rating.GOOD
    return "Thanks, noted that my answer was " + ("helpful." if good else "not good.")
