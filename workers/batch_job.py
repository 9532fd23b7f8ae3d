"""A request's way through the batching engine, and back to the caller who asked.

A :class:`Job` carries one request from submission to its result and hands what the engine
produced to the caller's event loop, through the engine's :class:`Outbox`; its :class:`Row`
is the answer while it is decoded in the running batch (:mod:`workers.batch_engine`).
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import TYPE_CHECKING, Any

from core.errors import GenerationError
from core.generator import FinishReason, GenerationRequest, GenerationResult
from workers.detokenizer import Detokenizer

if TYPE_CHECKING:
    import torch

__all__ = ["Item", "Job", "Outbox", "Row"]

Item = str | GenerationResult | GenerationError
"""What the engine sends a caller: text, then the result or the error that ends it."""


class Job:
    """One request from submission to result, and the way back to its caller's event loop.

    Callers may run on different loops in different threads, so each job keeps its own.
    """

    def __init__(
        self,
        request: GenerationRequest,
        loop: asyncio.AbstractEventLoop,
        queue: asyncio.Queue[Item],
        outbox: Outbox,
    ) -> None:
        self.request = request
        self.prompt_ids: list[int] | None = None
        self.cancelled = threading.Event()
        self.done = False
        self.loop = loop
        self.queue = queue
        self._outbox = outbox

    def send(self, item: Item) -> None:
        """Hand ``item`` to the caller's loop, with the rest of the engine's step."""
        self._outbox.put(self, item)

    def finish(self, item: GenerationResult | GenerationError) -> None:
        """Send the result or the error that ends the stream, once."""
        if not self.done:
            self.done = True
            self.send(item)


class Outbox:
    """What a step produced for its callers, handed to each caller's loop in one wake-up.

    Waking a loop writes to its self-pipe and makes its thread compete for the GIL; once per
    step and loop instead of once per token keeps that off a batch's critical path.
    """

    def __init__(self) -> None:
        self._items: dict[asyncio.AbstractEventLoop, list[tuple[Job, Item]]] = {}

    def put(self, job: Job, item: Item) -> None:
        self._items.setdefault(job.loop, []).append((job, item))

    def flush(self) -> None:
        """Wake each loop that has items waiting, once."""
        items, self._items = self._items, {}
        for loop, pairs in items.items():
            try:
                loop.call_soon_threadsafe(_put_all, pairs)
            except RuntimeError:  # the loop is closed: nobody is listening any more
                for job, _ in pairs:
                    job.cancelled.set()


def _put_all(pairs: list[tuple[Job, Item]]) -> None:
    """On the caller's loop: queue each item for its reader."""
    for job, item in pairs:
        job.queue.put_nowait(item)


class Row:
    """One answer in the batch."""

    def __init__(self, job: Job, prompt_ids: list[int], tokenizer: Any, rng: Any) -> None:
        if job.request.max_new_tokens < 1:
            raise ValueError("max_new_tokens must be at least 1")
        self.job = job
        self.prompt_ids = prompt_ids
        self.new_ids: list[int] = []
        self.rng: torch.Generator | None = rng
        self.started = time.perf_counter()
        self.first_text: float | None = None
        self.detokenizer = Detokenizer(tokenizer)

    def take(self, token: int, stops: frozenset[int], time_limit: float) -> FinishReason | None:
        """Add the next token and stream its text; say why the answer ends, if it does."""
        if token in stops:
            return FinishReason.STOP
        self.new_ids.append(token)
        self.send_text(self.detokenizer.push(token))
        if len(self.new_ids) >= self.job.request.max_new_tokens:
            return FinishReason.LENGTH
        if time.perf_counter() - self.started > time_limit:
            return FinishReason.TIME
        return None

    def send_text(self, text: str) -> None:
        if text:
            if self.first_text is None:
                self.first_text = time.perf_counter() - self.started
            self.job.send(text)
