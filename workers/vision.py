"""Describing images with a vision-language model, where one is configured.

``PARLEY_VISION_MODEL`` names an image-text-to-text model for transformers (a local folder,
or a hub id where a hub is reachable, e.g. ``HuggingFaceTB/SmolVLM-256M-Instruct`` on a
GPU worker). It is loaded on first use, once per process; Tesseract's OCR runs beside it
(:func:`workers.media.read_image`), so an image's text is read even when the description
fails. No vision model ships with Parley: none is in a registry package, and no machine
of this project reaches a model hub, so this loading code is tested only for its choice
of model and its errors.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import ConfigurationError, ModelLoadError

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["PROMPT", "VisionDescriber", "check_vision_model"]

log = logging.getLogger(__name__)

PROMPT = (
    "Describe this image for someone who cannot see it, in two or three sentences. "
    "If it contains text, say what the text says."
)
MAX_NEW_TOKENS = 160


def check_vision_model(spec: str) -> str:
    """``spec`` if it can name a model: a path must be an existing folder.

    Raises :class:`ConfigurationError` naming ``PARLEY_VISION_MODEL`` otherwise; a hub id
    is taken as it is (whether the hub is reachable shows on first use).
    """
    looks_like_path = spec.startswith(("/", "./", "../", "~")) or Path(spec).exists()
    if looks_like_path:
        folder = Path(spec).expanduser()
        if not folder.is_dir():
            raise ConfigurationError(
                f"PARLEY_VISION_MODEL {spec!r}: no such model folder. Set it to a local "
                "image-text-to-text model folder or a hub id, or leave it empty for OCR only."
            )
        return str(folder)
    if spec.count("/") != 1 or not all(spec.split("/")):
        raise ConfigurationError(
            f"PARLEY_VISION_MODEL {spec!r} is neither a folder nor a hub id like "
            "'HuggingFaceTB/SmolVLM-256M-Instruct'."
        )
    return spec


class VisionDescriber:
    """An image-text-to-text pipeline that says what an image shows."""

    def __init__(self, spec: str, *, device: str = "auto") -> None:
        self.spec = spec
        self.location = check_vision_model(spec)
        self._device = device
        self._pipeline: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        with self._lock:
            if self._pipeline is None:
                from transformers import pipeline

                started = time.perf_counter()
                device: Any = None if self._device == "auto" else self._device
                try:
                    self._pipeline = pipeline(
                        "image-text-to-text",
                        model=self.location,
                        device=device,
                        device_map="auto" if device is None else None,
                    )
                except Exception as exc:
                    raise ModelLoadError(
                        f"Cannot load PARLEY_VISION_MODEL {self.spec!r}: {exc}"
                    ) from exc
                log.info(
                    "vision model %s loaded in %.1f s", self.spec, time.perf_counter() - started
                )
            return self._pipeline

    def describe(self, image: Image.Image) -> str:
        """A short description of ``image``; raises :class:`ModelLoadError` if unavailable."""
        pipe = self._load()
        messages = [
            {
                "role": "user",
                "content": [
                    {"type": "image", "image": image.convert("RGB")},
                    {"type": "text", "text": PROMPT},
                ],
            }
        ]
        out = pipe(text=messages, max_new_tokens=MAX_NEW_TOKENS, return_full_text=False)
        return _generated_text(out).strip()


def _generated_text(out: Any) -> str:
    """The new text in a pipeline's output, whichever shape this transformers gives it."""
    first = out[0] if isinstance(out, list) else out
    if isinstance(first, list):
        first = first[0]
    text = first.get("generated_text", "") if isinstance(first, dict) else first
    if isinstance(text, list):  # a chat: the last message is the model's
        last = text[-1]
        text = last.get("content", "") if isinstance(last, dict) else last
    return str(text)
