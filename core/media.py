"""Voice messages, audio files and images, as the core sees them: platform-neutral.

An adapter describes each file it can hand over as an :class:`Attachment`: its kind, MIME
type, the size and duration the platform reports, and ``fetch``, a callable that downloads
the bytes (the adapter's client and token stay behind it). The conversation service then
works in two steps, like for text (see :class:`MediaIntake`)::

    refusal = intake.check(message.attachments)   # at accept: reported size and length
    readings = await intake.read(message.attachments)   # after the platform's ack
    text = turn_text(readings, caption=message.text)    # the person's turn, with its source

Reading downloads each file (checking the size again on the bytes), hands the bytes to a
:class:`MediaReader` (faster-whisper or Tesseract, in this process or on a Celery worker),
and lets them go: only the text read is kept, stored as the person's turn like anything
they type, so every later privacy rule (``/forget``, redaction) applies to it.

Anything a person should hear about (a file too large, audio too long, a format that does
not decode) is a :class:`MediaError` whose message is written for them.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from core.errors import ParleyError

__all__ = [
    "Attachment",
    "Fetch",
    "MediaError",
    "MediaIntake",
    "MediaKind",
    "MediaLimits",
    "MediaReader",
    "Reading",
    "heading",
    "nothing_read",
    "turn_text",
]

log = logging.getLogger(__name__)

Fetch = Callable[[int], Awaitable[bytes]]
"""Downloads a file's bytes; given the most bytes wanted, it may stop soon after that many."""

HEARD_PREVIEW_CHARS = 600
"""Most characters of what was heard or read that the answer repeats before itself."""


class MediaKind(StrEnum):
    """What a file is, for Parley: speech to transcribe or a picture to read."""

    VOICE = "voice"
    AUDIO = "audio"
    IMAGE = "image"

    @property
    def is_audio(self) -> bool:
        """True for voice notes and audio files."""
        return self is not MediaKind.IMAGE

    @property
    def label(self) -> str:
        """How a reply names one of these: "voice message", "audio file", "image"."""
        return {"voice": "voice message", "audio": "audio file", "image": "image"}[self.value]


@dataclass(frozen=True, slots=True, kw_only=True)
class Attachment:
    """A file a person sent, as the adapter describes it; the bytes come from ``fetch``."""

    kind: MediaKind
    fetch: Fetch = field(compare=False, repr=False)
    mime: str | None = None
    size: int | None = None
    """Bytes, as the platform reports them (``None`` when it does not)."""
    duration: float | None = None
    """Seconds of audio, as the platform reports them."""
    name: str | None = None
    ref: str | None = None
    """The platform's own name of the file (a Telegram file_id, a Slack file id), by which
    it can be downloaded again after a restart (see :mod:`core.intake`)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class MediaLimits:
    """What Parley takes: the largest file, the longest audio, the most files per message."""

    max_bytes: int = 20 * 1024 * 1024
    max_audio_seconds: float = 300.0
    max_files: int = 4


@dataclass(frozen=True, slots=True, kw_only=True)
class Reading:
    """What a reader got out of one file: the words heard or read, and how."""

    kind: MediaKind
    text: str
    source: str
    """What read it: e.g. "Whisper tiny.en", "Tesseract OCR"."""
    seconds: float | None = None
    """Length of the audio, when it was audio."""
    description: str | None = None
    """What a vision-language model saw in an image (only when one is configured)."""

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready form, to travel back from a worker."""
        return {
            "kind": str(self.kind),
            "text": self.text,
            "source": self.source,
            "seconds": self.seconds,
            "description": self.description,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Reading:
        """Rebuild a reading made by :meth:`to_json`."""
        return cls(
            kind=MediaKind(data["kind"]),
            text=str(data["text"]),
            source=str(data["source"]),
            seconds=data.get("seconds"),
            description=data.get("description"),
        )


class MediaError(ParleyError):
    """A file Parley will not or cannot read; the message is written for the person.

    ``reason`` names the case for logs and tests: ``too_large``, ``too_long``,
    ``unreadable``, ``download`` or ``unavailable``.
    """

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason

    def to_json(self) -> dict[str, str]:
        """A JSON-ready form, to travel back from a worker."""
        return {"error": self.reason, "message": str(self)}


class MediaReader(Protocol):
    """Turns a file's bytes into text: transcription for audio, OCR (or a VLM) for images."""

    async def read(self, kind: MediaKind, data: bytes, mime: str | None) -> Reading:
        """Read one file; raises :class:`MediaError` for what cannot be read."""
        ...


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"


def too_large(kind: MediaKind, size: int, limit: int) -> MediaError:
    """The error for a file over the size limit."""
    return MediaError(
        f"Your {kind.label} is too large for me: {_megabytes(size)}, and I take at most "
        f"{_megabytes(limit)}. Please send a smaller one, or type your question.",
        reason="too_large",
    )


def too_long(seconds: float, limit: float) -> MediaError:
    """The error for audio over the length limit."""
    return MediaError(
        f"Your recording is too long for me: {seconds:.0f} seconds, and I transcribe at most "
        f"{limit:.0f}. Please send a shorter one, or type your question.",
        reason="too_long",
    )


class MediaIntake:
    """The conversation service's side of media: check what the platform says, then read."""

    def __init__(
        self, reader: MediaReader, limits: MediaLimits, *, lease_seconds: float = 60.0
    ) -> None:
        self.reader = reader
        self.limits = limits
        self.lease_seconds = lease_seconds
        """How long an intake stays with the process reading it without a renewal."""

    def check(self, attachments: Sequence[Attachment]) -> str | None:
        """Why these files are refused before any download, from what the platform reports.

        ``None`` when they may be read.
        """
        limits = self.limits
        if len(attachments) > limits.max_files:
            return (
                f"You sent {len(attachments)} files; I read at most {limits.max_files} at a "
                "time. Please send fewer."
            )
        for item in attachments:
            if item.size is not None and item.size > limits.max_bytes:
                return str(too_large(item.kind, item.size, limits.max_bytes))
            limit = limits.max_audio_seconds
            if item.kind.is_audio and item.duration is not None and item.duration > limit:
                return str(too_long(item.duration, limit))
        return None

    async def read(self, attachments: Sequence[Attachment]) -> list[Reading]:
        """Download and read each file in turn; the bytes are dropped as soon as read.

        Raises :class:`MediaError` for the first file that cannot be read.
        """
        readings = []
        for item in attachments:
            data = await self._download(item)
            try:
                readings.append(await self.reader.read(item.kind, data, item.mime))
            except MediaError:
                raise
            except Exception as exc:  # the reader's machinery (Redis, a worker) failed
                log.exception("reading a %s failed", item.kind.label)
                raise MediaError(
                    f"Sorry, I could not read your {item.kind.label} just now. Please try "
                    "again in a moment, or type your question.",
                    reason="unavailable",
                ) from exc
            finally:
                del data  # only the text read is kept
        return readings

    async def _download(self, item: Attachment) -> bytes:
        limit = self.limits.max_bytes
        try:
            data = await item.fetch(limit)
        except MediaError:
            raise
        except Exception as exc:
            log.warning("downloading a %s failed", item.kind.label, exc_info=True)
            raise MediaError(
                f"I could not download your {item.kind.label} ({type(exc).__name__}). "
                "Please send it again in a moment.",
                reason="download",
            ) from exc
        if len(data) > limit:
            raise too_large(item.kind, len(data), limit)
        return data


def turn_text(readings: Sequence[Reading], caption: str) -> str:
    """The person's turn made of what was heard and read, each with a note of its source.

    A lone voice note becomes its transcript alone: it is what the person said.
    """
    caption = caption.strip()
    if len(readings) == 1 and readings[0].kind.is_audio and not caption:
        return readings[0].text.strip()
    parts = [caption] if caption else []
    for reading in readings:
        if reading.kind.is_audio:
            parts.append(f"[Transcript of my {reading.kind.label}]: {reading.text.strip()}")
            continue
        if reading.description:
            parts.append(
                f"[An image I sent, as described by {reading.source}]: "
                f"{reading.description.strip()}"
            )
        if reading.text.strip():
            parts.append(
                f"[Text read by OCR from an image I sent; it may contain errors]:\n"
                f"{reading.text.strip()}"
            )
    return "\n\n".join(parts)


def nothing_read(readings: Sequence[Reading]) -> str | None:
    """An honest reply when no file gave anything to work with; ``None`` otherwise."""
    if any(r.text.strip() or r.description for r in readings):
        return None
    if all(r.kind.is_audio for r in readings):
        return (
            "I listened to your recording but could not make out any words. Please try "
            "again closer to the microphone, or type your question."
        )
    return (
        "I can't see pictures: I only read the text in them, and I found no text in this "
        "image. Please describe what it shows, or type your question."
    )


def _preview(text: str) -> str:
    text = " ".join(text.split())
    if len(text) > HEARD_PREVIEW_CHARS:
        return text[: HEARD_PREVIEW_CHARS - 1].rstrip() + "…"
    return text


def heading(readings: Sequence[Reading]) -> str:
    """What the answer starts with: what Parley heard or read, so the person can correct it."""
    lines = []
    for reading in readings:
        if reading.kind.is_audio:
            lines.append(f"🎤 I heard: “{_preview(reading.text)}”")
        else:
            if reading.description:
                lines.append(f"🖼️ I see: {_preview(reading.description)}")
            if reading.text.strip():
                lines.append(f"🖼️ I read in your image: “{_preview(reading.text)}”")
            elif not reading.description:
                lines.append("🖼️ I found no text in your image (I cannot see pictures).")
    return "\n".join(lines) + "\n\n"
