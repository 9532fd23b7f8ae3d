"""Keeping the bot token out of the logs: Telegram's URLs carry it, and httpx and PTB log URLs."""

from __future__ import annotations

import logging

__all__ = ["redact_in_logs"]


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


def redact_in_logs(secret: str, *names: str) -> None:
    """Keep ``secret`` out of the records of the named loggers (once per secret)."""
    for name in names:
        logger = logging.getLogger(name)
        if secret and not any(
            isinstance(f, _Redact) and f.secret == secret for f in logger.filters
        ):
            logger.addFilter(_Redact(secret))
