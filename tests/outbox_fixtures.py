"""A slow generator for the processes the outbox tests kill (``PARLEY_GENERATOR``).

``PARLEY_GENERATOR=tests.outbox_fixtures:slow`` answers every message with the same
sentences of :data:`ANSWER`, a word every :data:`PACE` seconds, so that a test can kill
the web process while the answer streams; a message containing :data:`LATE` waits
:data:`LATE_S` seconds before its first word, so that a test can kill it before any
platform message was sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from config.settings import Settings
from core.generator import (
    FinishReason,
    GenerationRequest,
    GenerationResult,
    TokenCounter,
    WordTokenCounter,
)
from core.streaming import Streamed
from core.types import Role

__all__ = ["ANSWER", "LATE", "LATE_S", "PACE", "SlowGenerator", "slow"]

SENTENCES = 16
PACE = 0.2
LATE = "LATE-START"
LATE_S = 6.0
ANSWER = " ".join(f"Part {n}." for n in range(1, SENTENCES + 1))
"""The answer to every message: sentences, which moderation releases one by one."""


@dataclass
class SlowGenerator:
    """Streams :data:`ANSWER`, a word every :data:`PACE` seconds."""

    model_version: str = "slow-1"
    tokens: TokenCounter = field(default_factory=WordTokenCounter)

    def generate(self, request: GenerationRequest) -> Streamed[GenerationResult]:
        return Streamed(self._run(request))

    async def _run(self, request: GenerationRequest) -> AsyncIterator[str | GenerationResult]:
        asked = next((t.content for t in reversed(request.turns) if t.role is Role.USER), "")
        if LATE in asked:
            await asyncio.sleep(LATE_S)
        words = ANSWER.split(" ")
        for i, word in enumerate(words):
            await asyncio.sleep(PACE)
            yield word if i == 0 else " " + word
        yield GenerationResult(
            text=ANSWER,
            model_version=self.model_version,
            prompt_tokens=self.tokens.count_chat(request.turns, add_generation_prompt=True),
            completion_tokens=len(words),
            finish_reason=FinishReason.STOP,
        )

    def close(self) -> None:
        """Nothing to release."""


def slow(settings: Settings) -> SlowGenerator:
    """The factory ``PARLEY_GENERATOR`` names."""
    return SlowGenerator()
