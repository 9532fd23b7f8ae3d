"""The files of a Telegram message that Parley can read, as core attachments.

Voice notes, audio files, photos, and documents that are audio or images become
:class:`core.media.Attachment`\\ s whose ``fetch`` downloads the bytes through
python-telegram-bot (``getFile``, then the Bot API's file address)::

    message = with_attachments(to_message(incoming, me), incoming, bot)

Telegram reports each file's size (and a recording's duration) in the message, so the core
can refuse what is too large before anything is downloaded.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import telegram

from core.intake import FileRef, Reopen
from core.media import Attachment, Fetch, MediaKind, too_large
from core.types import Message

__all__ = ["attachments_of", "reopener", "with_attachments"]


def _seconds(duration: int | timedelta) -> float:
    """A recording's length in seconds (PTB gives an int or, in newer versions, a timedelta)."""
    return duration.total_seconds() if isinstance(duration, timedelta) else float(duration)


def _fetcher(bot: telegram.Bot, file_id: str, kind: MediaKind) -> Fetch:
    async def fetch(limit: int) -> bytes:
        found = await bot.get_file(file_id)
        if found.file_size is not None and found.file_size > limit:
            raise too_large(kind, found.file_size, limit)
        return bytes(await found.download_as_bytearray())

    return fetch


def reopener(bot: telegram.Bot) -> Reopen:
    """Downloads a file again by its ``file_id`` (an intake taken over after a restart)."""

    def reopen(file: FileRef) -> Fetch:
        return _fetcher(bot, file.ref, file.kind)

    return reopen


def attachments_of(message: telegram.Message, bot: telegram.Bot) -> tuple[Attachment, ...]:
    """The readable files of a message (Telegram carries at most one)."""
    if message.voice is not None:
        voice = message.voice
        return (
            Attachment(
                kind=MediaKind.VOICE,
                fetch=_fetcher(bot, voice.file_id, MediaKind.VOICE),
                ref=voice.file_id,
                mime=voice.mime_type or "audio/ogg",
                size=voice.file_size,
                duration=_seconds(voice.duration),
            ),
        )
    if message.audio is not None:
        audio = message.audio
        return (
            Attachment(
                kind=MediaKind.AUDIO,
                fetch=_fetcher(bot, audio.file_id, MediaKind.AUDIO),
                ref=audio.file_id,
                mime=audio.mime_type,
                size=audio.file_size,
                duration=_seconds(audio.duration),
                name=audio.file_name,
            ),
        )
    if message.photo:
        largest = max(message.photo, key=lambda p: p.width * p.height)
        return (
            Attachment(
                kind=MediaKind.IMAGE,
                fetch=_fetcher(bot, largest.file_id, MediaKind.IMAGE),
                ref=largest.file_id,
                mime="image/jpeg",
                size=largest.file_size,
            ),
        )
    document = message.document
    if document is not None and message.animation is None:
        mime = document.mime_type or ""
        kind = (
            MediaKind.IMAGE
            if mime.startswith("image/")
            else MediaKind.AUDIO
            if mime.startswith("audio/")
            else None
        )
        if kind is not None:
            return (
                Attachment(
                    kind=kind,
                    fetch=_fetcher(bot, document.file_id, kind),
                    ref=document.file_id,
                    mime=mime,
                    size=document.file_size,
                    name=document.file_name,
                ),
            )
    return ()


def with_attachments(message: Message, incoming: telegram.Message, bot: telegram.Bot) -> Message:
    """``message`` with the readable files of the Telegram message it came from."""
    found = attachments_of(incoming, bot)
    return replace(message, attachments=found) if found else message
