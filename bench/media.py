"""Benchmark of reading voice messages and images on this machine.

Speech: espeak-ng speaks texts of different lengths, ffmpeg makes them Telegram voice notes
(OGG/Opus), and Parley's reader (``workers.media.read_media``: decoding plus faster-whisper
with the configured model, the packaged Whisper tiny.en by default) transcribes each one.
Printed per clip: its length, the wall time, the **speed as audio seconds per wall second**
(``x real time``; above 1 is faster than the person spoke) and the word error rate against
the text spoken. Images: Pillow renders text, Tesseract reads it; printed per image: the wall
time and the character error rate.

Baselines in the same process: the library used plainly, the way its own documentation
shows: ``WhisperModel(...).transcribe(file)`` with the same model, compute type, threads and
beam size on the same clip, and the ``tesseract FILE stdout`` command on the same image. The
ratio (Parley / baseline wall time) is what Parley's checks, decoding, limits and logging
cost on top.

Usage, from the repository's root (the project installed; the voice notes and pictures come
from the test suite's ``tests/media_fixtures.py``, hence ``-m``)::

    python -m bench.media                      # about a minute on 2 cores
    python -m bench.media --threads 2 --repeats 3
    PARLEY_WHISPER_MODEL=large-v3 python -m bench.media   # another model, where present
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from config import load_settings
from config.settings import options_for
from core.media import MediaKind
from tests.media_fixtures import blank_picture, picture_with_text, speech
from workers.media import (
    MediaOptions,
    read_media,
    resolve_whisper,
)

SPOKEN = {
    "short": "What time is the meeting tomorrow?",
    "medium": (
        "Could you remind me what we decided about the budget last week? I think we agreed "
        "to move the marketing money to the second quarter, but I am not sure."
    ),
    "long": (
        "Good morning. Here is a quick update before the planning meeting. The new release "
        "is almost ready: the login page works, the reports load twice as fast, and the "
        "mobile app passed its review. Two problems are left. The export to spreadsheets "
        "still fails for very large accounts, and the search page is slow on old phones. "
        "I would like to ship on Thursday if the export is fixed by Wednesday evening. "
        "Please tell me whether you agree, and whether anyone can help with the search page."
    ),
}
WRITTEN = {
    "one line": "Meeting moved to Tuesday at 3 pm",
    "note": "Shopping list\nmilk, eggs, bread\ncoffee beans\nbatteries (AA)",
    "receipt": "Invoice 2024-117\nTotal due: 310.50 EUR\nPay before 15 March\nIBAN on the back",
}


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def row(label: str, value: str) -> None:
    print(f"{label:<44} {value}")


def distance(a: list[str], b: list[str]) -> int:
    """Levenshtein distance between two sequences."""
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


def words(text: str) -> list[str]:
    return "".join(c if c.isalnum() else " " for c in text.lower()).split()


def median_wall(run: Callable[[], None], repeats: int) -> float:
    """The median wall time of ``run()`` over ``repeats`` calls."""
    walls = []
    for _ in range(repeats):
        t = time.perf_counter()
        run()
        walls.append(time.perf_counter() - t)
    return statistics.median(walls)


def plain_whisper(options: MediaOptions) -> Any:
    """faster-whisper as its README shows it, with Parley's model and settings."""
    from faster_whisper import WhisperModel

    return WhisperModel(
        resolve_whisper(options.whisper_model),
        device="cpu",
        compute_type="int8",
        cpu_threads=options.cpu_threads,
    )


def main(args: argparse.Namespace) -> None:
    settings = load_settings()
    options = options_for(MediaOptions, settings.attachments, cpu_threads=args.threads)
    clips = {name: speech(text) for name, text in SPOKEN.items()}
    log("loading the speech model …")
    started = time.perf_counter()
    read_media(MediaKind.VOICE, clips["short"], "audio/ogg", options)  # loads, warms up
    first_s = time.perf_counter() - started

    print(f"\nParley media benchmark: {options.whisper_model}, CPU threads {args.threads}")
    row("first voice note (model load included)", f"{first_s:.2f} s")
    print("speech (speed = audio seconds / wall seconds; higher is faster)")
    baseline = plain_whisper(options)
    total_audio = total_wall = total_base = 0.0
    with tempfile.TemporaryDirectory() as folder:
        for name, data in clips.items():
            readings: list[Any] = []

            def parley(data: bytes = data, readings: list[Any] = readings) -> None:
                readings.append(read_media(MediaKind.VOICE, data, "audio/ogg", options))

            wall = median_wall(parley, args.repeats)
            clip = Path(folder) / f"{name}.ogg"
            clip.write_bytes(data)

            def plain(clip: Path = clip) -> None:
                segments, _ = baseline.transcribe(str(clip), beam_size=1)
                list(segments)

            base = median_wall(plain, args.repeats)
            reading = readings[-1]
            seconds = reading.seconds or 0.0
            total_audio += seconds
            total_wall += wall
            total_base += base
            reference = words(SPOKEN[name])
            wer = distance(reference, words(reading.text)) / len(reference)
            row(
                f"  {name:<7} {seconds:5.1f} s of speech, {len(data) // 1024} KiB",
                f"{wall:.2f} s  {seconds / wall:4.1f}x real time  WER {wer:.1%}  "
                f"(plain faster-whisper {base:.2f} s, ratio {wall / base:.2f})",
            )
            log(f"    heard: {reading.text}")
    row(
        "  all clips",
        f"{total_audio / total_wall:.1f}x real time (plain faster-whisper "
        f"{total_audio / total_base:.1f}x, ratio {total_wall / total_base:.2f})",
    )

    print("images (Tesseract)")
    pictures = {name: picture_with_text(text, "JPEG") for name, text in WRITTEN.items()}
    pictures["blank"] = blank_picture()
    with tempfile.TemporaryDirectory() as folder:
        for name, data in pictures.items():
            readings: list[Any] = []

            def parley_ocr(data: bytes = data, readings: list[Any] = readings) -> None:
                readings.append(read_media(MediaKind.IMAGE, data, None, options))

            wall = median_wall(parley_ocr, args.repeats)
            image = Path(folder) / f"{name.replace(' ', '-')}.jpg"
            image.write_bytes(data)

            def plain_ocr(image: Path = image) -> None:
                subprocess.run(["tesseract", str(image), "stdout"], capture_output=True, check=True)

            base = median_wall(plain_ocr, args.repeats)
            text = readings[-1].text
            expected = WRITTEN.get(name, "")
            cer = distance(list(expected), list(text)) / max(1, len(expected))
            row(
                f"  {name:<9} {len(data) // 1024:3d} KiB",
                f"{wall * 1e3:.0f} ms  CER {cer:.1%}"
                + ("" if expected else f"  (read {text!r})")
                + f"  (plain tesseract {base * 1e3:.0f} ms, ratio {wall / base:.2f})",
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    main(parser.parse_args())
