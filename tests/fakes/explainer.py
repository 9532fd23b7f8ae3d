"""A fake :class:`core.explanation.Explainer` whose pictures are known, real PNG files.

Usage::

    explainer = PictureExplainer()
    service, store, _ = make_service(explainer=explainer)
    ...                                   # answer something, then send "/explain"
    assert received == [explainer.chart, explainer.mood]

The adapters' tests need ``/explain`` to carry pictures without loading a model: this
explainer answers at once with one line of text and two small PNGs (solid colours, made
here with zlib), named as the real explainer names them (``explain.png``, ``mood.png``).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from core.explanation import Explanation
from core.types import StoredMessage

__all__ = ["PictureExplainer", "png"]

LINE = "Attributions: the question drove this answer most."


def _chunk(kind: bytes, data: bytes) -> bytes:
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))


def png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A valid PNG of one solid colour: 8-bit RGB, no interlace."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    row = b"\x00" + bytes(rgb) * width  # filter type 0, then the pixels
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(row * height))
        + _chunk(b"IEND", b"")
    )


@dataclass
class PictureExplainer:
    """Explains every answer with :data:`LINE` and the pictures ``chart`` and ``mood``."""

    chart: bytes = png(64, 32, (200, 40, 40))
    mood: bytes = png(16, 16, (40, 40, 200))
    explained: int = 0

    def explain(self, answer: StoredMessage) -> Explanation:
        """The same explanation for any answer; counts the calls."""
        self.explained += 1
        return Explanation(
            lines=(LINE,), picture=self.chart, more_pictures=(("mood.png", self.mood),)
        )
