"""Showing a reply on Telegram while it is written: send, then edit as the text grows.

:class:`LiveReply` follows a streamed reply with as few requests as Telegram's limits
allow: the first text is sent as a message, later text edits it at most once per
:class:`Pacer` interval per chat (never with unchanged text), and text past one
message's 4096 UTF-16 units continues in a new message (see :func:`bots.text.split_text`).
A 429 ``RetryAfter`` holds the chat's pacer for as long as Telegram asks: the edits in
between are skipped, and :meth:`LiveReply.finish` always delivers the final text::

    live = LiveReply(bot, chat_id, pacer=Pacer(1.0))
    async for delta in stream:
        text += delta
        live.update(text)
    message_id = await live.finish(stream.result.text, markup=feedback_keyboard(answer_id))

Pictures that come with a reply (the ``/explain`` charts) follow its text as photos in the
same chat and topic, once the text is final: ``await live.send_pictures(reply.attachments)``.

Replies are sent as plain text (no ``parse_mode``): Markdown the model wrote shows as
typed, and no send can fail on a parse error. Link previews are off.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import warnings
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from telegram import Bot, InlineKeyboardMarkup, LinkPreviewOptions, ReplyParameters
from telegram import Message as TelegramMessage
from telegram.error import BadRequest, NetworkError, RetryAfter, TelegramError
from telegram.warnings import PTBDeprecationWarning

from bots.text import split_text, utf16_len

__all__ = ["MESSAGE_LIMIT", "LiveReply", "Pacer", "retry_seconds"]

log = logging.getLogger(__name__)

MESSAGE_LIMIT = 4096
"""Telegram's longest message text, in UTF-16 code units."""

NO_PREVIEW = LinkPreviewOptions(is_disabled=True)

# The final text is retried this often on 429s and network errors before giving up.
FINAL_ATTEMPTS = 8
EMPTY = "…"  # what a reply with no visible text shows, so that it is never lost

T = TypeVar("T")


def retry_seconds(error: RetryAfter) -> float:
    """How long Telegram asked to wait, in seconds."""
    with warnings.catch_warnings():
        # PTB 22 warns that retry_after becomes a timedelta; both forms are handled here.
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value = error.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


class Pacer:
    """Spaces one chat's sends and edits: at most one per ``interval``, longer after a 429."""

    def __init__(self, interval: float) -> None:
        self._interval = interval
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        """Wait for this chat's next turn to call Telegram, and take it."""
        loop = asyncio.get_running_loop()
        async with self._lock:  # replies in one chat take turns, in order
            # A loop, not one sleep: a 429 elsewhere can move the turn while we wait.
            while (delay := self._next - loop.time()) > 0:  # noqa: ASYNC110
                await asyncio.sleep(delay)
            self._next = loop.time() + self._interval

    def hold(self, seconds: float) -> None:
        """Make the chat wait ``seconds`` from now (Telegram's retry_after)."""
        self._next = max(self._next, asyncio.get_running_loop().time() + seconds)


@dataclass(slots=True)
class _Shown:
    """One Telegram message of a reply, as the person sees it now."""

    message_id: int
    text: str
    markup: InlineKeyboardMarkup | None = None


class LiveReply:
    """One reply in one chat: the messages that show it, kept up with its text."""

    def __init__(
        self,
        bot: Bot,
        chat_id: int,
        *,
        pacer: Pacer,
        thread_id: int | None = None,
        quote: int | None = None,
        limit: int = MESSAGE_LIMIT,
    ) -> None:
        self._bot = bot
        self._chat_id = chat_id
        self._pacer = pacer
        self._thread_id = thread_id
        self._quote = quote  # the message the first part replies to, in groups
        self._limit = limit
        self._shown: list[_Shown] = []
        self._text = ""
        self._changed = asyncio.Event()
        self._closing = False
        self._follower: asyncio.Task[None] | None = None
        self._requesting = False  # a request to Telegram is in flight

    def update(self, text: str) -> None:
        """Show ``text`` as soon as the chat's pace allows; later calls supersede it."""
        self._text = text
        self._changed.set()
        if self._follower is None:
            self._follower = asyncio.create_task(self._follow(), name="telegram-live-reply")

    async def finish(self, text: str, markup: InlineKeyboardMarkup | None = None) -> int:
        """Show the final ``text``, ``markup`` on its last message; return that message's id.

        Waits out 429s and retries network errors; raises when Telegram refuses the text
        or stays unreachable, so that the caller can tell the person.
        """
        await self._stop_following()
        for attempt in range(1, FINAL_ATTEMPTS + 1):
            try:
                await self._show(text, markup, final=True)
                return self._shown[-1].message_id
            except RetryAfter:
                if attempt == FINAL_ATTEMPTS:
                    raise
            except BadRequest:
                raise
            except NetworkError as exc:
                if attempt == FINAL_ATTEMPTS:
                    raise
                log.warning("Telegram unreachable (%s); retrying the reply in %s", exc, attempt)
                await asyncio.sleep(min(2.0**attempt, 30.0))
        raise AssertionError("unreachable")  # the loop returns or raises

    async def send_pictures(self, pictures: Sequence[tuple[str, bytes]]) -> list[int]:
        """Send ``(file name, bytes)`` files after the text (pictures as photos); return ids.

        Call it after :meth:`finish`. Each photo goes to the same chat and topic and, in a
        group, replies to the same message as the text. A 429 is waited out (the photo was
        not sent); a photo Telegram refuses or that cannot be sent is logged and skipped, and
        the text stands. Nothing else is retried, since a send that timed out may have
        arrived: a photo is shown once or not at all.
        """
        quote = None
        if self._quote is not None:
            quote = ReplyParameters(message_id=self._quote, allow_sending_without_reply=True)
        sent: list[int] = []
        for name, data in pictures:
            # Pictures show as photos; any other file (an /export's .json) as a document.
            is_photo = name.lower().endswith((".png", ".jpg", ".jpeg", ".webp"))
            file: dict[str, Any] = {"photo": data} if is_photo else {"document": data}
            send = functools.partial(
                self._bot.send_photo if is_photo else self._bot.send_document,
                chat_id=self._chat_id,
                **file,
                filename=name,
                message_thread_id=self._thread_id,
                reply_parameters=quote,
            )
            for attempt in range(1, FINAL_ATTEMPTS + 1):
                try:
                    photo: TelegramMessage = await self._call(send)
                except RetryAfter:
                    if attempt < FINAL_ATTEMPTS:
                        continue  # the pacer holds the chat for as long as Telegram asked
                    log.warning(
                        "picture %s not sent: Telegram kept asking chat %s to wait",
                        name,
                        self._chat_id,
                    )
                except TelegramError as exc:
                    log.warning(
                        "could not send picture %s in Telegram chat %s: %s",
                        name,
                        self._chat_id,
                        exc.message,
                    )
                else:
                    sent.append(photo.message_id)
                break
        return sent

    async def cancel(self) -> None:
        """Stop following the text without showing more (when the reply failed)."""
        self._closing = True
        if self._follower is not None and not self._follower.done():
            self._follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._follower

    async def _stop_following(self) -> None:
        """Stop the follower; a request in flight finishes, as its result must be known."""
        self._closing = True
        self._changed.set()
        follower = self._follower
        if follower is None:
            return
        if not self._requesting:
            follower.cancel()  # waiting for its turn: the final text supersedes its edit
        with contextlib.suppress(asyncio.CancelledError):
            await follower

    async def _follow(self) -> None:
        """Show the latest text whenever it changed and the pace allows."""
        while True:
            await self._changed.wait()
            if self._closing:
                return
            self._changed.clear()
            try:
                await self._show(self._text, None, final=False)
            except RetryAfter:
                self._changed.set()  # the pacer holds; the text then shown is the latest
            except Exception:
                # An edit on the way is not worth the reply: finish() delivers the final text.
                log.warning("could not update a reply in chat %s", self._chat_id, exc_info=True)

    async def _show(self, text: str, markup: InlineKeyboardMarkup | None, *, final: bool) -> None:
        """Make the messages show ``text``: edit those that differ, send the missing ones."""
        parts = split_text(text, self._limit, measure=utf16_len)
        if not parts:
            if not final:
                return
            parts = [EMPTY]
        for index, part in enumerate(parts):
            wanted = markup if index == len(parts) - 1 else None
            if self._closing and not final:
                return  # finish() takes over from here with the final text
            if index == len(self._shown):
                self._shown.append(await self._send(part, wanted))
                continue
            shown = self._shown[index]
            if shown.text != part:
                await self._edit(shown, part, wanted)
            elif shown.markup != wanted:
                await self._edit_markup(shown, wanted)
        if final:
            # The final text can be shorter than what was streamed (e.g. trimmed).
            while len(self._shown) > len(parts):
                await self._delete(self._shown.pop())

    async def _call(self, request: Callable[[], Awaitable[T]]) -> T:
        """One request in this chat's turn; a 429 holds the chat, then propagates."""
        await self._pacer.wait()
        self._requesting = True
        try:
            return await request()
        except RetryAfter as exc:
            seconds = retry_seconds(exc)
            log.info("Telegram asked to wait %.0f s in chat %s", seconds, self._chat_id)
            self._pacer.hold(seconds)
            raise
        finally:
            self._requesting = False

    async def _send(self, text: str, markup: InlineKeyboardMarkup | None) -> _Shown:
        quote = None
        if self._quote is not None and not self._shown:
            quote = ReplyParameters(message_id=self._quote, allow_sending_without_reply=True)
        sent: TelegramMessage = await self._call(
            lambda: self._bot.send_message(
                chat_id=self._chat_id,
                text=text,
                message_thread_id=self._thread_id,
                reply_parameters=quote,
                reply_markup=markup,
                link_preview_options=NO_PREVIEW,
            )
        )
        return _Shown(sent.message_id, text, markup)

    async def _edit(self, shown: _Shown, text: str, markup: InlineKeyboardMarkup | None) -> None:
        try:
            await self._call(
                lambda: self._bot.edit_message_text(
                    chat_id=self._chat_id,
                    message_id=shown.message_id,
                    text=text,
                    reply_markup=markup,
                    link_preview_options=NO_PREVIEW,
                )
            )
        except BadRequest as exc:
            if _gone(exc):
                # Someone deleted the message: show this part in a new one instead.
                log.info("a reply message in chat %s is gone; sending anew", self._chat_id)
                self._shown[self._shown.index(shown)] = await self._send(text, markup)
                return
            if not _unchanged(exc):
                raise
        shown.text, shown.markup = text, markup

    async def _edit_markup(self, shown: _Shown, markup: InlineKeyboardMarkup | None) -> None:
        try:
            await self._call(
                lambda: self._bot.edit_message_reply_markup(
                    chat_id=self._chat_id, message_id=shown.message_id, reply_markup=markup
                )
            )
        except BadRequest as exc:
            if not _unchanged(exc):
                raise
        shown.markup = markup

    async def _delete(self, shown: _Shown) -> None:
        try:
            await self._call(
                lambda: self._bot.delete_message(chat_id=self._chat_id, message_id=shown.message_id)
            )
        except BadRequest:
            log.info("could not delete a surplus reply message in chat %s", self._chat_id)


def _unchanged(error: BadRequest) -> bool:
    """Telegram's answer to an edit that changes nothing: the message already shows it."""
    return "not modified" in error.message.lower()


def _gone(error: BadRequest) -> bool:
    """Telegram's answer to an edit of a message that no longer exists."""
    return "not found" in error.message.lower()
