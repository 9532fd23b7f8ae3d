"""The continuous-batching engine: one thread decoding every running answer in one pass.

Requests wait in order; at each step newcomers are prefilled together and join the
:class:`workers.running_batch.RunningBatch`, every row is decoded by one forward pass, and
rows that end leave. :class:`workers.batching.BatchedGenerator` is its public face.
"""

from __future__ import annotations

import inspect
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from config.settings import Settings
from core.errors import GenerationError, ModelLoadError
from core.generator import FinishReason, GenerationResult
from core.registry import AdapterVersion
from workers.batch_job import Job, Outbox, Row
from workers.lora import LoraSlot
from workers.model import LoadedModel
from workers.running_batch import RunningBatch, new_cache, prompt_inputs

if TYPE_CHECKING:
    import torch

__all__ = ["PREFILL_TOKENS", "REPORT_EVERY_S", "BatchEngine", "BatchStats"]

log = logging.getLogger(__name__)

REPORT_EVERY_S = 30.0
"""While busy, the engine logs its batch size and speed this often."""

PREFILL_TOKENS = 2048
"""Most prompt tokens (padding included) prefilled between two decode steps. Newcomers beyond
it wait for the next step, so running answers stall less and one long prompt does not pad
many short ones; a longer prompt still goes alone."""


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


_Batch = RunningBatch[Row]


class BatchEngine:
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
        self._waiting: deque[Job] = deque()
        self._wake = threading.Condition()
        self._closing = False
        self._batch: _Batch | None = None
        self._report_at = time.monotonic()
        self._reported_tokens = 0
        self._reported_peak = 0
        self._thread: threading.Thread | None = None
        self.outbox = Outbox()
        """What the engine thread sends its callers; flushed after every step."""

    def submit(self, job: Job) -> None:
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
                joining: list[Job] = []
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

    def _next_joiners(self) -> list[Job] | None:
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
            joining: list[Job] = []
            while self._waiting and len(joining) < room:
                job = self._waiting.popleft()
                if not job.cancelled.is_set() and not job.done:
                    joining.append(job)
            return joining

    def _step(self, joining: list[Job]) -> None:
        before = len(self._batch.rows) if self._batch else 0
        if joining and (newcomers := self._prefill(joining)) is not None:
            self._batch = newcomers if self._batch is None else self._batch.merge(newcomers)
        self.outbox.flush()  # newcomers' first tokens go now, not after the decode step
        if self._batch is not None:
            self._decode(self._batch)
        self._report(before, len(joining))

    def _prefill(self, jobs: list[Job]) -> _Batch | None:
        """Run newcomers' prompts and choose their first tokens; a failure fails them only."""
        rows: list[Row] = []
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
                rows.append(Row(job, prompt_ids, self._tokenizer, self._rng()))
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

    def _finish(self, row: Row, reason: FinishReason) -> None:
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

    def _fail(self, jobs: list[Job], exc: Exception) -> None:
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

    def _prompt_ids(self, job: Job) -> list[int]:
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
