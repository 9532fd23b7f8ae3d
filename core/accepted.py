"""A message the conversation service has taken: what it owes, before the reply is streamed.

:meth:`core.conversation.ConversationService.accept` returns an :class:`Accepted`, and
:meth:`~core.conversation.ConversationService.reply` streams its reply; the inbox and the
intake resumer carry it between the two.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.commands import Command
from core.media import Attachment
from core.types import Message, Reply, ReplyKind

__all__ = ["Accepted", "ready"]


@dataclass(frozen=True, slots=True)
class Accepted:
    """A message the service has taken (:meth:`core.conversation.ConversationService.accept`).

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


def ready(message: Message, text: str, kind: ReplyKind = ReplyKind.NOTICE) -> Accepted:
    """``message`` taken with its reply decided at once: ``text``, nothing stored."""
    return Accepted(message, reply=Reply(kind=kind, text=text))
