"""Benchmark of concurrent answers: continuous batching against one request at a time.

For each concurrency N, N distinct chat prompts are submitted at once to the generator the
wiring serves (``config.wiring.build_generator``: :class:`workers.batching.BatchedGenerator`)
in this process. The baseline, in the same run and right after, answers the same requests
one after another with plain ``model.generate``, so that the i-th request's times include
waiting for the earlier ones. Each N's modes run back to back, so that a machine whose load
changes during the run weighs on them alike. Prints aggregate tokens/s, p50/p95 time to first
token and to the full answer, and the ratios of the batched figures to the baseline's.

By default every answer is exactly --max-new-tokens long (stop tokens are ignored, and the
baseline is held to the same length with ``min_new_tokens``), so both modes do the same
work; --natural-length lets answers stop where the model ends them.

Usage (the project installed, e.g. by ``make setup``; from the repository's root)::

    PARLEY_MODEL_CACHE_DIR=.cache/models python bench/throughput.py   # ~10 minutes, 2 idle cores
    python bench/throughput.py --concurrency 1 4 --max-new-tokens 32
    python bench/throughput.py --temperature 0.3 --natural-length

The same requests also go through the scaled deployment (``celery`` rows, run by
``bench/scaled_deployment.py``): this process accepts each as a message (stored with its
answer job), a Celery worker process on a Redis server of the benchmark's own answers them
with the same batching, and the answers stream back through Redis. ``--no-celery`` skips
those rows.

``--openai [URL]`` adds, in the same run, Parley's openai engine against the bare ``openai``
client on one OpenAI-compatible server (by default a llama.cpp server started here on the
packaged GGUF): the HTTP path's overhead per answer (bench/openai_overhead.py).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

# Siblings in bench/, which ``python bench/throughput.py`` puts first on the module path.
from measuring import Submit, Timing, in_process, log, pct, time_answers
from scaled_deployment import ScaledDeployment

from config import Settings, load_settings
from config.wiring import build_generator
from core.generator import GenerationRequest
from core.types import ChatTurn, Role
from workers.batching import BatchedGenerator
from workers.model import LoadedModel

TOPICS = (
    "a team offsite",
    "remote work",
    "unit tests",
    "coffee",
    "the moon",
    "bicycles",
    "a job interview",
    "learning Spanish",
)
QUESTIONS = (
    "Give me three tips about {}.",
    "Write a short paragraph about {}.",
    "What are the pros and cons of {}? Please keep it practical.",
    "Explain {} to a ten-year-old who asks a lot of questions.",
)


@dataclass(frozen=True, slots=True)
class Run:
    """N answers in one mode."""

    mode: str
    n: int
    timings: Sequence[Timing]

    @property
    def tokens(self) -> int:
        return sum(t.tokens for t in self.timings)

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / max(t.total_s for t in self.timings)

    def first_token(self, q: float) -> float:
        return pct([t.first_token_s for t in self.timings], q)

    def answer(self, q: float) -> float:
        return pct([t.total_s for t in self.timings], q)


def make_requests(settings: Settings, count: int, max_new: int) -> list[GenerationRequest]:
    """``count`` distinct chat prompts (32 at most), each with the configured system prompt."""
    system = ChatTurn(Role.SYSTEM, settings.conversation.system_prompt)
    texts = [q.format(t) for q in QUESTIONS for t in TOPICS]
    if count > len(texts):
        raise SystemExit(f"at most {len(texts)} distinct prompts; asked for {count}")
    return [
        GenerationRequest(turns=(system, ChatTurn(Role.USER, text)), max_new_tokens=max_new)
        for text in texts[:count]
    ]


# ---------------------------------------------------------------------------------------
# HOOK for other deployments. Give measure_submit an async ``submit(request) -> Streamed``
# (for Celery: enqueue the task and return a Streamed over its result stream) and add its
# rows to ``runs`` in main(); the table and the ratios need nothing else.
# ---------------------------------------------------------------------------------------


async def measure_submit(mode: str, submit: Submit, requests: Sequence[GenerationRequest]) -> Run:
    """Submit every request at once through ``submit`` and time each answer's stream."""
    return Run(mode, len(requests), await time_answers(submit, requests))


def measure_sequential(
    loaded: LoadedModel,
    settings: Settings,
    requests: Sequence[GenerationRequest],
    stop_ids: list[int],
    natural_length: bool,
) -> list[Timing]:
    """Plain ``model.generate``, one request after another, timed from before the first."""
    import torch
    from transformers.generation.streamers import BaseStreamer

    class FirstToken(BaseStreamer):  # type: ignore[misc]
        """Notes when the first new token arrives (the first put is the prompt)."""

        def __init__(self) -> None:
            self.puts = 0
            self.at: float | None = None

        def put(self, value: Any) -> None:
            self.puts += 1
            if self.puts == 2:
                self.at = time.perf_counter()

        def end(self) -> None:
            pass

    sampling: dict[str, Any] = {"do_sample": False}
    if settings.generation.temperature > 0:
        sampling = {
            "do_sample": True,
            "temperature": settings.generation.temperature,
            "top_p": settings.generation.top_p,
        }
    timings = []
    started = time.perf_counter()
    for i, request in enumerate(requests):
        inputs = loaded.tokenizer.apply_chat_template(
            [t.as_dict() for t in request.turns],
            add_generation_prompt=True,
            return_tensors="pt",
            return_dict=True,
        ).to(loaded.device)
        streamer = FirstToken()
        with torch.inference_mode():
            output = loaded.model.generate(
                **inputs,
                max_new_tokens=request.max_new_tokens,
                min_new_tokens=None if natural_length else request.max_new_tokens,
                eos_token_id=stop_ids,
                pad_token_id=loaded.tokenizer.pad_token_id,
                repetition_penalty=settings.generation.repetition_penalty,
                streamer=streamer,
                **sampling,
            )
        total = time.perf_counter() - started
        new = output[0, inputs["input_ids"].shape[1] :].tolist()
        tokens = len(new) - (1 if new and new[-1] in stop_ids else 0)
        first = total if streamer.at is None else streamer.at - started
        timings.append(Timing(first, total, tokens))
        if (i + 1) % 8 == 0:
            log(f"  baseline: {i + 1}/{len(requests)} answers, {total:.0f} s")
    return timings


async def main(args: argparse.Namespace) -> None:
    overrides: dict[str, Any] = {"temperature": args.temperature}
    if args.max_batch_size is not None:
        overrides["max_batch_size"] = args.max_batch_size
    # Slow answers on a busy machine must not be cut short: the baseline has no time limit.
    settings = load_settings(answer_time_limit_s=3600.0, **overrides)
    batched = build_generator(settings)  # what the embedded deployment serves
    if not isinstance(batched, BatchedGenerator):
        raise SystemExit("PARLEY_GENERATOR replaces the served generator: unset it to benchmark")
    loaded = batched.loaded
    stop_ids = batched.stop_token_ids
    if not args.natural_length:  # the same engine over the same model, without stop tokens
        batched.close()
        batched = BatchedGenerator(loaded, settings, stop_token_ids=())
    requests = make_requests(settings, max(args.concurrency), args.max_new_tokens)

    with contextlib.ExitStack() as stack:
        scaled = None
        if args.celery:
            scaled = stack.enter_context(ScaledDeployment(settings, args))
            log("through Celery: warming up the worker …")
            await measure_submit("warm-up", scaled.submit, requests[:1])
        log("warming up …")
        await measure_submit("warm-up", in_process(batched), make_requests(settings, 2, 4))
        measure_sequential(loaded, settings, requests[:1], stop_ids, args.natural_length)
        runs: list[Run] = []
        baselines: dict[int, Run] = {}
        for n in sorted(args.concurrency):  # each N's modes back to back: alike in load
            log(f"batched, {n} at once …")
            runs.append(await measure_submit("batched", in_process(batched), requests[:n]))
            if scaled is not None:
                log(f"through Celery, {n} at once …")
                runs.append(await measure_submit("celery", scaled.submit, requests[:n]))
            log(f"baseline: {n} answers one at a time with plain model.generate …")
            sequential = measure_sequential(
                loaded, settings, requests[:n], stop_ids, args.natural_length
            )
            baselines[n] = Run("one at a time", n, sequential)
        peak = batched.stats.peak_batch
        batched.close()

    dtype = str(loaded.dtype).removeprefix("torch.")
    length = "answers end where the model stops" if args.natural_length else "stop tokens ignored"
    decoding = (
        "greedy"
        if settings.generation.temperature == 0
        else f"temperature {settings.generation.temperature}"
    )
    print(
        f"\nParley throughput benchmark: {loaded.version} on {loaded.device} ({dtype}, "
        f"{settings.llm.cpu_threads} CPU thread(s)); up to {args.max_new_tokens} new tokens per "
        f"answer, {length}; {decoding}; "
        f"max_batch_size {settings.generation.max_batch_size} (peak {peak})"
    )
    header = (
        f"{'mode':<14}{'N':>4}{'tokens':>8}{'tok/s':>8}{'TTFT p50':>10}{'TTFT p95':>10}"
        f"{'full p50':>10}{'full p95':>10}{'tok/s ratio':>12}{'p95 ratio':>11}"
    )
    print(header)
    print("-" * len(header))
    for n in sorted(args.concurrency):
        base = baselines[n]
        for run in [base, *(r for r in runs if r.n == n)]:
            print(
                f"{run.mode:<14}{n:>4}{run.tokens:>8}{run.tokens_per_s:>8.1f}"
                f"{run.first_token(0.5):>9.2f}s{run.first_token(0.95):>9.2f}s"
                f"{run.answer(0.5):>9.2f}s{run.answer(0.95):>9.2f}s"
                f"{run.tokens_per_s / base.tokens_per_s:>12.2f}"
                f"{run.answer(0.95) / base.answer(0.95):>11.2f}"
            )
    for run in runs:
        if run.n == 16:
            base = baselines[16]
            speed = run.tokens_per_s / base.tokens_per_s
            p95 = run.answer(0.95) / base.answer(0.95)
            verdict = "met" if speed >= 5 and p95 <= 1 / 3 else "NOT met"
            print(
                f"bar at N=16 ({run.mode}): throughput ≥ 5x and p95 full answer ≤ 1/3 of the "
                f"baseline: {speed:.1f}x and {p95:.2f} → {verdict}"
            )
    if args.openai is not None:
        from openai_overhead import run as openai_overhead

        url = None if args.openai == "start" else args.openai
        await openai_overhead(url, args.openai_model, args.openai_rounds, args.max_new_tokens)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16, 32])
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--temperature", type=float, default=0.0)
    parser.add_argument(
        "--max-batch-size", type=int, default=None, help="default: PARLEY_MAX_BATCH_SIZE (16)"
    )
    parser.add_argument(
        "--no-celery", dest="celery", action="store_false", help="skip the Celery runs"
    )
    parser.add_argument(
        "--database-url", default=None, help="the Celery runs' database (default: SQLite)"
    )
    parser.add_argument(
        "--natural-length",
        action="store_true",
        help="let answers stop at the model's end of turn instead of forcing a fixed length",
    )
    parser.add_argument(
        "--openai",
        nargs="?",
        const="start",
        default=None,
        metavar="URL",
        help="also compare the openai engine with the bare openai client on this server "
        "(no URL: start llama.cpp's server on the packaged model)",
    )
    parser.add_argument("--openai-model", default=None, help="default: the server's only one")
    parser.add_argument("--openai-rounds", type=int, default=8)
    asyncio.run(main(parser.parse_args()))
