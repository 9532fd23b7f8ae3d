"""How the Telegram adapter runs: the token, the Bot API address, polling or webhook.

Built from Parley's settings at the entry point and passed to the adapter::

    options = TelegramOptions.from_settings(settings.telegram)   # raises ConfigurationError
    options = TelegramOptions(token="123:abc", api_url="http://127.0.0.1:8081/bot")  # tests
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from core.errors import ConfigurationError

if TYPE_CHECKING:
    from config.groups import TelegramSettings

__all__ = ["DEFAULT_API_URL", "TelegramOptions"]

DEFAULT_API_URL = "https://api.telegram.org/bot"
"""Telegram's own Bot API; the bot token follows it in every request's URL."""

# Telegram accepts 1-256 of these characters as a webhook's secret_token.
_SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}")


@dataclass(frozen=True, slots=True, kw_only=True)
class TelegramOptions:
    """The Telegram adapter's configuration; the pacing values are for tests to shorten."""

    token: str = field(repr=False)
    api_url: str = DEFAULT_API_URL
    webhook_url: str | None = None
    webhook_secret: str | None = field(default=None, repr=False)
    edit_interval: float = 1.0
    """Seconds between two sends or edits in one chat: Telegram allows about one a second."""
    typing_interval: float = 4.0
    """Seconds between "typing…" actions; Telegram shows one for five seconds."""
    poll_timeout: float = 10.0
    """Seconds one long-polling getUpdates call waits for updates."""
    drain_timeout: float = 30.0
    """Seconds :meth:`TelegramAdapter.stop` waits for replies in progress before cancelling."""

    @property
    def file_url(self) -> str:
        """The Bot API's file download address, next to :attr:`api_url`."""
        base = self.api_url.rstrip("/")
        if base.endswith("/bot"):
            return base[: -len("bot")] + "file/bot"
        return base

    @property
    def webhook(self) -> bool:
        """True when Telegram pushes updates to :attr:`webhook_url` instead of being polled."""
        return self.webhook_url is not None

    @classmethod
    def from_settings(cls, telegram: TelegramSettings) -> TelegramOptions:
        """The options from the ``telegram`` settings; a missing or unusable one raises a clear
        error."""
        if telegram.token is None:
            raise ConfigurationError(
                "PARLEY_TELEGRAM_TOKEN is not set: create a bot with @BotFather and put its "
                "token there."
            )
        token = telegram.token.get_secret_value().strip()
        secret = telegram.webhook_secret
        webhook_secret = secret.get_secret_value() if secret is not None else None
        webhook_url = telegram.webhook_url
        if webhook_url is not None and webhook_secret is None:
            raise ConfigurationError(
                "PARLEY_TELEGRAM_WEBHOOK_URL is set but PARLEY_TELEGRAM_WEBHOOK_SECRET is not: "
                "without the secret anyone could post updates to the webhook."
            )
        if webhook_secret is not None and not _SECRET.fullmatch(webhook_secret):
            raise ConfigurationError(
                "PARLEY_TELEGRAM_WEBHOOK_SECRET must be 1-256 characters of A-Z, a-z, 0-9, "
                "_ and - (Telegram's rule for secret tokens)."
            )
        return cls(
            token=token,
            api_url=telegram.api_url,
            webhook_url=webhook_url,
            webhook_secret=webhook_secret,
        )
