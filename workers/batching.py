"""Answering many conversations at once over one model copy: continuous batching.

:class:`BatchedGenerator` is the :class:`core.generator.Generator` that Parley serves, in the
embedded deployment and in the Celery workers alike: one background engine thread decodes
every active answer in the same forward pass, so concurrent conversations share the model
instead of queueing for it, and a lone conversation streams as fast as plain
``model.generate`` (``bench/embedded.py`` measures both in the same run).

A request joins the running batch at the next step: its prompt is prefilled (padded together
with the other newcomers), then its key/value cache is left-padded to the batch's length and
stacked under the others. An answer that ends (a stop token, its length, the time limit, or
a caller that went away) leaves at once. At most ``Settings.max_batch_size`` answers run
together; later requests wait in order.

Usage::

    generator = BatchedGenerator.from_settings(settings)
    stream = generator.generate(GenerationRequest(turns=turns, max_new_tokens=128))
    async for delta in stream:
        print(delta, end="")
    print(stream.result)
    generator.close()
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Collection

from config.settings import Settings
from core.errors import GenerationError, ModelLoadError
from core.generator import GenerationRequest, GenerationResult
from core.registry import AdapterVersion
from core.streaming import Streamed
from workers.batch_engine import BatchEngine, BatchStats
from workers.batch_job import Item, Job
from workers.model import HfTokenCounter, LoadedModel, load_model
from workers.model import stop_token_ids as model_stop_ids
from workers.running_batch import new_cache

__all__ = ["BatchStats", "BatchedGenerator"]


class BatchedGenerator:
    """Streams answers for many conversations at once from one loaded model."""

    def __init__(
        self,
        loaded: LoadedModel,
        settings: Settings,
        *,
        stop_token_ids: Collection[int] | None = None,
    ) -> None:
        """Wrap ``loaded``; ``stop_token_ids`` overrides the model's (a benchmark passes none,
        to force answers of a fixed length)."""
        self._loaded = loaded
        self.tokens = HfTokenCounter(loaded.tokenizer)
        if stop_token_ids is None:
            stop_token_ids = model_stop_ids(loaded.tokenizer)
        self._stop_ids = sorted(set(stop_token_ids))
        try:
            new_cache(loaded.model)
        except TypeError as exc:
            raise ModelLoadError(f"{loaded.version} cannot be served in batches: {exc}") from exc
        self.stats = BatchStats()
        self._engine = BatchEngine(loaded, settings, frozenset(self._stop_ids), self.stats)

    @classmethod
    def from_settings(cls, settings: Settings) -> BatchedGenerator:
        """Load the configured model and wrap it."""
        return cls(load_model(settings), settings)

    @property
    def model_version(self) -> str:
        return self._loaded.version

    @property
    def stop_token_ids(self) -> list[int]:
        """Token ids that end an answer: end of sequence and the chat template's end of turn."""
        return list(self._stop_ids)

    @property
    def loaded(self) -> LoadedModel:
        """The model, tokenizer and device this generator uses."""
        return self._loaded

    def generate(self, request: GenerationRequest) -> Streamed[GenerationResult]:
        return Streamed(self._stream(request))

    def use_version(self, version: AdapterVersion | None) -> None:
        """Serve ``version`` (``None``: the base model) once the running answers are done.

        New requests wait meanwhile, so every answer comes from one version, which it names.
        """
        self._engine.request_adapter(version)

    def close(self) -> None:
        """Stop the engine (unfinished answers fail) and release the model's memory."""
        self._engine.close()
        if self._loaded.device == "cuda":
            import torch

            self._loaded.model.to("cpu")
            torch.cuda.empty_cache()

    async def _stream(self, request: GenerationRequest) -> AsyncIterator[str | GenerationResult]:
        queue: asyncio.Queue[Item] = asyncio.Queue()
        job = Job(request, asyncio.get_running_loop(), queue, self._engine.outbox)
        self._engine.submit(job)
        try:
            while True:
                item = await queue.get()
                if isinstance(item, GenerationError):
                    raise item
                yield item
                if isinstance(item, GenerationResult):
                    return
        finally:
            job.cancelled.set()  # the reader went away: the row leaves at the next step
