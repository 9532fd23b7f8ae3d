"""Parley on Telegram (python-telegram-bot 22): polling on its own, or webhooks in the web app.

Usage::

    PARLEY_TELEGRAM_TOKEN=123:abc python -m bots.telegram     # polls; Ctrl-C stops

In the web process (``python -m bots.web``), with PARLEY_TELEGRAM_WEBHOOK_URL and
PARLEY_TELEGRAM_WEBHOOK_SECRET set, Telegram posts updates to ``POST /telegram/webhook``::

    adapter = build_telegram(parley.inbox, settings)
    routes.extend(adapter.routes())      # POST /telegram/webhook
    await adapter.start()                # on start-up: getMe, setMyCommands, setWebhook
    await adapter.stop()                 # on shutdown

In private chats Parley answers every message; in groups when mentioned, replied to, or
given a command. Replies stream into the chat as plain text, answers with 👍/👎 buttons;
pictures that come with a reply (the ``/explain`` charts) follow it as photos.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bots.telegram.adapter import SECRET_HEADER, WEBHOOK_PATH, TelegramAdapter
from bots.telegram.options import TelegramOptions
from core.inbox import Inbox

if TYPE_CHECKING:
    from config.settings import Settings

__all__ = ["SECRET_HEADER", "WEBHOOK_PATH", "TelegramAdapter", "TelegramOptions", "build_telegram"]


def build_telegram(inbox: Inbox, settings: Settings) -> TelegramAdapter:
    """The Telegram adapter for the configured bot; raises ConfigurationError if it has none."""
    return TelegramAdapter(inbox, TelegramOptions.from_settings(settings.telegram))
