"""Telegram's flood windows: after a 429, nothing goes into that chat until it ends.

Telegram answers a bot that writes too fast in a chat with 429 and ``retry_after``: a call
of any kind into that chat before then is refused again and lengthens the wait. One
:class:`FloodWindows` is shared by the whole bot (every reply in the chat, its "typing…",
its pictures), keyed by chat. A chat's calls go out one at a time, so that a 429 is known
before the next call leaves; messages and edits wait for the window's end, chat actions
inside it are skipped (a "typing…" shown late tells nobody anything)::

    windows = FloodWindows()
    sent = await windows.send(chat_id, lambda: bot.send_message(chat_id, "hi"))  # waits
    shown = await windows.act(chat_id, lambda: bot.send_chat_action(chat_id, "typing"))

``answerCallbackQuery`` (a button's notice) names no chat: it goes as it is.
"""

from __future__ import annotations

import asyncio
import logging
import warnings
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TypeVar

from telegram.error import RetryAfter
from telegram.warnings import PTBDeprecationWarning

__all__ = ["FloodWindows", "retry_seconds"]

log = logging.getLogger(__name__)

T = TypeVar("T")


def retry_seconds(error: RetryAfter) -> float:
    """How long Telegram asked to wait, in seconds."""
    with warnings.catch_warnings():
        # PTB 22 warns that retry_after becomes a timedelta; both forms are handled here.
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value = error.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


@dataclass(slots=True)
class _Chat:
    """One chat's line of calls and the end of its window (event-loop time)."""

    line: asyncio.Lock = field(default_factory=asyncio.Lock)
    until: float = 0.0
    users: int = 0  # callers holding this entry; it is dropped when none and no window


class FloodWindows:
    """Every chat's flood window, for one bot: who may call Telegram in a chat, and when."""

    def __init__(self) -> None:
        self._chats: dict[int, _Chat] = {}

    def remaining(self, chat_id: int) -> float:
        """Seconds left in the chat's window; 0 when it may be written to."""
        chat = self._chats.get(chat_id)
        if chat is None:
            return 0.0
        return max(0.0, chat.until - asyncio.get_running_loop().time())

    def hold(self, chat_id: int, seconds: float) -> None:
        """Open (or lengthen) the chat's window: ``seconds`` from now."""
        with self._entry(chat_id) as chat:
            chat.until = max(chat.until, asyncio.get_running_loop().time() + seconds)
            self._chats[chat_id] = chat  # kept while the window is open

    async def send(self, chat_id: int, request: Callable[[], Awaitable[T]]) -> T:
        """Make ``request`` (a message, an edit, a picture) once the chat's window is over.

        A 429 it gets opens the window, and the RetryAfter is raised for the caller to retry.
        """
        with self._entry(chat_id) as chat:
            while True:
                # Waiting outside the line, so that chat actions see the window and skip.
                while (delay := self.remaining(chat_id)) > 0:  # noqa: ASYNC110
                    await asyncio.sleep(delay)
                async with chat.line:
                    if self.remaining(chat_id) > 0:
                        continue  # the call before ours opened a window
                    return await self._calling(chat_id, request)

    async def act(self, chat_id: int, request: Callable[[], Awaitable[object]]) -> bool:
        """Make a chat action unless the chat is inside its window; True if it was made."""
        with self._entry(chat_id) as chat:
            if self.remaining(chat_id) > 0:
                return False
            async with chat.line:
                if self.remaining(chat_id) > 0:
                    return False
                await self._calling(chat_id, request)
                return True

    async def _calling(self, chat_id: int, request: Callable[[], Awaitable[T]]) -> T:
        try:
            return await request()
        except RetryAfter as exc:
            seconds = retry_seconds(exc)
            log.info("Telegram chat %s is in a flood window for %.1f s", chat_id, seconds)
            self.hold(chat_id, seconds)
            raise

    @contextmanager
    def _entry(self, chat_id: int) -> Iterator[_Chat]:
        """The chat's entry while it is used; forgotten after its last use and window."""
        chat = self._chats.setdefault(chat_id, _Chat())
        chat.users += 1
        try:
            yield chat
        finally:
            chat.users -= 1
            if chat.users == 0 and self.remaining(chat_id) == 0:
                del self._chats[chat_id]
