"""Parley on Telegram: updates in (polling or webhook), streamed replies out.

The adapter only translates and renders. A message becomes a :class:`core.types.Message`
(see :mod:`bots.telegram.inbound`) and goes to :meth:`core.inbox.Inbox.receive`, which
decides whether and what to answer (and in which order); the reply is streamed into
Telegram messages by :class:`bots.telegram.reply.TelegramReply`, answers with 👍/👎
buttons whose presses go to :meth:`core.inbox.Inbox.rate`, and a reply's pictures (the
``/explain`` charts) follow its text as photos. After a 429, nothing goes into that chat
until its flood window ends (:mod:`bots.telegram.flood`)::

    adapter = build_telegram(parley.inbox, settings)
    await adapter.start()        # getMe, setMyCommands, then polling or setWebhook
    ...                          # webhook mode: mount adapter.routes() in a Starlette app
    await adapter.stop()         # finish replies in progress, disconnect

A webhook update is stored before Telegram hears 200, and refused with 503 when it
cannot be, so that Telegram delivers it again; a polled update cannot be refused, so it is
stored after it is taken and gets an apology when that fails.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import weakref
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from telegram import BotCommand, Update
from telegram.error import BadRequest, InvalidToken, NetworkError, TelegramError
from telegram.ext import Application, ApplicationBuilder, ContextTypes, TypeHandler

from bots.live_reply import Pacer
from bots.telegram.buttons import parse_feedback_data
from bots.telegram.deliver import TelegramDeliverer
from bots.telegram.files import reopener, with_attachments
from bots.telegram.flood import FloodWindows
from bots.telegram.inbound import PLATFORM, BotIdentity, to_message, user_ref
from bots.telegram.logs import redact_in_logs
from bots.telegram.options import TelegramOptions
from bots.telegram.reply import TelegramReply
from core.commands import COMMANDS
from core.errors import ConfigurationError
from core.inbox import Inbox, Incoming, Receipt
from core.types import Message

__all__ = ["SECRET_HEADER", "WEBHOOK_PATH", "TelegramAdapter"]

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/telegram/webhook"
"""Where the web process receives Telegram's updates (the path of PARLEY_TELEGRAM_WEBHOOK_URL)."""

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
"""The header in which Telegram repeats the webhook's secret token."""

ALLOWED_UPDATES = ["message", "callback_query"]
"""The updates Parley asks for; edits, channel posts and the rest are never answered."""

MAX_BODY = 1 << 20  # bytes; a real update is a few kilobytes
_COMMAND_NAME = re.compile(r"[a-z0-9_]{1,32}")  # what setMyCommands accepts
BUTTON_TROUBLE = "Sorry, I could not record that just now. Please try again in a moment."
BAD_BUTTON = "I could not read that button. Rate my answer with /feedback good or /feedback bad."
CALLBACK_TEXT_LIMIT = 200  # characters Telegram shows in a button's notice

AnyApplication = Application[Any, Any, Any, Any, Any, Any]


class TelegramAdapter:
    """Connects one Telegram bot to the conversation service."""

    def __init__(self, inbox: Inbox, options: TelegramOptions) -> None:
        self._inbox = inbox
        self._options = options
        # Telegram's URLs carry the token, and httpx (INFO) and PTB (DEBUG) log URLs.
        redact_in_logs(options.token, "httpx", "telegram.Bot", "telegram.ext.ExtBot")
        builder = (
            ApplicationBuilder()
            .token(options.token)
            .base_url(options.api_url)
            .base_file_url(options.file_url)
        )
        # A webhook's updates come in through handle_webhook(); only polling needs an Updater.
        self._app: AnyApplication = (
            builder.updater(None).build() if options.webhook else builder.build()
        )
        self._app.add_handler(TypeHandler(Update, self._on_polled))
        self._me: BotIdentity | None = None
        self._pacers: weakref.WeakValueDictionary[int, Pacer] = weakref.WeakValueDictionary()
        # Outlives the replies: a chat's flood window binds every later call into it.
        self._windows = FloodWindows()

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._me is not None and self._app.running

    def deliverer(self) -> TelegramDeliverer:
        """What delivers replies left by a process that stopped (:mod:`core.outbox`)."""
        return TelegramDeliverer(self._app.bot, self._pacer, self._windows)

    def routes(self) -> list[BaseRoute]:
        """The webhook route for the web process: ``POST /telegram/webhook``."""
        return [Route(WEBHOOK_PATH, self._webhook_endpoint, methods=["POST"])]

    async def start(self) -> None:
        """Check the token, register the commands, then start polling or set the webhook."""
        try:
            await self._app.initialize()
        except InvalidToken as exc:
            raise ConfigurationError(
                f"Telegram refused PARLEY_TELEGRAM_TOKEN ({exc.message}): check the token "
                "@BotFather gave you."
            ) from exc
        except NetworkError as exc:
            raise ConfigurationError(
                f"Cannot reach the Telegram Bot API at {self._options.api_url} "
                f"(PARLEY_TELEGRAM_API_URL): {exc.message}"
            ) from exc
        try:
            await self._connect()
        except BaseException:
            await self.stop()
            raise

    async def _connect(self) -> None:
        bot = self._app.bot
        self._me = BotIdentity(id=bot.id, username=bot.username)
        commands = [
            BotCommand(name, about[:256])
            for name, about in COMMANDS.items()
            if _COMMAND_NAME.fullmatch(name)
        ]
        try:
            await bot.set_my_commands(commands)
        except TelegramError:
            # The command menu is a convenience: typed commands work without it.
            log.warning("could not register the bot's commands with Telegram", exc_info=True)
        await self._app.start()
        if self._options.webhook_url is not None:
            try:
                await bot.set_webhook(
                    url=self._options.webhook_url,
                    secret_token=self._options.webhook_secret,
                    allowed_updates=ALLOWED_UPDATES,
                )
            except BadRequest as exc:
                raise ConfigurationError(
                    f"Telegram refused PARLEY_TELEGRAM_WEBHOOK_URL: {exc.message}"
                ) from exc
            log.info("Telegram bot @%s takes updates at its webhook", bot.username)
        else:
            updater = self._app.updater
            assert updater is not None  # built with one for polling
            await updater.start_polling(
                poll_interval=0.0,
                timeout=int(self._options.poll_timeout),
                allowed_updates=ALLOWED_UPDATES,
                error_callback=_log_polling_error,
            )
            log.info("Telegram bot @%s is polling for updates", bot.username)
        media = self._inbox.service.media
        if media is not None:
            # Voice notes and images that a process which died had taken (core.intake).
            every = media.lease_seconds / 2
            self._inbox.keep_resuming(PLATFORM, reopener(bot), self._reply_to, every)

    async def stop(self) -> None:
        """Stop taking updates, let replies in progress finish (or cancel them), disconnect."""
        updater = self._app.updater
        if updater is not None and updater.running:
            await updater.stop()
        if self._app.running:
            await self._app.stop()
        await self._inbox.close(self._options.drain_timeout)
        await self._app.shutdown()
        self._me = None

    async def handle_webhook(self, body: bytes, secret: str | None) -> int:
        """Take one webhook request; return the HTTP status for Telegram.

        403 without the right secret, 400 for a body that is not an update, 503 when the
        update cannot be stored (database down, or not started: Telegram delivers it
        again), else 200 at once while the reply is made in the background.
        """
        if not self._secret_matches(secret):
            return 403
        if not self.running:
            return 503
        try:
            data = json.loads(body)
            if not isinstance(data, dict) or not isinstance(data.get("update_id"), int):
                return 400
            update = Update.de_json(data, self._app.bot)
        except Exception:  # PTB's parsers raise all sorts on malformed updates
            log.info("refused a malformed Telegram webhook body", exc_info=True)
            return 400
        try:
            receipt = await self._take(update, refusable=True)
        except Exception:
            # Fields of the wrong type that PTB let through: refused, and kept claimed
            # so that Telegram's retries of it are acknowledged and end.
            log.exception("refused malformed Telegram update %s", update.update_id)
            return 400
        return 503 if receipt is Receipt.RETRY else 200

    # ----------------------------------------------------------------- updates in

    async def _webhook_endpoint(self, request: Request) -> Response:
        # The secret is checked before the body is read, so strangers cost nothing.
        secret = request.headers.get(SECRET_HEADER)
        if not self._secret_matches(secret):
            return Response(status_code=403)
        body = bytearray()
        async for chunk in request.stream():
            body.extend(chunk)
            if len(body) > MAX_BODY:
                return Response(status_code=413)
        return Response(status_code=await self.handle_webhook(bytes(body), secret))

    def _secret_matches(self, secret: str | None) -> bool:
        expected = self._options.webhook_secret
        if expected is None or secret is None:
            return False
        return hmac.compare_digest(secret.encode(), expected.encode())

    async def _on_polled(self, update: object, _: ContextTypes.DEFAULT_TYPE) -> None:
        """The Application's handler for polled updates: take each, answer in the background."""
        if not isinstance(update, Update):
            return
        try:
            await self._take(update, refusable=False)
        except Exception:
            log.exception("handling Telegram update %s failed", update.update_id)

    async def _take(self, update: Update, *, refusable: bool) -> Receipt:
        """Hand a message to the inbox, or record a button press in the background."""
        if update.callback_query is not None:
            self._inbox.later(self._on_button(update))
            return Receipt.TAKEN
        incoming = update.message
        if incoming is None:
            log.debug("ignoring Telegram update %s of another kind", update.update_id)
            return Receipt.IGNORED
        sender = incoming.from_user
        if sender is None or sender.is_bot:
            log.debug("ignoring a message from a bot in chat %s", incoming.chat_id)
            return Receipt.IGNORED
        assert self._me is not None  # updates are handled only once started
        message = to_message(incoming, self._me)
        if message is None:
            log.debug("nothing to answer in message %s", incoming.message_id)
            return Receipt.IGNORED
        message = with_attachments(message, incoming, self._app.bot)
        return await self._inbox.receive(
            Incoming(message, event_id=str(update.update_id), refusable=refusable),
            self._reply_to,
        )

    async def _on_button(self, update: Update) -> None:
        query = update.callback_query
        assert query is not None
        parsed = parse_feedback_data(query.data)
        if parsed is None:
            notice = BAD_BUTTON
        else:
            answer_id, rating = parsed
            try:
                notice = (await self._inbox.rate(answer_id, user_ref(query.from_user), rating)).text
            except Exception:
                log.exception("recording a rating of answer %s failed", answer_id)
                notice = BUTTON_TROUBLE
        await self._app.bot.answer_callback_query(query.id, text=notice[:CALLBACK_TEXT_LIMIT])

    # ---------------------------------------------------------------- replies out

    def _reply_to(self, message: Message) -> TelegramReply:
        """The renderer of the reply to ``message``: in its chat and topic, "typing…"."""
        chat_id = int(message.chat)
        quote = message.message_id if message.is_group else None
        return TelegramReply(
            self._app.bot,
            chat_id,
            pacer=self._pacer(chat_id),
            windows=self._windows,
            thread_id=int(message.thread) if message.thread is not None else None,
            # In a group, the reply quotes the message it answers.
            quote=int(quote) if quote is not None else None,
            typing_interval=self._options.typing_interval,
        )

    def _pacer(self, chat_id: int) -> Pacer:
        """The chat's pacer, shared by its replies."""
        pacer = self._pacers.get(chat_id)
        if pacer is None:
            pacer = self._pacers[chat_id] = Pacer(self._options.edit_interval)
        return pacer


def _log_polling_error(error: TelegramError) -> None:
    """Polling retries by itself; say why it had to."""
    log.warning("polling Telegram failed, retrying: %s", error)
