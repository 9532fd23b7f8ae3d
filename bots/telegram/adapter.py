"""Parley on Telegram: updates in (polling or webhook), streamed replies out.

The adapter only translates. Each update is claimed once through
``service.first_delivery``; messages become :class:`core.types.Message` (see
:mod:`bots.telegram.inbound`) and the core decides whether and what to answer; replies
are streamed into Telegram messages by :class:`bots.telegram.render.LiveReply`, answers
with 👍/👎 buttons whose presses go to ``service.rate``, and a reply's pictures (the
``/explain`` charts) follow its text as photos::

    adapter = build_telegram(parley.service, settings)
    await adapter.start()        # getMe, setMyCommands, then polling or setWebhook
    ...                          # webhook mode: mount adapter.routes() in a Starlette app
    await adapter.stop()         # finish replies in progress, disconnect

Replies in one conversation are sent in the order their messages arrived; different
conversations are answered concurrently.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import re
import weakref
from collections.abc import Coroutine
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from telegram import BotCommand, Update
from telegram import Message as TelegramMessage
from telegram.constants import ChatAction
from telegram.error import (
    BadRequest,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
)
from telegram.ext import Application, ApplicationBuilder, ContextTypes, TypeHandler

from bots.telegram.buttons import feedback_keyboard, parse_feedback_data
from bots.telegram.files import with_attachments
from bots.telegram.inbound import PLATFORM, BotIdentity, to_message, user_ref
from bots.telegram.options import TelegramOptions
from bots.telegram.render import LiveReply, Pacer, retry_seconds
from core.commands import COMMANDS
from core.conversation import APOLOGY, Accepted, ConversationService
from core.errors import ConfigurationError, StoreError
from core.locks import KeyedLocks
from core.types import ReplyKind

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

    def __init__(self, service: ConversationService, options: TelegramOptions) -> None:
        self._service = service
        self._options = options
        # Telegram's URLs carry the token, and httpx (INFO) and PTB (DEBUG) log URLs.
        _redact_in_logs(options.token, "httpx", "telegram.Bot", "telegram.ext.ExtBot")
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
        self._tasks: set[asyncio.Task[None]] = set()
        self._conversations = KeyedLocks()
        self._pacers: weakref.WeakValueDictionary[int, Pacer] = weakref.WeakValueDictionary()

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._me is not None and self._app.running

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

    async def stop(self) -> None:
        """Stop taking updates, let replies in progress finish (or cancel them), disconnect."""
        updater = self._app.updater
        if updater is not None and updater.running:
            await updater.stop()
        if self._app.running:
            await self._app.stop()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=self._options.drain_timeout)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await self._app.shutdown()
        self._me = None

    async def handle_webhook(self, body: bytes, secret: str | None) -> int:
        """Take one webhook request; return the HTTP status for Telegram.

        403 without the right secret, 400 for a body that is not an update, 503 when the
        update cannot be claimed (database down, or not started: Telegram delivers it
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
            first = await self._service.first_delivery(PLATFORM, str(update.update_id))
        except StoreError:
            log.warning("cannot claim Telegram update %s: database down", update.update_id)
            return 503
        if not first:
            log.debug("Telegram update %s was delivered again; ignored", update.update_id)
            return 200
        accepted = None
        if update.message is not None:
            # The message is stored before Telegram hears 200: nothing acknowledged is lost.
            try:
                accepted = await self._accept(update.message)
            except StoreError:
                log.warning("cannot store Telegram update %s: database down", update.update_id)
                await self._service.release_delivery(PLATFORM, str(update.update_id))
                return 503
            except Exception:
                # Fields of the wrong type that PTB let through: refused, and kept claimed
                # so that Telegram's retries of it are acknowledged and end.
                log.exception("refused malformed Telegram update %s", update.update_id)
                return 400
        self._spawn(self.process(update, accepted))
        return 200

    async def process(self, update: Update, accepted: Accepted | None = None) -> None:
        """Handle one claimed update: answer a message or record a button press.

        ``accepted`` is the message as the webhook already accepted it; polled updates are
        accepted here.
        """
        try:
            if update.callback_query is not None:
                await self._on_button(update)
            elif update.message is not None:
                await self._on_message(update.message, accepted)
            elif update.edited_message is not None:
                log.debug("ignoring an edited message in chat %s", update.edited_message.chat_id)
            else:
                log.debug("ignoring Telegram update %s of another kind", update.update_id)
        except Exception:
            log.exception("handling Telegram update %s failed", update.update_id)

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
        """The Application's handler for polled updates: claim, then handle in the background."""
        if not isinstance(update, Update):
            return
        try:
            first = await self._service.first_delivery(PLATFORM, str(update.update_id))
        except StoreError:
            # Polled updates cannot be refused: answering twice beats dropping one.
            log.exception("cannot claim Telegram update %s; handling it", update.update_id)
            first = True
        if first:
            self._spawn(self.process(update))
        else:
            log.debug("Telegram update %s was delivered again; ignored", update.update_id)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _accept(self, incoming: TelegramMessage) -> Accepted | None:
        """Hand a message to the core if it is for Parley; ``None`` when it is not."""
        sender = incoming.from_user
        if sender is None or sender.is_bot:
            log.debug("ignoring a message from a bot in chat %s", incoming.chat_id)
            return None
        assert self._me is not None  # updates are handled only once started
        message = to_message(incoming, self._me)
        if message is None:
            log.debug("nothing to answer in message %s", incoming.message_id)
            return None
        message = with_attachments(message, incoming, self._app.bot)
        if not self._service.should_answer(message):
            return None
        return await self._service.accept(message)

    async def _on_message(self, incoming: TelegramMessage, accepted: Accepted | None) -> None:
        if accepted is None:
            try:
                accepted = await self._accept(incoming)
            except StoreError:
                log.exception("cannot store a message in Telegram chat %s", incoming.chat_id)
                thread_id = incoming.message_thread_id if incoming.is_topic_message else None
                await self._apologize(incoming.chat_id, thread_id)
                return
            if accepted is None:
                return
        async with self._conversations.hold(accepted.message.key):
            await self._answer(accepted, incoming)

    async def _on_button(self, update: Update) -> None:
        query = update.callback_query
        assert query is not None
        parsed = parse_feedback_data(query.data)
        if parsed is None:
            notice = BAD_BUTTON
        else:
            answer_id, rating = parsed
            try:
                notice = (
                    await self._service.rate(answer_id, user_ref(query.from_user), rating)
                ).text
            except Exception:
                log.exception("recording a rating of answer %s failed", answer_id)
                notice = BUTTON_TROUBLE
        await self._app.bot.answer_callback_query(query.id, text=notice[:CALLBACK_TEXT_LIMIT])

    # ---------------------------------------------------------------- replies out

    async def _answer(self, accepted: Accepted, incoming: TelegramMessage) -> None:
        """Stream the core's reply to a message into the chat; apologise if that fails."""
        message = accepted.message
        chat_id = incoming.chat_id
        thread_id = incoming.message_thread_id if incoming.is_topic_message else None
        pacer = self._pacers.get(chat_id)
        if pacer is None:
            pacer = self._pacers[chat_id] = Pacer(self._options.edit_interval)
        live = LiveReply(
            self._app.bot,
            chat_id,
            pacer=pacer,
            thread_id=thread_id,
            # In a group, the reply quotes the message it answers.
            quote=incoming.message_id if message.is_group else None,
        )
        typing = asyncio.create_task(self._keep_typing(chat_id, thread_id))
        try:
            stream = self._service.reply(accepted)
            text = ""
            try:
                async for delta in stream:
                    text += delta
                    live.update(text)
            finally:
                typing.cancel()
            reply = stream.result
            answer_id = reply.answer_id if reply.kind is ReplyKind.ANSWER else None
            # An answer shows as stored (feedback names it); other replies as streamed,
            # which keeps the part of an answer shown before a failure and its apology.
            final = reply.text if answer_id is not None or not text.strip() else text
            markup = feedback_keyboard(answer_id) if answer_id is not None else None
            shown = await live.finish(final, markup)
        except Forbidden as exc:
            # Blocked by the person or removed from the group: nobody to tell.
            log.warning("Parley may not write in Telegram chat %s: %s", chat_id, exc.message)
            await live.cancel()
            return
        except Exception:
            log.exception("replying in Telegram chat %s failed", chat_id)
            await live.cancel()
            await self._apologize(chat_id, thread_id)
            return
        finally:
            typing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await typing
        if answer_id is not None:
            try:
                await self._service.delivered(answer_id, str(shown))
            except Exception:
                log.exception("could not record that answer %s is message %s", answer_id, shown)
        if reply.attachments:
            # After the text, so that a picture Telegram refuses never costs the answer.
            await live.send_pictures(reply.attachments)

    async def _keep_typing(self, chat_id: int, thread_id: int | None) -> None:
        """Show "typing…" until cancelled: Telegram shows each action for five seconds."""
        while True:
            delay = self._options.typing_interval
            try:
                await self._app.bot.send_chat_action(
                    chat_id, ChatAction.TYPING, message_thread_id=thread_id
                )
            except RetryAfter as exc:
                delay = max(delay, retry_seconds(exc))
            except TelegramError as exc:
                log.debug("could not show typing in chat %s: %s", chat_id, exc)
            await asyncio.sleep(delay)

    async def _apologize(self, chat_id: int, thread_id: int | None) -> None:
        """Tell the person their message was not answered, as far as Telegram lets us."""
        for _ in range(3):
            try:
                await self._app.bot.send_message(chat_id, APOLOGY, message_thread_id=thread_id)
                return
            except RetryAfter as exc:
                await asyncio.sleep(retry_seconds(exc))
            except Exception:
                log.exception("could not even apologise in Telegram chat %s", chat_id)
                return


class _Redact(logging.Filter):
    """Replaces a secret in log records with a placeholder."""

    def __init__(self, secret: str) -> None:
        super().__init__()
        self.secret = secret

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if self.secret in message:
            record.msg, record.args = message.replace(self.secret, "<token>"), ()
        return True


def _redact_in_logs(secret: str, *names: str) -> None:
    """Keep ``secret`` out of the records of the named loggers (once per secret)."""
    for name in names:
        logger = logging.getLogger(name)
        if secret and not any(
            isinstance(f, _Redact) and f.secret == secret for f in logger.filters
        ):
            logger.addFilter(_Redact(secret))


def _log_polling_error(error: TelegramError) -> None:
    """Polling retries by itself; say why it had to."""
    log.warning("polling Telegram failed, retrying: %s", error)
