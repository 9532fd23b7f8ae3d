"""Helpers of the Telegram adapter's tests: the fake Bot API server, options, waits.

The ``telegram`` fixture (in ``tests/conftest.py``) runs a
:class:`tests.fakes.telegram.FakeTelegram`; :func:`running` starts the real adapter
against it with the real conversation service.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest

from bots.telegram import (
    WEBHOOK_PATH,
    TelegramAdapter,
    TelegramOptions,
)
from core.conversation import ConversationService
from core.errors import StoreError
from core.generator import EchoGenerator, GenerationRequest, GenerationResult
from core.store import Store
from core.types import ConversationKey, Role
from tests.factories import make_inbox
from tests.fakes.telegram import (
    FakeTelegram,
    SentMessage,
)

SECRET = "s3cret-Token_1"
WEBHOOK_URL = "https://parley.example" + WEBHOOK_PATH


@dataclass(slots=True)
class PacedGenerator(EchoGenerator):
    """The echo generator, pausing ``delay`` seconds every ``every`` words: a model's pace."""

    delay: float = 0.02
    every: int = 1

    async def _run(self, request: GenerationRequest) -> AsyncIterator[str | GenerationResult]:
        count = 0
        async for item in EchoGenerator._run(self, request):
            if isinstance(item, str):
                count += 1
                if count % self.every == 0:
                    await asyncio.sleep(self.delay)
            yield item


@dataclass(slots=True)
class BreakingGenerator(EchoGenerator):
    """The echo generator, failing after ``words`` words of its answer."""

    words: int = 3

    async def _run(self, request: GenerationRequest) -> AsyncIterator[str | GenerationResult]:
        count = 0
        async for item in EchoGenerator._run(self, request):
            if count == self.words:
                raise RuntimeError("the model fell over")
            count += 1
            yield item


class DownStore:
    """A store whose database is down: every method raises StoreError."""

    def __getattr__(self, name: str) -> Callable[..., Any]:
        def fail(*args: object, **kwargs: object) -> Any:
            raise StoreError("The database at PARLEY_DATABASE_URL cannot be reached.")

        return fail


def options_for(server: FakeTelegram, **changes: Any) -> TelegramOptions:
    """Options for the fake server, paced fast enough for tests."""
    values: dict[str, Any] = {
        "token": server.token,
        "api_url": server.api_url,
        "edit_interval": 0.05,
        "typing_interval": 0.5,
        "poll_timeout": 1,
        "drain_timeout": 5,
    }
    return TelegramOptions(**{**values, **changes})


@asynccontextmanager
async def running(
    server: FakeTelegram, service: ConversationService, **changes: Any
) -> AsyncIterator[TelegramAdapter]:
    adapter = TelegramAdapter(make_inbox(service), options_for(server, **changes))
    await adapter.start()
    try:
        yield adapter
    finally:
        await adapter.stop()


def with_buttons(server: FakeTelegram, chat_id: int) -> list[SentMessage]:
    return [m for m in server.messages(chat_id) if m.buttons]


async def answered(server: FakeTelegram, chat_id: int, count: int) -> list[SentMessage]:
    """Wait until ``count`` answers (messages with buttons) show in the chat; return them."""
    await server.wait_until(lambda: len(with_buttons(server, chat_id)) >= count)
    return with_buttons(server, chat_id)


async def replied(server: FakeTelegram, chat_id: int, count: int, **where: Any) -> list[str]:
    """Wait until the chat shows ``count`` bot messages and nothing more happens."""
    await server.wait_until(lambda: len(server.messages(chat_id, **where)) >= count)
    await server.settle(quiet=0.2)
    return server.texts(chat_id, **where)


def button_data(message: SentMessage, label: str) -> str:
    return str(next(b["callback_data"] for b in message.buttons if b["text"] == label))


def history(store: Store, chat: int, thread: str | None = None) -> list[tuple[Role, str]]:
    key = ConversationKey("telegram", None, str(chat), thread)
    return [(t.role, t.text) for t in store.history(key, 100)]


@pytest.fixture
async def telegram() -> AsyncIterator[FakeTelegram]:
    """A fake Telegram Bot API server on a local port."""
    async with FakeTelegram() as server:
        yield server
