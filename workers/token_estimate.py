"""Pricing prompts for a model whose tokenizer Parley may not have: the openai engine's.

``PARLEY_OPENAI_TOKENIZER`` names a local tokenizer of the served model (exact prices, the
chat template included); without one, :class:`EstimatedTokenCounter` overestimates and
learns from the token counts the server reports.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Sequence

from config.settings import Settings
from core.errors import ConfigurationError
from core.generator import TokenCounter
from core.types import ChatTurn

__all__ = ["EstimatedTokenCounter", "engine_token_counter"]


class EstimatedTokenCounter:
    """A conservative price of prompts for a model whose tokenizer is not known here.

    English runs at about four characters per token in the tokenizers of today's chat
    models; counting one token per three characters, plus :attr:`PER_TURN` tokens of
    template per turn, overestimates for prose. The server reports what a prompt really
    cost (``usage.prompt_tokens``); :meth:`observe` keeps the largest recent ratio of real to
    estimated, with a margin, and scales estimates by it, so code, numbers or another
    script that cost more tokens per character raise the estimate after one answer.
    """

    CHARS_PER_TOKEN = 3
    PER_TURN = 8
    GENERATION_PROMPT = 4
    MARGIN = 1.1
    WINDOW = 50

    def __init__(self) -> None:
        self._ratios: deque[float] = deque(maxlen=self.WINDOW)
        self._lock = threading.Lock()

    @property
    def scale(self) -> float:
        """What estimates are multiplied by: 1 until the server has reported usage."""
        with self._lock:
            return max(self._ratios) * self.MARGIN if self._ratios else 1.0

    def count_chat(self, turns: Sequence[ChatTurn], *, add_generation_prompt: bool) -> int:
        raw = self.raw_chat(turns, add_generation_prompt=add_generation_prompt)
        return math.ceil(raw * self.scale)

    def count_text(self, text: str) -> int:
        return math.ceil(self._raw_text(text) * self.scale)

    def raw_chat(self, turns: Sequence[ChatTurn], *, add_generation_prompt: bool) -> int:
        """The estimate before correction."""
        total = sum(self.PER_TURN + self._raw_text(t.content) for t in turns)
        return total + (self.GENERATION_PROMPT if add_generation_prompt else 0)

    def observe(self, turns: Sequence[ChatTurn], prompt_tokens: int) -> None:
        """Learn from the server's count of a prompt it was sent."""
        raw = self.raw_chat(turns, add_generation_prompt=True)
        if raw > 0 and prompt_tokens > 0:
            with self._lock:
                self._ratios.append(prompt_tokens / raw)

    def _raw_text(self, text: str) -> int:
        return math.ceil(len(text) / self.CHARS_PER_TOKEN)


def engine_token_counter(settings: Settings) -> TokenCounter:
    """The openai engine's prompt pricing: the named local tokenizer, else the estimate."""
    if settings.openai.tokenizer is None:
        return EstimatedTokenCounter()
    from core.errors import ModelLoadError
    from workers.model import load_tokenizer

    try:
        return load_tokenizer(settings.model_copy(update={"model": settings.openai.tokenizer}))
    except ModelLoadError as exc:
        raise ConfigurationError(f"PARLEY_OPENAI_TOKENIZER: {exc}") from exc
