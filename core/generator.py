"""The language model as the core sees it: a tokenizer to measure prompts, a generator to answer.

Two contracts and their in-memory fakes. The real implementations live in ``workers/``:
:class:`workers.batching.BatchedGenerator` (Hugging Face transformers, continuous batching,
in-process or behind Celery) and :class:`workers.model.HfTokenCounter`; the fakes here
answer instantly and deterministically, for tests.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol, runtime_checkable

from core.streaming import Streamed
from core.types import ChatTurn, Role

__all__ = [
    "EchoGenerator",
    "FinishReason",
    "GenerationRequest",
    "GenerationResult",
    "Generator",
    "LocalGenerator",
    "TokenCounter",
    "WordTokenCounter",
]


class TokenCounter(Protocol):
    """Measures prompts in the model's own tokens, chat template included."""

    def count_chat(self, turns: Sequence[ChatTurn], *, add_generation_prompt: bool) -> int:
        """Tokens of ``turns`` rendered with the chat template."""
        ...

    def count_text(self, text: str) -> int:
        """Tokens of plain text, without any template."""
        ...


class FinishReason(StrEnum):
    """Why an answer ended."""

    STOP = "stop"
    LENGTH = "length"
    TIME = "time"


@dataclass(frozen=True, slots=True, kw_only=True)
class GenerationRequest:
    """What to answer: a chat-template conversation ending in the user's turn."""

    turns: tuple[ChatTurn, ...]
    max_new_tokens: int
    request_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class GenerationResult:
    """A finished answer and what it cost."""

    text: str
    model_version: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: FinishReason
    seconds: float = 0.0
    first_token_seconds: float | None = None


class Generator(Protocol):
    """Streams an answer to a conversation."""

    @property
    def model_version(self) -> str:
        """The model (and adapter) that answers, as stored with every answer."""
        ...

    def generate(self, request: GenerationRequest) -> Streamed[GenerationResult]:
        """Start answering; iterate the result for text deltas."""
        ...


@runtime_checkable
class LocalGenerator(Generator, Protocol):
    """A generator whose model runs in this process: it counts tokens, and is closed."""

    @property
    def tokens(self) -> TokenCounter:
        """The model's own token counts, for building prompts that fit."""
        ...

    def close(self) -> None:
        """Release the model (GPU memory included)."""
        ...


class WordTokenCounter:
    """Counts whitespace-separated words, with a few tokens of template per turn.

    A stand-in for a real tokenizer in fast tests: additive like the ChatML template.
    """

    PER_TURN = 3
    GENERATION_PROMPT = 2

    def count_chat(self, turns: Sequence[ChatTurn], *, add_generation_prompt: bool) -> int:
        total = sum(self.PER_TURN + self.count_text(t.content) for t in turns)
        return total + (self.GENERATION_PROMPT if add_generation_prompt else 0)

    def count_text(self, text: str) -> int:
        return len(text.split())


@dataclass(slots=True)
class EchoGenerator:
    """Answers by echoing the user's last turn, word by word; records every request.

    ``replies`` (optional) are returned in turn instead of the echo; ``fail_with`` makes
    every generation raise, to test error paths.
    """

    replies: list[str] = field(default_factory=list)
    fail_with: Exception | None = None
    requests: list[GenerationRequest] = field(default_factory=list)
    model_version: str = "echo-1"

    def generate(self, request: GenerationRequest) -> Streamed[GenerationResult]:
        self.requests.append(request)
        return Streamed(self._run(request))

    async def _run(self, request: GenerationRequest) -> AsyncIterator[str | GenerationResult]:
        if self.fail_with is not None:
            raise self.fail_with
        last_user = next((t.content for t in reversed(request.turns) if t.role is Role.USER), "")
        text = self.replies.pop(0) if self.replies else f"You said: {last_user}"
        words = text.split(" ")[: request.max_new_tokens]
        for i, word in enumerate(words):
            await asyncio.sleep(0)
            yield word if i == 0 else " " + word
        yield GenerationResult(
            text=" ".join(words),
            model_version=self.model_version,
            prompt_tokens=WordTokenCounter().count_chat(request.turns, add_generation_prompt=True),
            completion_tokens=len(words),
            finish_reason=FinishReason.STOP,
        )
