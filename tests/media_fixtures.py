"""Real media for tests: speech spoken by espeak-ng, pictures with text drawn by Pillow.

Nothing is downloaded: ``espeak-ng`` speaks a sentence into a WAV file, ``ffmpeg`` turns it
into what Telegram sends for a voice note (OGG/Opus), and Pillow renders text into a PNG::

    ogg = speech("What time is the meeting tomorrow?")          # bytes, audio/ogg
    png = picture_with_text("Invoice 42 is due on Friday")      # bytes, image/png
"""

from __future__ import annotations

import functools
import io
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

__all__ = ["blank_picture", "needs_media_tools", "picture_with_text", "speech"]

needs_media_tools = pytest.mark.skipif(
    not all(shutil.which(tool) for tool in ("espeak-ng", "ffmpeg", "tesseract")),
    reason="needs espeak-ng, ffmpeg and tesseract (apt-get install espeak-ng ffmpeg tesseract-ocr)",
)


@functools.cache
def speech(text: str, fmt: str = "ogg", *, speed: int = 160) -> bytes:
    """``text`` spoken by espeak-ng: OGG/Opus (a Telegram voice note), or WAV or MP3."""
    with tempfile.TemporaryDirectory() as folder:
        wav = Path(folder) / "speech.wav"
        subprocess.run(
            ["espeak-ng", "-s", str(speed), "-w", str(wav), text], check=True, capture_output=True
        )
        if fmt == "wav":
            return wav.read_bytes()
        out = Path(folder) / f"speech.{fmt}"
        codec = ["-c:a", "libopus", "-b:a", "24k"] if fmt == "ogg" else []
        subprocess.run(
            ["ffmpeg", "-loglevel", "error", "-y", "-i", str(wav), *codec, str(out)],
            check=True,
            capture_output=True,
        )
        return out.read_bytes()


@functools.cache
def picture_with_text(text: str, fmt: str = "PNG") -> bytes:
    """A white picture with ``text`` in black, one line per ``\\n``, as a photo would hold it."""
    from PIL import Image, ImageDraw, ImageFont

    lines = text.split("\n")
    font = ImageFont.load_default(size=40)
    image = Image.new("RGB", (60 + 26 * max(len(line) for line in lines), 60 + 60 * len(lines)))
    image.paste("white", (0, 0, *image.size))
    draw = ImageDraw.Draw(image)
    for i, line in enumerate(lines):
        draw.text((30, 30 + 60 * i), line, fill="black", font=font)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


@functools.cache
def blank_picture() -> bytes:
    """A sky-blue PNG with nothing written on it."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (320, 240), (135, 206, 235)).save(buffer, format="PNG")
    return buffer.getvalue()
