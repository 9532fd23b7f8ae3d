"""Timing answers for the benchmark scripts: each answer's times and their percentiles.

A sibling of the scripts that import it (``python bench/throughput.py`` puts ``bench/`` first
on the module path), so it imports no other script itself.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from core.generator import GenerationRequest, GenerationResult, Generator
from core.streaming import Streamed

Submit = Callable[[GenerationRequest], Awaitable[Streamed[GenerationResult]]]
"""Starts one answer and returns its stream: the in-process generator, or a remote worker."""


@dataclass(frozen=True, slots=True)
class Timing:
    """One answer, timed from the moment all N requests were submitted."""

    first_token_s: float
    total_s: float
    tokens: int


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def time_answers(submit: Submit, requests: Sequence[GenerationRequest]) -> list[Timing]:
    """Submit every request at once through ``submit`` and time each answer's stream."""
    started = time.perf_counter()

    async def one(request: GenerationRequest) -> Timing:
        stream = await submit(request)
        first = None
        async for _ in stream:
            if first is None:
                first = time.perf_counter() - started
        total = time.perf_counter() - started
        return Timing(total if first is None else first, total, stream.result.completion_tokens)

    return list(await asyncio.gather(*(one(r) for r in requests)))


def in_process(generator: Generator) -> Submit:
    """``submit`` for a generator in this process."""

    async def submit(request: GenerationRequest) -> Streamed[GenerationResult]:
        return generator.generate(request)

    return submit
