"""Helpers of the Slack adapter's tests: the fake Slack, settings, and a signed-request harness.

The ``slack`` fixture (in ``tests/conftest.py``) runs a :class:`tests.fakes.slack.FakeSlack`;
:func:`harness` builds the real adapter against it with the real conversation service.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from bots.slack import SlackAdapter, build_slack
from config.settings import Settings
from core.errors import StoreError
from core.explanation import Explainer
from core.generator import EchoGenerator, FinishReason, GenerationRequest, GenerationResult
from core.memory import MemoryStore
from core.store import Store
from core.types import ConversationKey, Role
from tests.factories import make_inbox, make_service
from tests.fakes.slack import (
    TEAM,
    FakeSlack,
    SentMessage,
    SlackSender,
)

SECRET = "test-signing-secret"
GOOD, BAD = "parley_feedback_good", "parley_feedback_bad"
REPO = Path(__file__).resolve().parents[1]


@dataclass(slots=True)
class PacedGenerator(EchoGenerator):
    """The echo generator with a pause before each word, so that streaming shows."""

    delay: float = 0.01

    async def _run(self, request: GenerationRequest) -> AsyncIterator[str | GenerationResult]:
        text = self.replies.pop(0) if self.replies else "a paced answer"
        words = text.split(" ")
        for i, word in enumerate(words):
            await asyncio.sleep(self.delay)
            yield word if i == 0 else " " + word
        yield GenerationResult(
            text=text,
            model_version=self.model_version,
            prompt_tokens=1,
            completion_tokens=len(words),
            finish_reason=FinishReason.STOP,
        )


class DownStore(MemoryStore):
    """A memory store whose database can be switched off for claiming events."""

    def __init__(self) -> None:
        super().__init__()
        self.down = True

    def claim_event(self, platform: str, event_id: str) -> bool:
        if self.down:
            raise StoreError("The database is unreachable (test)")
        return super().claim_event(platform, event_id)


@dataclass
class Harness:
    """A Slack workspace with Parley installed: the fake, the adapter and a signed sender."""

    slack: FakeSlack
    adapter: SlackAdapter
    sender: SlackSender
    store: Store
    generator: EchoGenerator
    log: list[httpx.Response] = field(default_factory=list)

    async def send(self, event: dict[str, object], **kwargs: object) -> httpx.Response:
        """Deliver one event and wait until Parley has finished with it."""
        response = await self.sender.event(event, **kwargs)  # type: ignore[arg-type]
        await self.adapter.drain()
        return response

    async def command(self, text: str, channel: str = "D1", user: str = "U1") -> httpx.Response:
        response = await self.sender.command(
            text, response_url=self.slack.response_url(), channel=channel, user=user
        )
        await self.adapter.drain()
        return response

    async def press(self, message: SentMessage, action: str, user: str = "U1") -> httpx.Response:
        response = await self.sender.press(message, action, user=user)
        await self.adapter.drain()
        return response

    def history(self, chat: str = "D1", thread: str | None = None) -> list[tuple[Role, str]]:
        key = ConversationKey("slack", TEAM, chat, thread)
        return [(turn.role, turn.text) for turn in self.store.history(key, 100)]


def settings_for(slack: FakeSlack, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "slack_bot_token": FakeSlack.TOKEN,
        "slack_signing_secret": SECRET,
        "slack_api_url": slack.api_url,
        **overrides,
    }
    return Settings(_env_file=None, **values)  # type: ignore[call-arg, arg-type]


def harness(
    slack: FakeSlack,
    *,
    replies: list[str] | None = None,
    generator: EchoGenerator | None = None,
    store: Store | None = None,
    edit_interval: float = 0.03,
    max_new_tokens: int = 50,
    prompt_budget: int = 200,
    explainer: Explainer | None = None,
) -> Harness:
    generator = generator or EchoGenerator(replies=list(replies or []))
    service, store, generator = make_service(
        store=store,
        generator=generator,
        max_new_tokens=max_new_tokens,
        prompt_budget=prompt_budget,
        explainer=explainer,
    )
    adapter = build_slack(make_inbox(service), settings_for(slack), edit_interval=edit_interval)
    sender = SlackSender(Starlette(routes=adapter.routes()), signing_secret=SECRET)
    return Harness(slack, adapter, sender, store, generator)


def assert_no_repeated_edits(slack: FakeSlack) -> None:
    """Every chat.update changed what the message shows."""
    shown: dict[object, object] = {}
    for call in slack.calls:
        if call.status != 200 or call.method not in ("chat.postMessage", "chat.update"):
            continue
        view = (call.args.get("text"), call.args.get("blocks"))
        ts = call.args.get("ts")
        if call.method == "chat.update":
            assert shown.get(ts) != view, f"chat.update of {ts} changed nothing"
        shown[ts or f"new-{len(shown)}"] = view


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    """A fake Slack Web API on a local port."""
    async with FakeSlack() as fake:
        yield fake
