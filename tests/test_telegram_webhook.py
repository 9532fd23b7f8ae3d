"""Telegram webhooks in the web process: the secret, malformed bodies, retries."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from starlette.applications import Starlette

from bots.telegram import (
    SECRET_HEADER,
    WEBHOOK_PATH,
    TelegramAdapter,
    build_telegram,
)
from bots.web import create_app
from config.settings import Settings
from config.wiring import Parley
from core.conversation import ConversationService
from core.generator import EchoGenerator
from tests.factories import make_inbox, make_service
from tests.fakes.telegram import (
    ADA,
    FakeTelegram,
    private_message,
)
from tests.telegram_fixtures import (
    SECRET,
    WEBHOOK_URL,
    DownStore,
    answered,
    options_for,
    replied,
    running,
)

# PTB itself warns when it builds a RetryAfter from an integer; the adapter handles both forms.
pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")


# ----------------------------------------------------------------------------- webhook


@asynccontextmanager
async def webhook_client(
    telegram: FakeTelegram, service: ConversationService
) -> AsyncIterator[httpx.AsyncClient]:
    async with running(telegram, service, webhook_url=WEBHOOK_URL, webhook_secret=SECRET) as bot:
        app = Starlette(routes=bot.routes())
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://web") as client:
            yield client


async def test_webhook_mode_registers_the_webhook_and_answers(telegram: FakeTelegram) -> None:
    service, _, _ = make_service(generator=EchoGenerator(replies=["Webhook works."]))
    update = private_message("hello over the webhook")
    async with webhook_client(telegram, service) as client:
        assert telegram.webhook is not None
        assert telegram.webhook["url"] == WEBHOOK_URL
        assert telegram.webhook["secret_token"] == SECRET
        assert telegram.calls_to("getUpdates") == []
        started = time.monotonic()
        response = await client.post(WEBHOOK_PATH, json=update, headers={SECRET_HEADER: SECRET})
        assert response.status_code == 200
        assert time.monotonic() - started < 1.0
        again = await client.post(WEBHOOK_PATH, json=update, headers={SECRET_HEADER: SECRET})
        assert again.status_code == 200  # a redelivery is acknowledged, not answered
        await answered(telegram, ADA["id"], 1)
        await telegram.settle(quiet=0.2)
    assert telegram.texts(ADA["id"]) == ["Webhook works."]


async def test_the_web_app_mounts_and_starts_the_adapter(
    telegram: FakeTelegram, tmp_path: Path
) -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        data_dir=tmp_path,
        telegram_token=SecretStr(telegram.token),
        telegram_api_url=telegram.api_url,
        telegram_webhook_url=WEBHOOK_URL,
        telegram_webhook_secret=SecretStr(SECRET),
    )
    service, store, generator = make_service(generator=EchoGenerator(replies=["Via the app."]))
    app = create_app(
        Parley(settings, store, generator, service), [build_telegram(make_inbox(service), settings)]
    )
    async with app.router.lifespan_context(app):
        assert telegram.webhook is not None
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://web") as client:
            response = await client.post(
                WEBHOOK_PATH, json=private_message("hi"), headers={SECRET_HEADER: SECRET}
            )
            assert response.status_code == 200
            await answered(telegram, ADA["id"], 1)
    assert telegram.texts(ADA["id"]) == ["Via the app."]


@pytest.mark.parametrize("secret", [None, "", "wrong", SECRET + "x"])
async def test_webhook_without_the_secret_is_refused(
    telegram: FakeTelegram, secret: str | None
) -> None:
    service, _, generator = make_service()
    update = private_message("let me in")
    headers = {} if secret is None else {SECRET_HEADER: secret}
    async with webhook_client(telegram, service) as client:
        refused = await client.post(WEBHOOK_PATH, json=update, headers=headers)
        await telegram.settle(quiet=0.2)
        assert refused.status_code == 403
        assert generator.requests == []
        assert telegram.calls_to("sendMessage") == []
        # Nothing was claimed: the genuine delivery of the same update is answered.
        ok = await client.post(WEBHOOK_PATH, json=update, headers={SECRET_HEADER: SECRET})
        assert ok.status_code == 200
        await replied(telegram, ADA["id"], 1)


@pytest.mark.parametrize(
    "body", [b"{not json", b"[1, 2]", b'{"message": {}}', b'{"update_id": "7"}', b"\xff\xfe"]
)
async def test_webhook_with_a_malformed_body_is_a_bad_request(
    telegram: FakeTelegram, body: bytes
) -> None:
    service, _, _ = make_service()
    async with webhook_client(telegram, service) as client:
        response = await client.post(WEBHOOK_PATH, content=body, headers={SECRET_HEADER: SECRET})
    assert response.status_code == 400
    assert telegram.calls_to("sendMessage") == []


async def test_webhook_with_a_huge_body_is_refused_unread(telegram: FakeTelegram) -> None:
    service, _, _ = make_service()
    body = json.dumps(private_message("x" * (2 << 20))).encode()
    async with webhook_client(telegram, service) as client:
        response = await client.post(WEBHOOK_PATH, content=body, headers={SECRET_HEADER: SECRET})
    assert response.status_code == 413
    assert telegram.calls_to("sendMessage") == []


async def test_webhook_with_the_database_down_asks_telegram_to_retry(
    telegram: FakeTelegram,
) -> None:
    service, _, generator = make_service(store=DownStore())
    async with webhook_client(telegram, service) as client:
        response = await client.post(
            WEBHOOK_PATH, json=private_message("anyone?"), headers={SECRET_HEADER: SECRET}
        )
        await telegram.settle(quiet=0.2)
    assert response.status_code == 503
    assert telegram.calls_to("sendMessage") == []
    assert generator.requests == []


async def test_webhook_before_start_asks_telegram_to_retry(telegram: FakeTelegram) -> None:
    service, _, _ = make_service()
    adapter = TelegramAdapter(
        make_inbox(service), options_for(telegram, webhook_url=WEBHOOK_URL, webhook_secret=SECRET)
    )
    body = json.dumps(private_message("early")).encode()
    assert await adapter.handle_webhook(body, SECRET) == 503
