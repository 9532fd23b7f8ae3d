"""Benchmark of the embedded deployment on this machine.

Prints, for the configured model (the packaged SmolLM2-135M-Instruct by default):

- model load time, cold (GGUF conversion into an empty cache) and cached, and the time a
  new process takes to import torch and transformers and load the cached model;
- first-token latency and tokens per second for a typical chat turn through the generator
  the wiring serves (``config.wiring.build_generator``: the batching engine, one
  conversation), against plain ``model.generate`` on the same prompt as the baseline,
  greedy, same answer length, same torch threads; the two alternate run by run (ABBA) so
  that a busy machine slows both alike, and the figures are medians;
- the time the conversation service spends outside the model per message (SQLite store,
  context building with the real tokenizer), with an instant generator in place of the model.

Usage (the project installed, e.g. by ``make setup``)::

    python bench/embedded.py                 # everything (about 3 minutes on 2 cores)
    python bench/embedded.py --skip-cold     # reuse the model cache
    python bench/embedded.py --runs 8 --messages 100
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from config import Settings, load_settings
from config.wiring import build_generator, conversation_options, open_store
from core.commands import CommandRegistry
from core.conversation import ConversationService, build_responder
from core.generator import EchoGenerator, GenerationRequest
from core.responder import InProcessAnswerer
from core.safety import Safety
from core.types import ChatTurn, Message, Role, UserRef
from workers.batching import BatchedGenerator
from workers.model import load_model

BAR = 0.95
"""The served path must stream one conversation at least this fast, relative to plain generate."""

TURNS = (
    ChatTurn(Role.USER, "Hi! I'm planning a team offsite next month."),
    ChatTurn(Role.ASSISTANT, "That sounds great! How can I help you plan it?"),
    ChatTurn(Role.USER, "Can you suggest three activities for a group of ten people?"),
)


@dataclass(frozen=True, slots=True)
class Turn:
    """One measured answer."""

    first_token_s: float
    total_s: float
    tokens: int

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.total_s


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def measure_fresh_process(settings: Settings) -> float:
    """Seconds for a new Python process to import torch and transformers and load the cache."""
    code = (
        "from config import load_settings; from workers.model import load_model; "
        "load_model(load_settings())"
    )
    env = {**os.environ, "PARLEY_MODEL_CACHE_DIR": str(settings.models_dir.resolve())}
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def measure_load(settings: Settings, skip_cold: bool) -> tuple[float | None, float]:
    cold = None
    if not skip_cold:
        with tempfile.TemporaryDirectory() as cache:
            log("loading cold (GGUF conversion into an empty cache) …")
            cold = load_model(
                settings.model_copy(update={"model_cache_dir": Path(cache)})
            ).load_seconds
    load_model(settings)  # make sure the real cache exists
    log("loading from the cache …")
    return cold, load_model(settings).load_seconds


async def measure_served(
    generator: BatchedGenerator, turns: tuple[ChatTurn, ...], max_new: int
) -> Turn:
    """One answer streamed through the served generator, timed as its reader sees it."""
    started = time.perf_counter()
    first = None
    stream = generator.generate(GenerationRequest(turns=turns, max_new_tokens=max_new))
    async for _ in stream:
        first = first or time.perf_counter() - started
    result = stream.result
    return Turn(first or result.seconds, time.perf_counter() - started, result.completion_tokens)


def measure_plain(
    generator: BatchedGenerator, settings: Settings, turns: tuple[ChatTurn, ...], max_new: int
) -> Turn:
    """The same greedy answer from plain ``model.generate`` in this thread: no engine, no
    event loop; a streamer that only notes the first new token's time."""
    import torch
    from transformers.generation.streamers import BaseStreamer

    loaded = generator.loaded
    first: list[float] = []

    class FirstToken(BaseStreamer):  # type: ignore[misc]
        """The first put is the prompt, the second the first new token."""

        puts = 0

        def put(self, value: Any) -> None:
            self.puts += 1
            if self.puts == 2:
                first.append(time.perf_counter())

        def end(self) -> None:
            pass

    started = time.perf_counter()
    inputs = loaded.tokenizer.apply_chat_template(
        [t.as_dict() for t in turns],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    ).to(loaded.device)
    with torch.inference_mode():
        output = loaded.model.generate(
            **inputs,
            max_new_tokens=max_new,
            do_sample=False,
            eos_token_id=generator.stop_token_ids,
            pad_token_id=loaded.tokenizer.pad_token_id,
            repetition_penalty=settings.generation.repetition_penalty,
            streamer=FirstToken(),
        )
    total = time.perf_counter() - started
    new = output[0, inputs["input_ids"].shape[1] :].tolist()
    tokens = len(new) - (1 if new and new[-1] in generator.stop_token_ids else 0)
    return Turn(first[0] - started if first else total, total, tokens)


async def measure_overhead(
    settings: Settings, generator: BatchedGenerator, messages: int
) -> list[float]:
    """Seconds per message in the service with an instant model: store + context + bookkeeping."""
    with tempfile.TemporaryDirectory() as data:
        local = settings.model_copy(update={"data_dir": Path(data), "database_url": None})
        store = open_store(local)
        echo = EchoGenerator(
            replies=["Sure, here are three ideas: a hike, a cooking class, a quiz night."]
            * messages
        )
        options, safety = conversation_options(local), Safety()
        responder = build_responder(
            store=store, generator=echo, tokens=generator.tokens, options=options, safety=safety
        )
        service = ConversationService(
            store=store,
            options=options,
            answerer=InProcessAnswerer(responder),
            commands=CommandRegistry(),  # the messages are questions, not commands
            safety=safety,
        )
        user = UserRef("bench", "u1", "Ada")
        times = []
        for i in range(messages):
            message = Message(
                platform="bench",
                chat="c1",
                user=user,
                text=f"Question {i}: what should we do next?",
            )
            started = time.perf_counter()
            await service.handle(message).collect()
            times.append(time.perf_counter() - started)
            if (i + 1) % 50 == 0:
                log(f"  service overhead: {i + 1}/{messages} messages")
        store.dispose()
        return times


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def median(turns: list[Turn], figure: Callable[[Turn], float]) -> float:
    return statistics.median(figure(t) for t in turns)


def speed(turn: Turn) -> float:
    return turn.tokens_per_s


async def main(args: argparse.Namespace) -> None:
    settings = load_settings(temperature=0.0)
    cold, cached = measure_load(settings, args.skip_cold)
    log("starting a fresh process that loads the cached model …")
    fresh = measure_fresh_process(settings)
    generator = build_generator(settings)  # what the embedded deployment serves
    if not isinstance(generator, BatchedGenerator):
        raise SystemExit("PARLEY_GENERATOR replaces the served generator: unset it to benchmark")
    system = ChatTurn(Role.SYSTEM, settings.conversation.system_prompt)
    turns = (system, *TURNS)
    await measure_served(generator, turns, 8)  # warm-up, both paths
    measure_plain(generator, settings, turns, 8)
    served, plain = [], []
    for run in range(args.runs):
        log(f"chat turn {run + 1}/{args.runs} (served and plain generate, alternating) …")
        if run % 4 in (0, 3):
            served.append(await measure_served(generator, turns, args.max_new_tokens))
            plain.append(measure_plain(generator, settings, turns, args.max_new_tokens))
        else:
            plain.append(measure_plain(generator, settings, turns, args.max_new_tokens))
            served.append(await measure_served(generator, turns, args.max_new_tokens))
    overhead = await measure_overhead(settings, generator, args.messages)
    generator.close()

    import torch

    loaded = generator.loaded
    prompt_tokens = generator.tokens.count_chat(turns, add_generation_prompt=True)
    s_tps, p_tps = median(served, speed), median(plain, speed)
    s_first, p_first = (
        median(served, lambda t: t.first_token_s),
        median(plain, lambda t: t.first_token_s),
    )
    answer_s = median(served, lambda t: t.total_s)
    pairs = sorted(s.tokens_per_s / p.tokens_per_s for s, p in zip(served, plain, strict=True))
    dtype = str(loaded.dtype).removeprefix("torch.")
    print(
        f"\nParley embedded benchmark: {loaded.version} on {loaded.device} ({dtype}, "
        f"{torch.get_num_threads()} torch thread(s))"
    )
    row("model load, cold (GGUF conversion)", "skipped" if cold is None else f"{cold:.1f} s")
    row("model load, cached safetensors", f"{cached:.1f} s")
    row("new process to model ready (imports included)", f"{fresh:.1f} s")
    print(
        f"chat turn: {prompt_tokens} prompt tokens, up to {args.max_new_tokens} new tokens, "
        f"greedy, median of {args.runs} runs of each, alternating"
    )
    tokens = median(served, lambda t: t.tokens)
    row("  first-token latency, served / plain", f"{s_first * 1000:.0f} / {p_first * 1000:.0f} ms")
    row("  tokens/s, served (batching engine)", f"{s_tps:.1f}  ({tokens:.0f} tokens)")
    row("  tokens/s, plain model.generate (baseline)", f"{p_tps:.1f}")
    row(
        "  ratio served / plain",
        f"{s_tps / p_tps:.2f}x  (run by run {pairs[0]:.2f} to {pairs[-1]:.2f})",
    )
    verdict = "met" if s_tps / p_tps >= BAR else "NOT met"
    print(f"bar: one conversation served at ≥ {BAR}x plain generate's tokens/s → {verdict}")
    print(f"service outside the model, {args.messages} messages (SQLite, real tokenizer):")
    p50, p95 = pct(overhead, 0.5) * 1000, pct(overhead, 0.95) * 1000
    row("  p50 / p95 per message", f"{p50:.1f} / {p95:.1f} ms")
    row("  p50 as a share of a typical answer", f"{p50 / 10 / answer_s:.2f} %")


def row(label: str, value: str) -> None:
    print(f"{label:<46} {value}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=96)
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--skip-cold", action="store_true")
    asyncio.run(main(parser.parse_args()))
