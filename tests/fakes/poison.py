"""The real batched model with two poisons, for the scaled deployment's tests.

``PARLEY_GENERATOR=tests.fakes.poison:build`` makes a worker answer with the packaged model,
except that a message containing ``POISON-RAISE`` makes generation raise, and one
containing ``POISON-KILL`` kills the worker process outright (as a segfault would).
"""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator
from typing import Any

from config.settings import Settings
from core.errors import GenerationError
from core.generator import GenerationRequest, GenerationResult
from core.streaming import Streamed
from workers.batching import BatchedGenerator

RAISE = "POISON-RAISE"
KILL = "POISON-KILL"


class PoisonedGenerator:
    """Delegates to the real generator unless the last user turn carries a poison."""

    def __init__(self, real: BatchedGenerator) -> None:
        self._real = real
        self.tokens = real.tokens
        self.loaded = real.loaded

    @property
    def model_version(self) -> str:
        return self._real.model_version

    def generate(self, request: GenerationRequest) -> Streamed[GenerationResult]:
        asked = request.turns[-1].content
        if KILL in asked:
            os.kill(os.getpid(), signal.SIGKILL)
        if RAISE in asked:
            return Streamed(_fail())
        return self._real.generate(request)

    def close(self) -> None:
        self._real.close()


async def _fail() -> AsyncIterator[str | GenerationResult]:
    raise GenerationError("the model failed on a poisoned message")
    yield ""  # an async generator, like a real stream


def build(settings: Settings) -> Any:
    """The factory named by ``PARLEY_GENERATOR``."""
    return PoisonedGenerator(BatchedGenerator.from_settings(settings))
