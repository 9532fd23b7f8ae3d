"""Replies delivered after a restart on Telegram: the outbox's :class:`core.outbox.Deliverer`.

A reply whose process died before it reached the person is shown by a live process in
the chat (and forum topic) of its conversation, quoting the message it answers in groups,
as the live reply would have been; the messages the dead process had sent are edited::

    outbox.add(adapter.deliverer())   # a TelegramDeliverer on the adapter's bot and pacers
"""

from __future__ import annotations

from collections.abc import Callable

from telegram import Bot

from bots.live_reply import Pacer
from bots.telegram.flood import FloodWindows
from bots.telegram.reply import TelegramReply
from core.outbox import Target

__all__ = ["TelegramDeliverer"]


class TelegramDeliverer:
    """Makes the :class:`TelegramReply` that delivers a stored reply."""

    platform = "telegram"

    def __init__(self, bot: Bot, pacer_for: Callable[[int], Pacer], windows: FloodWindows) -> None:
        """``pacer_for`` gives a chat's pacer and ``windows`` the chats' flood windows, both
        shared with the live replies in those chats."""
        self._bot = bot
        self._pacer_for = pacer_for
        self._windows = windows

    def renderer(self, target: Target) -> TelegramReply:
        chat_id = int(target.key.chat)
        thread = target.key.thread
        quote = target.quote if target.in_group else None
        return TelegramReply(
            self._bot,
            chat_id,
            pacer=self._pacer_for(chat_id),
            windows=self._windows,
            thread_id=int(thread) if thread is not None else None,
            quote=int(quote) if quote is not None and quote.isdigit() else None,
            shown=target.shown,
        )
