"""Voice messages and images: the core's intake (with a scripted reader) and the real readers.

The first half drives :class:`core.media.MediaIntake` through the conversation service with
a reader that returns scripted readings, to pin down what people are told and what is
stored. The second half reads real files: speech spoken by espeak-ng and transcribed by
faster-whisper with the packaged Whisper tiny.en (``slow``), and text drawn by Pillow and
read by Tesseract.
"""

from __future__ import annotations

import logging
import string
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from config.settings import Settings
from config.wiring import build_media
from core.errors import ConfigurationError, ModelLoadError
from core.media import (
    Attachment,
    MediaError,
    MediaIntake,
    MediaKind,
    MediaLimits,
    Reading,
    heading,
    turn_text,
)
from core.types import Message, ReplyKind, Role
from tests.factories import make_message, make_service
from tests.media_fixtures import blank_picture, needs_media_tools, picture_with_text, speech
from workers.media import LocalMediaReader, MediaOptions, read_media, resolve_whisper
from workers.vision import VisionDescriber, check_vision_model

# ------------------------------------------------------------------ a scripted reader


@dataclass
class ScriptedReader:
    """A MediaReader that returns readings in turn (or raises them) and records the bytes."""

    script: list[Reading | Exception] = field(default_factory=list)
    seen: list[tuple[MediaKind, bytes, str | None]] = field(default_factory=list)

    async def read(self, kind: MediaKind, data: bytes, mime: str | None) -> Reading:
        self.seen.append((kind, data, mime))
        outcome = self.script.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


@dataclass
class FileOnServer:
    """A file an adapter would download; counts the downloads."""

    data: bytes
    downloads: int = 0

    async def fetch(self, limit: int) -> bytes:
        self.downloads += 1
        return self.data


def voice(data: bytes = b"OggS...", **kw: object) -> tuple[Attachment, FileOnServer]:
    file = FileOnServer(data)
    values: dict[str, object] = {"kind": MediaKind.VOICE, "mime": "audio/ogg", **kw}
    return Attachment(fetch=file.fetch, **values), file  # type: ignore[arg-type]


def image(data: bytes = b"\x89PNG...", **kw: object) -> tuple[Attachment, FileOnServer]:
    file = FileOnServer(data)
    return Attachment(kind=MediaKind.IMAGE, fetch=file.fetch, **kw), file  # type: ignore[arg-type]


def with_files(*attachments: Attachment, caption: str = "") -> Message:
    kinds = tuple("voice" if a.kind.is_audio else "photo" for a in attachments)
    return replace(make_message(caption), media=kinds, attachments=attachments)


def heard(text: str) -> Reading:
    return Reading(kind=MediaKind.VOICE, text=text, source="Whisper tiny.en", seconds=3.0)


def read_text(text: str) -> Reading:
    return Reading(kind=MediaKind.IMAGE, text=text, source="Tesseract OCR")


def service_with(reader: ScriptedReader, **limits: object):  # type: ignore[no-untyped-def]
    intake = MediaIntake(reader, MediaLimits(**limits))  # type: ignore[arg-type]
    return make_service(media=intake)


async def test_a_voice_note_is_transcribed_stored_as_the_turn_and_answered() -> None:
    reader = ScriptedReader([heard("What time is the meeting tomorrow?")])
    service, store, generator = service_with(reader)
    attachment, file = voice(b"OggS-bytes", size=10, duration=3)
    message = with_files(attachment)
    reply = await service.handle(message).collect()
    assert reply.kind is ReplyKind.ANSWER
    assert reply.text == (
        "🎤 I heard: “What time is the meeting tomorrow?”\n\n"
        "You said: What time is the meeting tomorrow?"
    )
    assert file.downloads == 1
    assert reader.seen == [(MediaKind.VOICE, b"OggS-bytes", "audio/ogg")]
    turns = [(t.role, t.text) for t in store.history(message.key, 10)]
    assert turns[0] == (Role.USER, "What time is the meeting tomorrow?")
    assert generator.requests[-1].turns[-1].content == "What time is the meeting tomorrow?"


async def test_the_streamed_deltas_add_up_to_the_reply() -> None:
    service, _, _ = service_with(ScriptedReader([heard("hello there")]))
    stream = service.handle(with_files(voice()[0]))
    deltas = [delta async for delta in stream]
    assert "".join(deltas) == stream.result.text
    assert deltas[0].startswith("🎤 I heard")


async def test_text_in_an_image_enters_with_a_note_of_where_it_came_from() -> None:
    reader = ScriptedReader([read_text("Invoice 42 is due on Friday")])
    service, store, _ = service_with(reader)
    message = with_files(image()[0], caption="When must I pay this?")
    reply = await service.handle(message).collect()
    assert reply.kind is ReplyKind.ANSWER
    assert reply.text.startswith("🖼️ I read in your image: “Invoice 42 is due on Friday”\n\n")
    [asked] = [t.text for t in store.history(message.key, 10) if t.role is Role.USER]
    assert asked == (
        "When must I pay this?\n\n"
        "[Text read by OCR from an image I sent; it may contain errors]:\n"
        "Invoice 42 is due on Friday"
    )


async def test_an_image_without_text_gets_an_honest_answer_and_nothing_is_stored() -> None:
    service, store, generator = service_with(ScriptedReader([read_text("")]))
    message = with_files(image()[0], caption="what is this?")
    reply = await service.handle(message).collect()
    assert reply.kind is ReplyKind.NOTICE
    assert "I can't see pictures" in reply.text
    assert "found no text" in reply.text
    assert store.history(message.key, 10) == []
    assert generator.requests == []


async def test_silence_is_said_to_be_silence() -> None:
    service, store, _ = service_with(ScriptedReader([heard("  ")]))
    reply = await service.handle(with_files(voice()[0])).collect()
    assert "could not make out any words" in reply.text
    assert store.history(make_message("").key, 10) == []


async def test_a_file_reported_too_large_is_refused_before_any_download() -> None:
    reader = ScriptedReader()
    service, _, _ = service_with(reader, max_bytes=1000)
    attachment, file = voice(size=5 * 1024 * 1024)
    accepted = await service.accept(with_files(attachment))
    assert accepted.reply is not None
    assert accepted.reply.kind is ReplyKind.ERROR
    assert "too large" in accepted.reply.text
    assert "5.0 MB" in accepted.reply.text
    assert file.downloads == 0
    assert reader.seen == []


async def test_a_file_larger_than_reported_is_refused_on_its_bytes() -> None:
    reader = ScriptedReader()
    service, store, _ = service_with(reader, max_bytes=1000)
    attachment, file = image(b"x" * 5000, size=None)
    reply = await service.handle(with_files(attachment)).collect()
    assert reply.kind is ReplyKind.ERROR
    assert "too large" in reply.text
    assert file.downloads == 1
    assert reader.seen == []  # never read
    assert store.history(make_message("").key, 10) == []


async def test_a_recording_reported_too_long_is_refused_before_any_download() -> None:
    service, _, _ = service_with(ScriptedReader(), max_audio_seconds=60)
    attachment, file = voice(duration=600)
    reply = await service.handle(with_files(attachment)).collect()
    assert reply.kind is ReplyKind.ERROR
    assert "600 seconds" in reply.text
    assert "at most 60" in reply.text
    assert file.downloads == 0


async def test_a_reader_refusal_reaches_the_person_as_written() -> None:
    refusal = MediaError("I could not play your voice message.", reason="unreadable")
    service, store, _ = service_with(ScriptedReader([refusal]))
    reply = await service.handle(with_files(voice()[0])).collect()
    assert (reply.kind, reply.text) == (ReplyKind.ERROR, "I could not play your voice message.")
    assert store.history(make_message("").key, 10) == []


async def test_a_broken_reader_or_download_gets_a_clear_apology() -> None:
    service, _, _ = service_with(ScriptedReader([ConnectionError("redis is down")]))
    reply = await service.handle(with_files(voice()[0])).collect()
    assert reply.kind is ReplyKind.ERROR
    assert "could not read your voice message just now" in reply.text

    async def unreachable(limit: int) -> bytes:
        raise TimeoutError

    service, _, _ = service_with(ScriptedReader())
    broken = Attachment(kind=MediaKind.IMAGE, fetch=unreachable)
    reply = await service.handle(with_files(broken)).collect()
    assert "could not download your image" in reply.text


async def test_too_many_files_and_too_much_text_are_refused() -> None:
    service, _, _ = service_with(ScriptedReader(), max_files=2)
    accepted = await service.accept(with_files(image()[0], image()[0], image()[0]))
    assert accepted.reply is not None
    assert "at most 2" in accepted.reply.text
    service, store, _ = service_with(ScriptedReader([read_text("word " * 1000)]))
    reply = await service.handle(with_files(image()[0])).collect()
    assert reply.kind is ReplyKind.ERROR
    assert "at most 2,000" in reply.text
    assert store.history(make_message("").key, 10) == []


async def test_without_a_reader_files_get_the_old_explanation() -> None:
    service, _, _ = make_service()
    reply = await service.handle(with_files(voice()[0])).collect()
    assert "I can only read text" in reply.text


async def test_other_media_are_named_when_voice_and_images_are_read() -> None:
    service, _, _ = service_with(ScriptedReader())
    message = replace(make_message(""), media=("video",))
    reply = await service.handle(message).collect()
    assert "voice messages, audio files and images" in reply.text
    assert "can't open video" in reply.text


def test_readings_and_errors_travel_as_json() -> None:
    reading = Reading(kind=MediaKind.AUDIO, text="hi", source="Whisper", seconds=1.5)
    assert Reading.from_json(reading.to_json()) == reading
    error = MediaError("too long", reason="too_long")
    assert error.to_json() == {"error": "too_long", "message": "too long"}


def test_turn_text_and_heading_name_every_source() -> None:
    readings = [heard("call me back"), read_text("Room 4B")]
    assert turn_text(readings, "") == (
        "[Transcript of my voice message]: call me back\n\n"
        "[Text read by OCR from an image I sent; it may contain errors]:\nRoom 4B"
    )
    assert heading(readings) == (
        "🎤 I heard: “call me back”\n🖼️ I read in your image: “Room 4B”\n\n"
    )
    described = Reading(kind=MediaKind.IMAGE, text="", source="SmolVLM", description="A cat.")
    assert turn_text([described], "") == "[An image I sent, as described by SmolVLM]: A cat."
    long = heading([heard("word " * 500)])
    assert len(long) < 700
    assert "…" in long


# ------------------------------------------------------------------ the real readers


def _words(text: str) -> list[str]:
    return text.lower().translate(str.maketrans("", "", string.punctuation)).split()


OPTIONS = MediaOptions(progress_after_s=0.5)


@pytest.mark.slow
@needs_media_tools
def test_speech_is_transcribed_from_ogg_opus_and_mp3(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="workers.media")
    said = "What time is the meeting tomorrow?"
    reading = read_media(MediaKind.VOICE, speech(said), "audio/ogg", OPTIONS)
    assert _words(reading.text) == _words(said)
    assert reading.source == "Whisper tiny.en"
    assert reading.seconds is not None
    assert 1.0 < reading.seconds < 5.0
    assert any("transcribing:" in r.message for r in caplog.records), "progress is logged"
    assert any("x real time" in r.message for r in caplog.records)
    mp3 = read_media(MediaKind.AUDIO, speech("Good morning everyone.", "mp3"), None, OPTIONS)
    assert _words(mp3.text) == ["good", "morning", "everyone"]


@pytest.mark.slow
@needs_media_tools
def test_audio_longer_than_the_limit_or_corrupt_is_refused() -> None:
    short = replace(OPTIONS, max_audio_seconds=1.0)
    with pytest.raises(MediaError) as too_long:
        read_media(MediaKind.VOICE, speech("This sentence takes more than a second."), None, short)
    assert too_long.value.reason == "too_long"
    ogg = speech("What time is the meeting tomorrow?")
    for broken in (b"OggS" + b"\x00" * 400, ogg[: len(ogg) // 8], b""):
        with pytest.raises(MediaError) as unreadable:
            read_media(MediaKind.VOICE, broken, "audio/ogg", OPTIONS)
        assert unreadable.value.reason == "unreadable"
        assert "could not play your voice message" in str(unreadable.value)


@needs_media_tools
def test_text_in_images_is_read_back() -> None:
    png = picture_with_text("Invoice 42 is due on Friday\nTotal: 310 euros")
    reading = read_media(MediaKind.IMAGE, png, "image/png", OPTIONS)
    assert reading.text == "Invoice 42 is due on Friday\nTotal: 310 euros"
    assert reading.source == "Tesseract OCR"
    jpeg = picture_with_text("Meeting moved to Tuesday", "JPEG")
    assert read_media(MediaKind.IMAGE, jpeg, None, OPTIONS).text == "Meeting moved to Tuesday"
    assert read_media(MediaKind.IMAGE, blank_picture(), None, OPTIONS).text == ""


@needs_media_tools
def test_a_corrupt_image_is_refused_and_a_missing_tesseract_is_told() -> None:
    for broken in (b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, b"not a picture", b""):
        with pytest.raises(MediaError) as refused:
            read_media(MediaKind.IMAGE, broken, "image/png", OPTIONS)
        assert refused.value.reason == "unreadable"
    missing = replace(OPTIONS, tesseract="/nonexistent/tesseract")
    with pytest.raises(MediaError) as unavailable:
        read_media(MediaKind.IMAGE, picture_with_text("hello"), None, missing)
    assert unavailable.value.reason == "unavailable"


def test_the_whisper_setting_names_a_model_or_says_what_is_wrong(tmp_path: Path) -> None:
    assert Path(resolve_whisper("packaged:whisper-tiny.en"), "model.bin").is_file()
    assert resolve_whisper("large-v3") == "large-v3"  # a name faster-whisper downloads
    assert resolve_whisper(str(tmp_path)) == str(tmp_path)
    for wrong in ("packaged:whisper-huge", "/nonexistent/whisper"):
        with pytest.raises(ConfigurationError, match="PARLEY_WHISPER_MODEL"):
            resolve_whisper(wrong)
    with pytest.raises(ConfigurationError, match="PARLEY_WHISPER_MODEL"):
        build_media(Settings(_env_file=None, whisper_model="/nonexistent"))  # type: ignore[call-arg]


def test_the_vision_setting_is_checked_when_parley_starts(tmp_path: Path) -> None:
    assert check_vision_model("HuggingFaceTB/SmolVLM-256M-Instruct").startswith("Hugging")
    assert check_vision_model(str(tmp_path)) == str(tmp_path)
    for wrong in ("/nonexistent/vlm", "just-a-name", "a/b/c"):
        with pytest.raises(ConfigurationError, match="PARLEY_VISION_MODEL"):
            check_vision_model(wrong)
    settings = Settings(_env_file=None, vision_model="/nonexistent/vlm")  # type: ignore[call-arg]
    with pytest.raises(ConfigurationError, match="PARLEY_VISION_MODEL"):
        build_media(settings)
    off = Settings(_env_file=None, media=False)  # type: ignore[call-arg]
    assert build_media(off) is None
    intake = build_media(Settings(_env_file=None, max_media_bytes=1234))  # type: ignore[call-arg]
    assert intake is not None
    assert isinstance(intake.reader, LocalMediaReader)
    assert intake.limits.max_bytes == 1234


@pytest.mark.slow
@needs_media_tools
def test_a_vision_model_that_fails_to_load_leaves_the_ocr_reading(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # No vision-language model is packaged and no hub is reachable here: the real loading
    # code runs against an empty folder, fails, and the OCR text still comes through.
    with pytest.raises(ModelLoadError, match="PARLEY_VISION_MODEL"):
        VisionDescriber(str(tmp_path)).describe(_image())
    options = replace(OPTIONS, vision_model=str(tmp_path))
    reading = read_media(MediaKind.IMAGE, picture_with_text("Gate B12"), None, options)
    assert (reading.text, reading.description, reading.source) == (
        "Gate B12",
        None,
        "Tesseract OCR",
    )
    assert "describing an image" in caplog.text


def _image():  # type: ignore[no-untyped-def]
    from PIL import Image

    return Image.new("RGB", (8, 8))


# ------------------------------------------------------------ what the adapters hand over


def test_slack_files_become_attachments_by_kind() -> None:
    from slack_sdk.web.async_client import AsyncWebClient

    from bots.slack.files import SlackFiles, kind_of

    assert kind_of({"mimetype": "audio/mp4", "subtype": "slack_audio"}) is MediaKind.VOICE
    assert kind_of({"mimetype": "video/webm", "subtype": "slack_audio"}) is MediaKind.VOICE
    assert kind_of({"mimetype": "audio/mpeg"}) is MediaKind.AUDIO
    assert kind_of({"mimetype": "image/png"}) is MediaKind.IMAGE
    assert kind_of({"mimetype": "application/pdf"}) is None
    files = SlackFiles(AsyncWebClient(token="xoxb-test"))
    event = {
        "files": [
            {"id": "F1", "mimetype": "audio/mp4", "subtype": "slack_audio", "size": 900},
            {"id": "F2", "mimetype": "application/pdf", "size": 5},
            {"id": "F3", "mimetype": "image/jpeg", "duration_ms": "x"},
            {"mimetype": "image/png"},  # no id: nothing to download
        ]
    }
    clip, photo = files.attachments(event)
    assert (clip.kind, clip.size, photo.kind, photo.size) == (
        MediaKind.VOICE,
        900,
        MediaKind.IMAGE,
        None,
    )
    clip_with_length = files.attachments(
        {"files": [{"id": "F4", "mimetype": "audio/ogg", "duration_ms": 4500}]}
    )
    assert clip_with_length[0].duration == 4.5


@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")
def test_telegram_voice_audio_photos_and_image_documents_become_attachments() -> None:
    import telegram

    from bots.telegram.files import attachments_of
    from tests.fakes.telegram import photo_message, private_message, voice_message

    bot = telegram.Bot("123:abc")

    def of(update: dict[str, object]) -> tuple[Attachment, ...]:
        return attachments_of(telegram.Message.de_json(update["message"], bot), bot)  # type: ignore[arg-type]

    [note] = of(voice_message("v1", duration=7, size=1234))
    assert (note.kind, note.duration, note.size, note.mime) == (
        MediaKind.VOICE,
        7.0,
        1234,
        "audio/ogg",
    )
    [photo] = of(photo_message(file_id="big", size=50_000))
    assert (photo.kind, photo.size) == (MediaKind.IMAGE, 50_000)  # the largest size sent
    scan = {"file_id": "d1", "file_unique_id": "u", "mime_type": "image/png", "file_size": 9}
    [document] = of(private_message(None, document=scan))
    assert document.kind is MediaKind.IMAGE
    pdf = {**scan, "mime_type": "application/pdf"}
    assert of(private_message(None, document=pdf)) == ()
    assert of(private_message("just text")) == ()
