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
import inspect
import logging
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from config.settings import Settings
from core.errors import GenerationError, ModelLoadError
from core.generator import FinishReason, GenerationRequest, GenerationResult
from core.registry import AdapterVersion
from core.streaming import Streamed
from workers.detokenizer import Detokenizer
from workers.lora import LoraSlot
from workers.model import HfTokenCounter, LoadedModel, load_model
from workers.model import stop_token_ids as model_stop_ids
from workers.running_batch import RunningBatch, new_cache, prompt_inputs

if TYPE_CHECKING:
    import torch

__all__ = ["BatchStats", "BatchedGenerator"]

log = logging.getLogger(__name__)

REPORT_EVERY_S = 30.0
"""While busy, the engine logs its batch size and speed this often."""

PREFILL_TOKENS = 2048
"""Most prompt tokens (padding included) prefilled between two decode steps. Newcomers beyond
it wait for the next step, so running answers stall less and one long prompt does not pad
many short ones; a longer prompt still goes alone."""

_Item = str | GenerationResult | GenerationError


@dataclass(slots=True)
class BatchStats:
    """What the engine has done since it started: for logs, tests and benchmarks."""

    steps: int = 0
    """Decode steps: forward passes over the whole running batch."""
    prefills: int = 0
    """Forward passes over newcomers' prompts."""
    tokens: int = 0
    """Tokens chosen, stop tokens included."""
    peak_batch: int = 0
    """Most answers decoded in one step."""
    finished: int = 0
    """Answers delivered."""
    failed: int = 0
    """Answers failed by an error in the engine."""


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
        self._engine = _Engine(loaded, settings, frozenset(self._stop_ids), self.stats)

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
        queue: asyncio.Queue[_Item] = asyncio.Queue()
        job = _Job(request, asyncio.get_running_loop(), queue, self._engine.outbox)
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


class _Job:
    """One request from submission to result, and the way back to its caller's event loop.

    Callers may run on different loops in different threads, so each job keeps its own.
    """

    def __init__(
        self,
        request: GenerationRequest,
        loop: asyncio.AbstractEventLoop,
        queue: asyncio.Queue[_Item],
        outbox: _Outbox,
    ) -> None:
        self.request = request
        self.prompt_ids: list[int] | None = None
        self.cancelled = threading.Event()
        self.done = False
        self.loop = loop
        self.queue = queue
        self._outbox = outbox

    def send(self, item: _Item) -> None:
        """Hand ``item`` to the caller's loop, with the rest of the engine's step."""
        self._outbox.put(self, item)

    def finish(self, item: GenerationResult | GenerationError) -> None:
        """Send the result or the error that ends the stream, once."""
        if not self.done:
            self.done = True
            self.send(item)


class _Outbox:
    """What a step produced for its callers, handed to each caller's loop in one wake-up.

    Waking a loop writes to its self-pipe and makes its thread compete for the GIL; once per
    step and loop instead of once per token keeps that off a batch's critical path.
    """

    def __init__(self) -> None:
        self._items: dict[asyncio.AbstractEventLoop, list[tuple[_Job, _Item]]] = {}

    def put(self, job: _Job, item: _Item) -> None:
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


def _put_all(pairs: list[tuple[_Job, _Item]]) -> None:
    """On the caller's loop: queue each item for its reader."""
    for job, item in pairs:
        job.queue.put_nowait(item)


class _Row:
    """One answer in the batch."""

    def __init__(self, job: _Job, prompt_ids: list[int], tokenizer: Any, rng: Any) -> None:
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


_Batch = RunningBatch[_Row]


class _Engine:
    """The decode loop: one thread, one running batch, one model copy."""

    def __init__(
        self, loaded: LoadedModel, settings: Settings, stops: frozenset[int], stats: BatchStats
    ) -> None:
        self._loaded = loaded
        self._model = loaded.model
        self._tokenizer = loaded.tokenizer
        self._device = loaded.device
        self._version = loaded.version
        self._slot = LoraSlot.of(loaded)
        self._switch_to: list[AdapterVersion | None] = []  # a pending switch, at most one
        self._settings = settings
        self._stops = stops
        self._stats = stats
        # transformers 5 renamed ``past_key_values`` to ``cache``; accept either.
        parameters = inspect.signature(loaded.model.forward).parameters
        self._cache_argument = "cache" if "cache" in parameters else "past_key_values"
        self._waiting: deque[_Job] = deque()
        self._wake = threading.Condition()
        self._closing = False
        self._batch: _Batch | None = None
        self._report_at = time.monotonic()
        self._reported_tokens = 0
        self._reported_peak = 0
        self._thread: threading.Thread | None = None
        self.outbox = _Outbox()
        """What the engine thread sends its callers; flushed after every step."""

    def submit(self, job: _Job) -> None:
        with self._wake:
            if self._closing:
                raise GenerationError("The model is shutting down; please try again.")
            self._ensure_thread()
            self._waiting.append(job)
            self._wake.notify()

    def request_adapter(self, version: AdapterVersion | None) -> None:
        """Switch adapters when the running batch has drained; the latest request wins."""
        with self._wake:
            self._switch_to[:] = [version]
            self._ensure_thread()
            self._wake.notify()

    def _ensure_thread(self) -> None:
        # Started on first use, in the process that uses it (a forked worker has no thread).
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._serve, name="parley-batch", daemon=True)
            self._thread.start()

    def _switch_if_idle(self) -> None:
        """Apply a pending adapter switch once no answer is running."""
        with self._wake:
            if not self._switch_to or self._batch is not None:
                return
            [version] = self._switch_to
            self._switch_to.clear()
        try:
            self._slot.apply(version)
        except ModelLoadError:
            log.exception("switching adapters failed; serving the base model")
        self._version = self._loaded.version

    def close(self) -> None:
        with self._wake:
            self._closing = True
            self._wake.notify()
            thread = self._thread
        if thread is not None:
            thread.join()

    def _serve(self) -> None:
        import torch

        if self._device == "cpu":
            # Intra-op threads are set per thread: this one's must not depend on which thread
            # last called set_num_threads (the sentiment classifier sets its own, say).
            torch.set_num_threads(self._settings.llm.cpu_threads)
        with torch.inference_mode():
            while True:
                joining: list[_Job] = []
                try:
                    self._drop_cancelled()
                    self._switch_if_idle()
                    if (found := self._next_joiners()) is None:
                        break
                    joining = found
                    self._step(joining)
                except Exception as exc:  # the engine outlives any failure; the batch does not
                    log.exception("batched generation failed")
                    jobs = [row.job for row in self._batch.rows] if self._batch else []
                    self._batch = None
                    self._fail([*jobs, *joining], exc)
                finally:
                    self.outbox.flush()
        closed = GenerationError("The model was shut down before the answer was finished.")
        rows = self._batch.rows if self._batch else []
        self._batch = None
        with self._wake:
            waiting = list(self._waiting)
            self._waiting.clear()
        for job in [row.job for row in rows] + waiting:
            job.finish(closed)
        self.outbox.flush()

    def _next_joiners(self) -> list[_Job] | None:
        """Wait for work; take as many waiting requests as the batch has room for."""
        with self._wake:
            while (
                not self._closing
                and not self._waiting
                and self._batch is None
                and not self._switch_to
            ):
                self._wake.wait()
            if self._closing:
                return None
            if self._switch_to:  # the batch drains before another version serves
                return []
            room = self._settings.generation.max_batch_size - (
                len(self._batch.rows) if self._batch else 0
            )
            joining: list[_Job] = []
            while self._waiting and len(joining) < room:
                job = self._waiting.popleft()
                if not job.cancelled.is_set() and not job.done:
                    joining.append(job)
            return joining

    def _step(self, joining: list[_Job]) -> None:
        before = len(self._batch.rows) if self._batch else 0
        if joining and (newcomers := self._prefill(joining)) is not None:
            self._batch = newcomers if self._batch is None else self._batch.merge(newcomers)
        self.outbox.flush()  # newcomers' first tokens go now, not after the decode step
        if self._batch is not None:
            self._decode(self._batch)
        self._report(before, len(joining))

    def _prefill(self, jobs: list[_Job]) -> _Batch | None:
        """Run newcomers' prompts and choose their first tokens; a failure fails them only."""
        rows: list[_Row] = []
        width = 0
        for i, job in enumerate(jobs):
            try:
                prompt_ids = self._prompt_ids(job)
            except Exception as exc:
                log.exception("could not prepare a prompt")
                self._fail([job], exc)
                continue
            if rows and max(width, len(prompt_ids)) * (len(rows) + 1) > PREFILL_TOKENS:
                with self._wake:  # the rest go first at the next step
                    self._waiting.extendleft(reversed(jobs[i:]))
                del jobs[i:]  # the caller's list: no longer joining, whatever happens next
                break
            try:
                rows.append(_Row(job, prompt_ids, self._tokenizer, self._rng()))
            except Exception as exc:
                self._fail([job], exc)
                continue
            width = max(width, len(prompt_ids))
        if not rows:
            return None
        try:
            pad = self._tokenizer.pad_token_id or 0
            ids, mask, positions = prompt_inputs([r.prompt_ids for r in rows], pad, self._device)
            cache = new_cache(self._model)
            logits = self._forward(ids, mask, positions, cache)
            batch = RunningBatch.start(rows, cache, ids, mask, vocabulary=logits.shape[-1])
            tokens = self._choose(logits, batch)
        except Exception as exc:
            log.exception("prefill failed for %d new answers", len(rows))
            self._fail([row.job for row in rows], exc)
            return None
        self._stats.prefills += 1
        return self._advance(batch, tokens)

    def _decode(self, batch: _Batch) -> None:
        """One step: feed every row its newest token and choose the next."""
        ids, mask, positions = batch.next_inputs()
        logits = self._forward(ids, mask, positions, batch.cache)
        batch.mask = mask
        self._stats.steps += 1
        self._stats.peak_batch = max(self._stats.peak_batch, len(batch.rows))
        self._batch = self._advance(batch, self._choose(logits, batch))

    def _forward(
        self, ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor, cache: Any
    ) -> torch.Tensor:
        """The logits of each row's last position; ``cache`` grows by the columns of ``ids``."""
        output = self._model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            use_cache=True,
            logits_to_keep=1,
            **{self._cache_argument: cache},
        )
        logits: torch.Tensor = output.logits[:, -1, :].float()
        return logits

    def _choose(self, logits: torch.Tensor, batch: _Batch) -> torch.Tensor:
        settings = self._settings
        return batch.choose(
            logits,
            temperature=settings.generation.temperature,
            top_p=settings.generation.top_p,
            repetition_penalty=settings.generation.repetition_penalty,
            rngs=[row.rng for row in batch.rows],
        )

    def _advance(self, batch: _Batch, tokens: torch.Tensor) -> _Batch | None:
        """Give each row its token; finished rows leave the batch."""
        batch.last = tokens
        keep = []
        limit = self._settings.generation.answer_time_limit_s
        chosen = tokens.tolist()
        for i, (row, token) in enumerate(zip(batch.rows, chosen, strict=True)):
            reason = row.take(token, self._stops, limit)
            if reason is None:
                keep.append(i)
            else:
                self._finish(row, reason)
        self._stats.tokens += len(chosen)
        return batch.select(keep)

    def _finish(self, row: _Row, reason: FinishReason) -> None:
        row.send_text(row.detokenizer.flush())
        self._stats.finished += 1  # counted before the caller can see the result
        row.job.finish(
            GenerationResult(
                text=self._tokenizer.decode(row.new_ids, skip_special_tokens=True).strip(),
                model_version=self._version,
                prompt_tokens=len(row.prompt_ids),
                completion_tokens=len(row.new_ids),
                finish_reason=reason,
                seconds=time.perf_counter() - row.started,
                first_token_seconds=row.first_text,
            )
        )

    def _fail(self, jobs: list[_Job], exc: Exception) -> None:
        for job in jobs:
            if not job.done:
                error = GenerationError(f"The model failed while answering: {exc}")
                error.__cause__ = exc
                self._stats.failed += 1
                job.finish(error)

    def _drop_cancelled(self) -> None:
        """Rows whose caller went away leave the batch."""
        if self._batch is None:
            return
        keep = [i for i, row in enumerate(self._batch.rows) if not row.job.cancelled.is_set()]
        for row in self._batch.rows:
            if row.job.cancelled.is_set():
                row.job.done = True
                log.debug("an answer was cancelled after %d tokens", len(row.new_ids))
        self._batch = self._batch.select(keep)

    def _prompt_ids(self, job: _Job) -> list[int]:
        if job.prompt_ids is None:
            job.prompt_ids = self._tokenizer.apply_chat_template(
                [t.as_dict() for t in job.request.turns],
                add_generation_prompt=True,
                tokenize=True,
                return_dict=False,
            )
        return job.prompt_ids

    def _rng(self) -> torch.Generator | None:
        """A generator per answer when seeded: the same prompt samples the same answer."""
        if self._settings.generation.temperature == 0 or self._settings.generation.seed is None:
            return None
        import torch

        return torch.Generator(device=self._device).manual_seed(self._settings.generation.seed)

    def _report(self, before: int, joined: int) -> None:
        """Log batch size changes (debug), new peaks and, while busy, speed now and then (info)."""
        size = len(self._batch.rows) if self._batch else 0
        waiting = len(self._waiting)
        if self._stats.peak_batch > self._reported_peak:
            self._reported_peak = self._stats.peak_batch
            log.info("batched generation: a new peak of %d answers at once", self._reported_peak)
        elif size != before:
            log.debug(
                "batch %d -> %d answers (%d joined, %d waiting)", before, size, joined, waiting
            )
        now = time.monotonic()
        elapsed = now - self._report_at
        if elapsed >= REPORT_EVERY_S:
            rate = (self._stats.tokens - self._reported_tokens) / elapsed
            log.info(
                "batched generation: %d answers running, %d waiting, %.1f tokens/s, peak %d",
                size,
                waiting,
                rate,
                self._stats.peak_batch,
            )
        if size == 0 or elapsed >= REPORT_EVERY_S:  # idle time does not count
            self._report_at, self._reported_tokens = now, self._stats.tokens
