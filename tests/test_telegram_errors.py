"""The Telegram adapter with odd input and failures, redeliveries, and its start-up."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from bots.telegram import (
    TelegramAdapter,
)
from bots.telegram import __main__ as telegram_main
from core.errors import ConfigurationError
from core.generator import EchoGenerator
from tests.factories import make_inbox, make_service
from tests.fakes.telegram import (
    ADA,
    GROUP,
    OTHER_BOT,
    FakeTelegram,
    edited,
    group_message,
    photo_message,
    private_message,
)
from tests.telegram_fixtures import (
    SECRET,
    WEBHOOK_URL,
    BreakingGenerator,
    answered,
    history,
    options_for,
    replied,
    running,
)

# PTB itself warns when it builds a RetryAfter from an integer; the adapter handles both forms.
pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")


# ------------------------------------------------------------------- odd input, errors


async def test_empty_and_huge_messages_get_clear_answers(telegram: FakeTelegram) -> None:
    service, _, generator = make_service()
    async with running(telegram, service):
        telegram.push(group_message("@parley_bot"))
        empty = await replied(telegram, GROUP["id"], 1)
        telegram.push(private_message("x" * 1_000_000))
        huge = await replied(telegram, ADA["id"], 1)
    assert empty == ["I got an empty message. Type a question, or /help to see what I can do."]
    assert huge[0].startswith("Your message is too long: 1,000,000 characters")
    assert generator.requests == []


async def test_bots_and_edited_messages_are_ignored(telegram: FakeTelegram) -> None:
    service, store, _ = make_service()
    async with running(telegram, service, webhook_url=WEBHOOK_URL, webhook_secret=SECRET) as bot:
        statuses = [
            await bot.handle_webhook(json.dumps(update).encode(), SECRET)
            for update in (
                private_message("hello from a bot", sender=OTHER_BOT),
                group_message("@parley_bot hi from a bot", sender=OTHER_BOT),
                edited(private_message("hello, edited")),
            )
        ]
        await telegram.settle(quiet=0.2)
    assert statuses == [200, 200, 200]
    assert telegram.calls_to("sendMessage") == []
    assert history(store, ADA["id"]) == []


async def test_a_photo_gets_an_explanation(telegram: FakeTelegram) -> None:
    service, _, generator = make_service()
    async with running(telegram, service):
        telegram.push(photo_message("what is this?"))
        (text,) = await replied(telegram, ADA["id"], 1)
        telegram.push(photo_message(chat=GROUP))  # not addressed in a group: no answer
        await telegram.settle(quiet=0.2)
    assert "photo" in text
    assert telegram.texts(GROUP["id"]) == []
    assert generator.requests == []


async def test_a_failing_model_gets_an_apology(telegram: FakeTelegram) -> None:
    service, _, _ = make_service(generator=EchoGenerator(fail_with=RuntimeError("boom")))
    async with running(telegram, service):
        telegram.push(private_message("hello"))
        (text,) = await replied(telegram, ADA["id"], 1)
    assert text.startswith("Sorry, something went wrong")


async def test_a_model_failing_mid_answer_keeps_what_was_shown_and_apologises(
    telegram: FakeTelegram,
) -> None:
    generator = BreakingGenerator(replies=["one two three four five"], words=3)
    service, _, _ = make_service(generator=generator)
    async with running(telegram, service):
        telegram.push(private_message("hello"))
        await telegram.wait_until(lambda: "Sorry" in "".join(telegram.texts(ADA["id"])))
        await telegram.settle(quiet=0.2)
    (shown,) = telegram.messages(ADA["id"])
    assert shown.text.startswith("one two three\n\nSorry, something went wrong")
    assert shown.buttons == []  # an apology is not an answer to rate


async def test_a_send_failure_is_logged_and_apologised_for(
    telegram: FakeTelegram, caplog: pytest.LogCaptureFixture
) -> None:
    # Telegram refuses every send of the answer; the adapter logs it and says sorry.
    service, _, _ = make_service(generator=EchoGenerator(replies=["fine"]))
    telegram.strict = True
    original = telegram._api_sendMessage

    async def refuse_answers(params: dict[str, Any]) -> Any:
        if params.get("text") == "fine":
            from tests.fakes.telegram.http import _error

            return _error(400, "Bad Request: chat not found")
        return await original(params)

    telegram._api_sendMessage = refuse_answers  # type: ignore[method-assign]
    async with running(telegram, service):
        telegram.push(private_message("hello"))
        (text,) = await replied(telegram, ADA["id"], 1)
    assert text.startswith("Sorry, something went wrong")
    assert "replying in Telegram chat" in caplog.text
    assert "chat not found" in caplog.text.lower()


# ---------------------------------------------------------------------- delivered once


async def test_a_redelivered_update_is_answered_once(telegram: FakeTelegram) -> None:
    service, _, generator = make_service()
    update = private_message("only once, please")
    async with running(telegram, service):
        telegram.push(update)
        await answered(telegram, ADA["id"], 1)
    # Parley restarts, and Telegram delivers the same update again.
    async with running(telegram, service):
        telegram.push(update, redeliver=True)
        await telegram.wait_until(lambda: telegram.calls_to("getUpdates")[-1].params.get("offset"))
        await telegram.settle(quiet=0.3)
    assert len(telegram.messages(ADA["id"])) == 1
    assert len(generator.requests) == 1


# ---------------------------------------------------------------------------- start-up


async def test_the_token_stays_out_of_the_logs(
    telegram: FakeTelegram, caplog: pytest.LogCaptureFixture
) -> None:
    service, _, _ = make_service()
    with caplog.at_level(logging.DEBUG):
        async with running(telegram, service):
            telegram.push(private_message("hello"))
            await replied(telegram, ADA["id"], 1)
    assert "HTTP Request" in caplog.text
    assert telegram.token not in caplog.text


async def test_a_refused_token_is_a_configuration_error(telegram: FakeTelegram) -> None:
    service, _, _ = make_service()
    adapter = TelegramAdapter(make_inbox(service), options_for(telegram, token="999:wrong"))
    with pytest.raises(ConfigurationError, match="PARLEY_TELEGRAM_TOKEN"):
        await adapter.start()


def test_the_entry_point_without_a_token_says_so_and_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env here
    monkeypatch.delenv("PARLEY_TELEGRAM_TOKEN", raising=False)
    assert telegram_main.main([]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("parley: PARLEY_TELEGRAM_TOKEN is not set")
    assert len(err.splitlines()) == 1


def test_the_entry_point_refuses_to_poll_away_a_webhook(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PARLEY_TELEGRAM_TOKEN", "123:abc")
    monkeypatch.setenv("PARLEY_TELEGRAM_WEBHOOK_URL", WEBHOOK_URL)
    monkeypatch.setenv("PARLEY_TELEGRAM_WEBHOOK_SECRET", SECRET)
    assert telegram_main.main([]) == 2
    assert "python -m bots.web" in capsys.readouterr().err
