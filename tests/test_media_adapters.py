"""Voice notes and images end to end: real clients, fake platforms, real transcription and OCR.

A person sends a voice note on Telegram (OGG/Opus spoken by espeak-ng) or shares an audio
clip or an image on Slack; python-telegram-bot and slack_sdk download it from the local fake
servers (``getFile`` and the file address; ``files.info`` and ``url_private_download``),
faster-whisper or Tesseract reads it in this process, and the echo generator answers what
was heard. What the chat shows and what the store holds are checked.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from starlette.applications import Starlette

from bots.slack import build_slack
from core.conversation import ConversationService
from core.media import MediaIntake, MediaLimits
from core.store import Store
from core.types import ConversationKey, Role
from tests.factories import make_inbox, make_service
from tests.fakes.slack import TEAM, FakeSlack, SlackSender, app_mention, dm
from tests.fakes.telegram import ADA, FakeTelegram, photo_message, voice_message
from tests.media_fixtures import blank_picture, needs_media_tools, picture_with_text, speech
from tests.slack_fixtures import SECRET, settings_for
from tests.telegram_fixtures import replied, running
from workers.media import LocalMediaReader, MediaOptions

pytestmark = [
    pytest.mark.slow,
    needs_media_tools,
    pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning"),
]

QUESTION = "What time is the meeting tomorrow?"
LIMIT = 200_000  # bytes: a few seconds of Opus fit, an oversized file is easy to make


def media_service(**limits: Any) -> tuple[ConversationService, Store]:
    intake = MediaIntake(
        LocalMediaReader(MediaOptions()), MediaLimits(**{"max_bytes": LIMIT, **limits})
    )
    service, store, _ = make_service(media=intake)
    return service, store


def words(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


def user_turns(store: Store, key: ConversationKey) -> list[str]:
    return [t.text for t in store.history(key, 20) if t.role is Role.USER]


# ---------------------------------------------------------------------------- Telegram


async def test_a_telegram_voice_note_is_heard_and_answered(telegram: FakeTelegram) -> None:
    service, store = media_service()
    ogg = speech(QUESTION)
    file_id = telegram.add_file(ogg)
    async with running(telegram, service):
        telegram.push(voice_message(file_id, duration=3, size=len(ogg)))
        (shown,) = await replied(telegram, ADA["id"], 1)
    heard_line, _, answer = shown.partition("\n\n")
    assert heard_line.startswith("🎤 I heard: “")
    assert words(heard_line) == words("I heard " + QUESTION)
    assert words(answer) == words("You said: " + QUESTION)
    assert [m.buttons != [] for m in telegram.messages(ADA["id"])] == [True]
    key = ConversationKey("telegram", None, str(ADA["id"]))
    [turn] = user_turns(store, key)
    assert words(turn) == words(QUESTION)
    assert telegram.downloads == [f"documents/{file_id}.bin"]


async def test_a_telegram_photo_with_text_is_read(telegram: FakeTelegram) -> None:
    service, store = media_service()
    jpeg = picture_with_text("Flight LH 454 boards at gate B12", "JPEG")
    file_id = telegram.add_file(jpeg)
    blank = telegram.add_file(blank_picture())
    async with running(telegram, service):
        telegram.push(photo_message("When do I board?", file_id=file_id, size=len(jpeg)))
        first, *_ = await replied(telegram, ADA["id"], 1)
        telegram.push(photo_message(file_id=blank, size=len(blank_picture())))
        _, second = await replied(telegram, ADA["id"], 2)
    assert first.startswith("🖼️ I read in your image: “Flight LH 454 boards at gate B12”")
    [turn] = user_turns(store, ConversationKey("telegram", None, str(ADA["id"])))
    assert turn.startswith("When do I board?\n\n[Text read by OCR from an image I sent")
    assert "I can't see pictures" in second


async def test_telegram_refuses_oversized_and_corrupt_voice_notes_clearly(
    telegram: FakeTelegram,
) -> None:
    service, store = media_service()
    big = telegram.add_file(b"\x00" * (LIMIT + 1))
    broken = telegram.add_file(b"OggS" + bytes(range(256)) * 4)
    async with running(telegram, service):
        telegram.push(voice_message(big, duration=20, size=LIMIT + 1))
        await replied(telegram, ADA["id"], 1)
        # A message claiming a small file: getFile's size is checked before downloading.
        telegram.push(voice_message(big, duration=20, size=100))
        await replied(telegram, ADA["id"], 2)
        telegram.push(voice_message(broken, duration=2, size=1028))
        oversized, measured, corrupt = await replied(telegram, ADA["id"], 3)
    assert "too large" in oversized
    assert "too large" in measured
    assert "could not play your voice message" in corrupt
    assert [c.params["file_id"] for c in telegram.calls_to("getFile")] == [big, broken]
    assert telegram.downloads == [f"documents/{broken}.bin"]
    assert store.history(ConversationKey("telegram", None, str(ADA["id"])), 10) == []


# ------------------------------------------------------------------------------- Slack


async def deliver(slack: FakeSlack, service: ConversationService, *events: dict[str, Any]) -> None:
    adapter = build_slack(make_inbox(service), settings_for(slack), edit_interval=0.03)
    sender = SlackSender(Starlette(routes=adapter.routes()), signing_secret=SECRET)
    for event in events:
        response = await sender.event(event)
        assert response.status_code == 200
        await adapter.drain()


async def test_a_slack_audio_clip_is_heard_and_answered(slack: FakeSlack) -> None:
    service, store = media_service()
    clip = speech(QUESTION, "m4a")
    file = slack.add_file(
        clip, name="audio_message.m4a", mimetype="audio/mp4", subtype="slack_audio"
    )
    await deliver(slack, service, dm("", subtype="file_share", files=[file]))
    [message] = slack.in_thread("D1", None)
    heard_line, _, answer = message.shown.partition("\n\n")
    assert words(heard_line) == words("I heard " + QUESTION)
    assert words(answer) == words("You said: " + QUESTION)
    assert message.buttons
    assert slack.downloads == [file["id"]]
    assert [c.args["file"] for c in slack.calls_of("files.info")] == [file["id"]]
    [turn] = user_turns(store, ConversationKey("slack", TEAM, "D1", None))
    assert words(turn) == words(QUESTION)


async def test_an_image_shared_with_a_mention_is_read_in_its_thread(slack: FakeSlack) -> None:
    service, store = media_service()
    png = picture_with_text("Standup moved to 10:30")
    file = slack.add_file(png, name="note.png", mimetype="image/png")
    mention = app_mention("<@U0PARLEY> what does this say?", files=[file])
    await deliver(slack, service, mention)
    [message] = slack.in_thread("C1", mention["ts"])
    assert message.shown.startswith("🖼️ I read in your image: “Standup moved to 10:30”")
    [turn] = user_turns(store, ConversationKey("slack", TEAM, "C1", mention["ts"]))
    assert turn.startswith("what does this say?\n\n[Text read by OCR")


async def test_slack_refuses_oversized_files_and_says_when_it_may_not_download(
    slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    service, store = media_service()
    png = picture_with_text("secret plan")
    big = slack.add_file(png, name="big.png", mimetype="image/png", size=LIMIT * 10)
    lying = slack.add_file(b"\x00" * (LIMIT + 1), name="small.png", mimetype="image/png")
    lying["size"] = 10  # the event and files.info claim a small file; the bytes do not
    fine = slack.add_file(png, name="plan.png", mimetype="image/png")
    await deliver(slack, service, dm("", subtype="file_share", files=[big]))
    await deliver(slack, service, dm("", subtype="file_share", files=[lying]))
    slack.scopes.discard("files:read")  # an app installed from an older manifest
    await deliver(slack, service, dm("", subtype="file_share", files=[fine]))
    oversized, measured, forbidden = (m.shown for m in slack.in_thread("D1", None))
    assert "too large" in oversized
    assert "too large" in measured
    assert "could not download your image from Slack (missing_scope)" in forbidden
    assert "files:read" in caplog.text
    assert slack.downloads == [lying["id"]]
    assert store.history(ConversationKey("slack", TEAM, "D1", None), 10) == []
