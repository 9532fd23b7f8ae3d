"""Answering with a Hugging Face causal LM, streamed token by token.

:class:`TransformersGenerator` is the real :class:`core.generator.Generator`. The embedded
deployment calls it in-process; the Celery workers call the same code. ``model.generate``
runs in one background thread per model copy, so the event loop stays free while the model
works and answers stream to the caller as they are decoded.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from config.settings import Settings
from core.errors import GenerationError, ModelLoadError
from core.generator import FinishReason, GenerationRequest, GenerationResult
from core.registry import AdapterVersion
from core.streaming import Streamed
from workers.lora import LoraSlot
from workers.model import HfTokenCounter, LoadedModel, load_model, stop_token_ids

__all__ = ["TransformersGenerator"]

log = logging.getLogger(__name__)

_END = object()


class TransformersGenerator:
    """Streams answers from one loaded model; one generation at a time per model copy."""

    def __init__(self, loaded: LoadedModel, settings: Settings) -> None:
        self._loaded = loaded
        self._settings = settings
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="parley-generate")
        self.tokens = HfTokenCounter(loaded.tokenizer)
        self._stop_ids = stop_token_ids(loaded.tokenizer)
        self._slot = LoraSlot.of(loaded)

    @classmethod
    def from_settings(cls, settings: Settings) -> TransformersGenerator:
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
        """Serve ``version`` (``None``: the base model) from the next answer on."""
        self._executor.submit(self._switch, version)

    def _switch(self, version: AdapterVersion | None) -> None:
        try:
            self._slot.apply(version)
        except ModelLoadError:
            log.exception("switching adapters failed; serving the base model")

    def close(self) -> None:
        """Stop the generation thread and release the model's memory."""
        self._executor.shutdown(wait=True, cancel_futures=True)
        if self._loaded.device == "cuda":
            import torch

            self._loaded.model.to("cpu")
            torch.cuda.empty_cache()

    async def _stream(self, request: GenerationRequest) -> AsyncIterator[str | GenerationResult]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[object] = asyncio.Queue()
        cancel = threading.Event()

        def push(item: object) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, item)

        future = loop.run_in_executor(self._executor, self._run, request, push, cancel)
        try:
            while True:
                item = await queue.get()
                if item is _END:
                    break
                assert isinstance(item, str)
                yield item
            result = await future
        except BaseException:
            cancel.set()  # the reader went away: stop the model at its next token
            raise
        yield result

    def _run(
        self, request: GenerationRequest, push: Any, cancel: threading.Event
    ) -> GenerationResult:
        """Generate in the worker thread, pushing decoded text as it comes."""
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList, TextStreamer

        tokenizer, model, settings = self._loaded.tokenizer, self._loaded.model, self._settings
        started = time.perf_counter()
        first_token: list[float] = []

        class _Streamer(TextStreamer):
            def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
                if text:
                    if not first_token:
                        first_token.append(time.perf_counter() - started)
                    push(text)

        class _Cancelled(StoppingCriteria):
            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> bool:
                return cancel.is_set()

        try:
            inputs = tokenizer.apply_chat_template(
                [t.as_dict() for t in request.turns],
                add_generation_prompt=True,
                return_tensors="pt",
                return_dict=True,
            ).to(self._loaded.device)
            prompt_tokens = int(inputs["input_ids"].shape[1])
            sampling: dict[str, Any] = {"do_sample": False}
            if settings.generation.temperature > 0:
                sampling = {
                    "do_sample": True,
                    "temperature": settings.generation.temperature,
                    "top_p": settings.generation.top_p,
                }
                if settings.generation.seed is not None:
                    torch.manual_seed(settings.generation.seed)
            with torch.inference_mode():
                output = model.generate(
                    **inputs,
                    max_new_tokens=request.max_new_tokens,
                    eos_token_id=self._stop_ids,
                    pad_token_id=tokenizer.pad_token_id,
                    repetition_penalty=settings.generation.repetition_penalty,
                    max_time=settings.generation.answer_time_limit_s,
                    streamer=_Streamer(tokenizer, skip_prompt=True, skip_special_tokens=True),
                    stopping_criteria=StoppingCriteriaList([_Cancelled()]),
                    **sampling,
                )
        except Exception as exc:
            log.exception("generation failed")
            raise GenerationError(f"The model failed while answering: {exc}") from exc
        finally:
            push(_END)
        new_ids = output[0, prompt_tokens:].tolist()
        stopped = bool(new_ids) and new_ids[-1] in self._stop_ids
        if stopped:
            new_ids = new_ids[:-1]
        seconds = time.perf_counter() - started
        if stopped or cancel.is_set():
            reason = FinishReason.STOP
        elif len(new_ids) >= request.max_new_tokens:
            reason = FinishReason.LENGTH
        else:
            reason = FinishReason.TIME
        return GenerationResult(
            text=tokenizer.decode(new_ids, skip_special_tokens=True).strip(),
            model_version=self.model_version,
            prompt_tokens=prompt_tokens,
            completion_tokens=len(new_ids),
            finish_reason=reason,
            seconds=seconds,
            first_token_seconds=first_token[0] if first_token else None,
        )
