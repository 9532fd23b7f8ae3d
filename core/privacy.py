"""Personal data: /forget, /export, retention, and logs that never carry it.

- :class:`Privacy` runs ``/forget`` and ``/export``. Forgetting is extensible: every place
  that holds something about a person is a :class:`Forgetter` (the store, the Redis
  counters of the limits, the answer streams in Redis, the training files), and the wiring
  lists them. Each gets the whole :class:`Person`: all their linked identities and the ids
  of their messages and of the answers to them, gathered before anything is deleted.
- :class:`Retention` deletes conversations older than the retention setting: the Celery
  beat task ``parley.purge`` in the scaled deployment, a daemon thread in the embedded one
  (at start-up, then every six hours).
- :class:`RedactingFilter` takes personal data out of every log record; Parley's own log
  lines never include message text in the first place.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

from core.commands import CommandHandler
from core.limits import Limits
from core.redaction import redact
from core.store import PrivacyStore
from core.types import ConversationKey, Message, Reply, ReplyKind, UserRef, utcnow

__all__ = [
    "EXPORT_NAME",
    "Forgetter",
    "LimitsForgetter",
    "Person",
    "Privacy",
    "RedactingFilter",
    "RedisKeysForgetter",
    "Retention",
    "StoreForgetter",
    "install_log_redaction",
]

log = logging.getLogger(__name__)

EXPORT_NAME = "parley-export.json"


@dataclass(frozen=True, slots=True)
class Person:
    """Whom to forget: every linked identity (the asking one first) and their messages."""

    identities: tuple[UserRef, ...]
    message_ids: tuple[int, ...] = ()
    """Their messages and the answers to them, as the store numbers them."""
    conversations: tuple[ConversationKey, ...] = ()
    """The conversations they wrote in."""


class Forgetter(Protocol):
    """One place that may hold something about a person."""

    def forget(self, person: Person) -> int:
        """Remove all of it; return how many items went."""
        ...


@dataclass(frozen=True, slots=True)
class StoreForgetter:
    """The database: messages, conversations, feedback, profile, identities and links."""

    store: PrivacyStore

    def forget(self, person: Person) -> int:
        return self.store.forget(person.identities[0])


@dataclass(frozen=True, slots=True)
class LimitsForgetter:
    """The rate-limit and quota counters and the answer lock of every identity."""

    limits: Limits

    def forget(self, person: Person) -> int:
        return self.limits.forget(person.identities, person.conversations)


@dataclass(frozen=True, slots=True)
class RedisKeysForgetter:
    """Redis keys named after a person's messages (e.g. the streams of their answers)."""

    redis: Any
    """A synchronous ``redis.Redis``."""
    keys: Callable[[Person], list[str]]

    def forget(self, person: Person) -> int:
        names = self.keys(person)
        return int(self.redis.delete(*names)) if names else 0


class Privacy:
    """``/forget`` and ``/export`` over the store and the configured forgetters."""

    def __init__(self, store: PrivacyStore, forgetters: Sequence[Forgetter]) -> None:
        """``forgetters`` run in order; put the store's last, once the others are done."""
        self._store = store
        self.forgetters = list(forgetters)

    def person(self, user: UserRef) -> Person:
        """Everyone ``user`` is (linked identities) and the ids of their messages."""
        data = self._store.personal_data(user)
        identities = tuple(
            UserRef(i["platform"], i["id"], i["display_name"]) for i in data["identities"]
        )
        conversations = {
            ConversationKey(**m["conversation"]): None
            for m in data["messages"]
            if m["role"] == "user"
        }
        return Person(
            identities=identities or (user,),
            message_ids=tuple(m["id"] for m in data["messages"]),
            conversations=tuple(conversations),
        )

    def forget(self, user: UserRef) -> int:
        """Remove everything about the person from every place; return the count."""
        person = self.person(user)
        removed = 0
        for forgetter in self.forgetters:
            removed += forgetter.forget(person)
        log.info("forgot a %s person: %d items", user.platform, removed)
        return removed

    def export(self, user: UserRef) -> bytes:
        """Everything held about the person, as a JSON document."""
        data = self._store.personal_data(user)
        document = {"exported_at": utcnow().isoformat(), "format": "parley-export-1", **data}
        return json.dumps(document, ensure_ascii=False, indent=2).encode()

    def commands(self) -> dict[str, CommandHandler]:
        """The ``/forget`` and ``/export`` handlers for the conversation service."""
        return {"forget": self._forget_command, "export": self._export_command}

    async def _forget_command(self, message: Message, _: str) -> Reply:
        removed = await asyncio.to_thread(self.forget, message.user)
        return Reply(
            text="Done: I deleted everything I held about you: your messages, feedback, "
            f"profile, usage counters and links ({removed} item{'s' if removed != 1 else ''})."
        )

    async def _export_command(self, message: Message, _: str) -> Reply:
        if message.is_group:
            return Reply(
                kind=ReplyKind.ERROR,
                text="Your data is only sent in a private chat with me: send /export there.",
            )
        document = await asyncio.to_thread(self.export, message.user)
        return Reply(
            text="Here is everything I hold about you, as a JSON file.",
            attachments=((EXPORT_NAME, document),),
        )


class Retention:
    """Deletes conversations older than ``days`` (0: keep them)."""

    def __init__(self, store: PrivacyStore, days: int, *, interval_s: float = 6 * 3600) -> None:
        self._store = store
        self.days = days
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run(self) -> int:
        """Purge once now; return how many messages went."""
        if self.days <= 0:
            return 0
        purged = self._store.purge_before(utcnow() - timedelta(days=self.days))
        if purged:
            log.info("retention: deleted %d messages older than %d days", purged, self.days)
        return purged

    def start(self) -> None:
        """The embedded deployment's schedule: purge now, then every ``interval_s``."""
        if self.days <= 0 or self._thread is not None:
            return

        def loop() -> None:
            while True:
                try:
                    self.run()
                except Exception:
                    log.exception("retention: purging old conversations failed")
                if self._stop.wait(self.interval_s):
                    return

        self._thread = threading.Thread(target=loop, name="parley-retention", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the schedule (at shutdown)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


class RedactingFilter(logging.Filter):
    """Replaces personal data in a log record (message, arguments and trace) by ``[kind]``."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken record is the logging module's to report
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def install_log_redaction(*handlers: logging.Handler) -> None:
    """Put a :class:`RedactingFilter` on ``handlers`` (default: the root logger's)."""
    for handler in handlers or tuple(logging.getLogger().handlers):
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
