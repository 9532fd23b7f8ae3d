"""Telegram's flood window: after a 429, no call of any kind goes into that chat until it ends."""

from __future__ import annotations

import asyncio

import pytest
from telegram.error import RetryAfter

from bots.telegram.flood import FloodWindows
from tests.factories import make_service
from tests.fakes.telegram import (
    ADA,
    BOB,
    GROUP,
    FakeTelegram,
    group_message,
    private_message,
)
from tests.telegram_fixtures import PacedGenerator, answered, running, with_buttons

# PTB itself warns when it builds a RetryAfter from an integer; the adapter handles both forms.
pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")

WINDOW = 2  # seconds Telegram asks to wait
WORDS = " ".join(f"word{i}" for i in range(50))  # streamed over ~2.5 s: past the window


def inside_window(telegram: FakeTelegram, chat_id: int) -> list[str]:
    """The calls into the chat after the one that opened its window, before its end."""
    window = telegram.flood_window(chat_id)
    assert window is not None, "the fake never answered 429 in this chat"
    start, end = window
    return [c.method for c in telegram.calls_into(chat_id) if start < c.at < end]


@pytest.mark.parametrize("method", ["sendChatAction", "sendMessage", "editMessageText"])
async def test_no_call_goes_into_a_chat_inside_its_window(
    telegram: FakeTelegram, method: str
) -> None:
    generator = PacedGenerator(replies=[WORDS], delay=0.05)
    service, _, _ = make_service(generator=generator)
    telegram.flood(ADA["id"], WINDOW, method=method)
    async with running(telegram, service, typing_interval=0.1, edit_interval=0.1):
        telegram.push(private_message("talk to me"))
        shown = await answered(telegram, ADA["id"], 1)
        await telegram.settle(quiet=0.2)
    assert inside_window(telegram, ADA["id"]) == []
    assert [m.text for m in shown] == [WORDS]  # the final text still arrives
    assert telegram.errors == []


async def test_the_window_binds_every_reply_in_the_chat(telegram: FakeTelegram) -> None:
    # Two people in a group are answered at once; a 429 on one reply holds the other too.
    generator = PacedGenerator(replies=[WORDS, WORDS], delay=0.05)
    service, _, _ = make_service(generator=generator)
    telegram.flood(GROUP["id"], WINDOW, method="editMessageText")
    async with running(telegram, service, typing_interval=0.1, edit_interval=0.1):
        telegram.push(group_message("@parley_bot talk to me"))
        telegram.push(group_message("@parley_bot me too", sender=BOB))
        await telegram.wait_until(lambda: len(with_buttons(telegram, GROUP["id"])) == 2, 15)
        await telegram.settle(quiet=0.2)
    shown = with_buttons(telegram, GROUP["id"])
    assert inside_window(telegram, GROUP["id"]) == []
    assert [m.text for m in shown] == [WORDS, WORDS]
    assert telegram.errors == []


async def test_another_chat_is_not_held(telegram: FakeTelegram) -> None:
    generator = PacedGenerator(replies=[WORDS, "Hello Bob."], delay=0.05)
    service, _, _ = make_service(generator=generator)
    telegram.flood(ADA["id"], WINDOW, method="sendMessage")
    async with running(telegram, service, typing_interval=0.1, edit_interval=0.1):
        telegram.push(private_message("talk to me"))
        await telegram.wait_until(lambda: telegram.flood_window(ADA["id"]) is not None)
        telegram.push(private_message("hi", sender=BOB))
        await answered(telegram, BOB["id"], 1)
        window = telegram.flood_window(ADA["id"])
        assert window is not None
        bob = telegram.calls_into(BOB["id"])
        assert any(window[0] < c.at < window[1] for c in bob), "Bob's chat has no window"
        await answered(telegram, ADA["id"], 1)
    assert inside_window(telegram, ADA["id"]) == []


# --------------------------------------------------------------------- the tracker alone


async def test_a_window_is_kept_while_open_and_then_forgotten() -> None:
    windows = FloodWindows()
    calls: list[str] = []

    async def limited() -> None:
        calls.append("limited")
        raise RetryAfter(1)

    async def action() -> None:
        calls.append("action")

    with pytest.raises(RetryAfter):
        await windows.send(7, limited)
    assert 0.5 < windows.remaining(7) <= 1.0
    assert await windows.act(7, action) is False  # skipped, not delayed
    assert windows.remaining(8) == 0.0  # other chats are free
    assert await windows.act(8, action) is True
    await asyncio.sleep(windows.remaining(7))
    assert await windows.act(7, action) is True
    assert calls == ["limited", "action", "action"]
    assert windows._chats == {}  # nothing kept for chats without a window
