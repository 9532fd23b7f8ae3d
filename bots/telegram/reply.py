"""A reply shown on Telegram while it is written: :class:`TelegramReply`.

The shared part (pacing, splitting, edits, the final text) is :class:`bots.live_reply.LiveReply`;
this module makes Telegram's requests. Text is measured in UTF-16 units, 4096 per message
(see :func:`bots.text.split_text`); a chat's :class:`~bots.live_reply.Pacer` is shared by
its replies, and a 429 ``RetryAfter`` holds it. Every request into the chat, "typing…"
included, goes through the bot's :class:`~bots.telegram.flood.FloodWindows`: nothing
reaches a chat inside its flood window (messages wait for its end, "typing…" is skipped)::

    reply = TelegramReply(bot, chat_id, pacer=Pacer(1.0), windows=windows, typing_interval=4.0)
    async for delta in stream:
        await reply.add(delta)
    message_id = await reply.finish(stream.result)   # 👍/👎 on an answer, then pictures

Pictures that come with a reply (the ``/explain`` charts) follow its text as photos in the
same chat and topic; any other file (an ``/export``'s .json) as a document. Replies are
sent as plain text (no ``parse_mode``): Markdown the model wrote shows as typed, and no
send can fail on a parse error. Link previews are off. "typing…" shows until the text is
final.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from telegram import Bot, LinkPreviewOptions, ReplyParameters
from telegram import Message as TelegramMessage
from telegram.constants import ChatAction
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError

from bots.live_reply import LiveReply, Pacer, RateLimited, Shown
from bots.telegram.buttons import feedback_keyboard
from bots.telegram.flood import FloodWindows, retry_seconds
from bots.text import split_text, utf16_len
from core.types import Reply

__all__ = ["MESSAGE_LIMIT", "TelegramReply", "retry_seconds"]

log = logging.getLogger(__name__)

MESSAGE_LIMIT = 4096
"""Telegram's longest message text, in UTF-16 code units."""

NO_PREVIEW = LinkPreviewOptions(is_disabled=True)
_PHOTO = (".png", ".jpg", ".jpeg", ".webp")

T = TypeVar("T")


class TelegramReply(LiveReply):
    """One reply in one Telegram chat (and forum topic)."""

    def __init__(
        self,
        bot: Bot,
        chat_id: int,
        *,
        pacer: Pacer,
        windows: FloodWindows,
        thread_id: int | None = None,
        quote: int | None = None,
        limit: int = MESSAGE_LIMIT,
        typing_interval: float | None = None,
        shown: Sequence[str] = (),
    ) -> None:
        """``shown``: messages of this reply sent earlier, to edit (see :class:`LiveReply`)."""
        super().__init__(pacer=pacer, where=f"Telegram chat {chat_id}", shown=shown)
        self._bot = bot
        self._chat_id = chat_id
        self._windows = windows  # shared by every request into the bot's chats
        self._thread_id = thread_id
        self._quote = quote  # the message the reply quotes, in groups
        self._limit = limit
        self._typing: asyncio.Task[None] | None = None
        if typing_interval is not None:
            self._typing = asyncio.create_task(self._keep_typing(typing_interval))

    async def finish(self, reply: Reply) -> str | None:
        """Stop "typing…", then show the final reply (see :meth:`LiveReply.finish`)."""
        await self._stop_typing()
        return await super().finish(reply)

    async def fail(self, apology: str) -> None:
        """Stop "typing…", then apologise (see :meth:`LiveReply.fail`)."""
        await self._stop_typing()
        await super().fail(apology)

    def _split(self, text: str) -> list[str]:
        return split_text(text, self._limit, measure=utf16_len)

    def _retry_after(self, error: Exception) -> float | None:
        return retry_seconds(error) if isinstance(error, RetryAfter) else None

    def _transient(self, error: Exception) -> bool:
        return isinstance(error, NetworkError) and not isinstance(error, BadRequest | Forbidden)

    async def _request(self, request: Callable[[], Awaitable[T]]) -> T:
        """One request into the chat: in its turn, and after its flood window."""
        return await self._call(lambda: self._windows.send(self._chat_id, request))

    def _quoting(self) -> ReplyParameters | None:
        if self._quote is None:
            return None
        return ReplyParameters(message_id=self._quote, allow_sending_without_reply=True)

    async def _send(self, text: str, buttons: int | None) -> str:
        sent: TelegramMessage = await self._request(
            lambda: self._bot.send_message(
                chat_id=self._chat_id,
                text=text,
                message_thread_id=self._thread_id,
                reply_parameters=None if self._shown else self._quoting(),
                reply_markup=feedback_keyboard(buttons) if buttons is not None else None,
                link_preview_options=NO_PREVIEW,
            )
        )
        return str(sent.message_id)

    async def _edit(self, shown: Shown, text: str, buttons: int | None) -> str:
        markup = feedback_keyboard(buttons) if buttons is not None else None
        message_id = int(shown.id)
        try:
            if shown.text == text:
                await self._request(
                    lambda: self._bot.edit_message_reply_markup(
                        chat_id=self._chat_id, message_id=message_id, reply_markup=markup
                    )
                )
            else:
                await self._request(
                    lambda: self._bot.edit_message_text(
                        chat_id=self._chat_id,
                        message_id=message_id,
                        text=text,
                        reply_markup=markup,
                        link_preview_options=NO_PREVIEW,
                    )
                )
        except BadRequest as exc:
            reason = exc.message.lower()
            if "not found" in reason and shown.text != text:
                # Someone deleted the message: show this part in a new one instead.
                log.info("a reply message in chat %s is gone; sending anew", self._chat_id)
                return await self._send(text, buttons)
            if "not modified" not in reason:  # "not modified": it already shows this
                raise
        return shown.id

    async def _delete(self, shown: Shown) -> None:
        try:
            await self._request(
                lambda: self._bot.delete_message(chat_id=self._chat_id, message_id=int(shown.id))
            )
        except BadRequest:
            log.info("could not delete a surplus reply message in chat %s", self._chat_id)

    async def _upload(self, name: str, data: bytes) -> None:
        # Pictures show as photos; any other file (an /export's .json) as a document.
        is_photo = name.lower().endswith(_PHOTO)
        file: dict[str, Any] = {"photo": data} if is_photo else {"document": data}
        send = self._bot.send_photo if is_photo else self._bot.send_document
        await self._request(
            lambda: send(
                chat_id=self._chat_id,
                **file,
                filename=name,
                message_thread_id=self._thread_id,
                reply_parameters=self._quoting(),
            )
        )

    def _picture_failed(self, name: str, error: Exception) -> bool:
        if isinstance(error, RateLimited):
            log.warning(
                "picture %s not sent: Telegram kept asking chat %s to wait", name, self._chat_id
            )
        elif isinstance(error, TelegramError):
            log.warning(
                "could not send picture %s in Telegram chat %s: %s",
                name,
                self._chat_id,
                error.message,
            )
        else:
            log.exception("could not send picture %s in Telegram chat %s", name, self._chat_id)
        return True

    async def _apologise(self, apology: str) -> None:
        try:
            await self._request(
                lambda: self._bot.send_message(
                    self._chat_id, apology, message_thread_id=self._thread_id
                )
            )
        except Forbidden as exc:
            # Blocked by the person or removed from the group: nobody to tell.
            log.warning("Parley may not write in Telegram chat %s: %s", self._chat_id, exc.message)

    async def _keep_typing(self, interval: float) -> None:
        """Show "typing…" until cancelled: Telegram shows each action for five seconds."""
        while True:
            delay = interval
            try:
                # Skipped inside the chat's flood window: it would only lengthen it.
                await self._windows.act(
                    self._chat_id,
                    lambda: self._bot.send_chat_action(
                        self._chat_id, ChatAction.TYPING, message_thread_id=self._thread_id
                    ),
                )
            except RetryAfter as exc:
                delay = max(delay, retry_seconds(exc))
            except TelegramError as exc:
                log.debug("could not show typing in chat %s: %s", self._chat_id, exc)
            await asyncio.sleep(delay)

    async def _stop_typing(self) -> None:
        if self._typing is not None:
            self._typing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._typing
            self._typing = None
