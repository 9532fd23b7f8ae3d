"""Benchmark of the embedded deployment on this machine.

Prints, for the configured model (the packaged SmolLM2-135M-Instruct by default):

- model load time, cold (GGUF conversion into an empty cache) and cached, and the time a
  new process takes to import torch and transformers and load the cached model;
- first-token latency and tokens per second for a typical chat turn, through Parley's
  streaming generator, against plain ``model.generate`` on the same prompt as the baseline;
- the time the conversation service spends outside the model per message (SQLite store,
  context building with the real tokenizer), with an instant generator in place of the model.

Usage::

    python bench/embedded.py                 # everything (about 2 minutes on 2 cores)
    python bench/embedded.py --skip-cold     # reuse the model cache
    python bench/embedded.py --runs 3 --messages 100
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
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from config import Settings, load_settings  # noqa: E402
from config.wiring import conversation_options, open_store  # noqa: E402
from core.commands import CommandRegistry  # noqa: E402
from core.conversation import ConversationService, build_responder  # noqa: E402
from core.generator import EchoGenerator, GenerationRequest  # noqa: E402
from core.responder import InProcessAnswerer  # noqa: E402
from core.safety import Safety  # noqa: E402
from core.types import ChatTurn, Message, Role, UserRef  # noqa: E402
from workers.generation import TransformersGenerator  # noqa: E402
from workers.model import load_model  # noqa: E402

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
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True, capture_output=True)
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


async def measure_streamed(
    generator: TransformersGenerator, turns: tuple[ChatTurn, ...], max_new: int
) -> Turn:
    started = time.perf_counter()
    first = None
    stream = generator.generate(GenerationRequest(turns=turns, max_new_tokens=max_new))
    async for _ in stream:
        first = first or time.perf_counter() - started
    result = stream.result
    return Turn(first or result.seconds, time.perf_counter() - started, result.completion_tokens)


def measure_plain(
    generator: TransformersGenerator, settings: Settings, turns: tuple[ChatTurn, ...], max_new: int
) -> Turn:
    """The same greedy answer from plain ``model.generate``: no streamer, no thread."""
    import torch

    loaded = generator.loaded
    inputs = loaded.tokenizer.apply_chat_template(
        [t.as_dict() for t in turns],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    started = time.perf_counter()
    with torch.inference_mode():
        output = loaded.model.generate(
            **inputs,
            max_new_tokens=max_new,
            do_sample=False,
            eos_token_id=generator.stop_token_ids,
            pad_token_id=loaded.tokenizer.pad_token_id,
            repetition_penalty=settings.generation.repetition_penalty,
        )
    total = time.perf_counter() - started
    new = output[0, inputs["input_ids"].shape[1] :].tolist()
    tokens = len(new) - (1 if new and new[-1] in generator.stop_token_ids else 0)
    return Turn(float("nan"), total, tokens)


async def measure_overhead(
    settings: Settings, generator: TransformersGenerator, messages: int
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


async def main(args: argparse.Namespace) -> None:
    settings = load_settings(temperature=0.0)
    cold, cached = measure_load(settings, args.skip_cold)
    log("starting a fresh process that loads the cached model …")
    fresh = measure_fresh_process(settings)
    generator = TransformersGenerator.from_settings(settings)
    system = ChatTurn(Role.SYSTEM, settings.conversation.system_prompt)
    turns = (system, *TURNS)
    await measure_streamed(generator, turns, 8)  # warm-up
    streamed, plain = [], []
    for run in range(args.runs):
        log(f"chat turn {run + 1}/{args.runs} (streamed, then plain generate) …")
        streamed.append(await measure_streamed(generator, turns, args.max_new_tokens))
        plain.append(measure_plain(generator, settings, turns, args.max_new_tokens))
    overhead = await measure_overhead(settings, generator, args.messages)
    generator.close()

    loaded = generator.loaded
    prompt_tokens = generator.tokens.count_chat(turns, add_generation_prompt=True)
    s_tps = statistics.median(t.tokens_per_s for t in streamed)
    p_tps = statistics.median(t.tokens_per_s for t in plain)
    first_ms = statistics.median(t.first_token_s for t in streamed) * 1000
    answer_s = statistics.median(t.total_s for t in streamed)
    dtype = str(loaded.dtype).removeprefix("torch.")
    print(
        f"\nParley embedded benchmark: {loaded.version} on {loaded.device} ({dtype}, "
        f"{settings.llm.cpu_threads} CPU thread(s))"
    )
    row("model load, cold (GGUF conversion)", "skipped" if cold is None else f"{cold:.1f} s")
    row("model load, cached safetensors", f"{cached:.1f} s")
    row("new process to model ready (imports included)", f"{fresh:.1f} s")
    print(
        f"chat turn: {prompt_tokens} prompt tokens, up to {args.max_new_tokens} new tokens, "
        f"median of {args.runs} runs, greedy"
    )
    row("  first-token latency (streamed)", f"{first_ms:.0f} ms")
    tokens = statistics.median(t.tokens for t in streamed)
    row("  tokens/s, Parley streaming generator", f"{s_tps:.1f}  ({tokens:.0f} tokens)")
    row("  tokens/s, plain model.generate (baseline)", f"{p_tps:.1f}  ratio {s_tps / p_tps:.2f}x")
    print(f"service outside the model, {args.messages} messages (SQLite, real tokenizer):")
    p50, p95 = pct(overhead, 0.5) * 1000, pct(overhead, 0.95) * 1000
    row("  p50 / p95 per message", f"{p50:.1f} / {p95:.1f} ms")
    row("  p50 as a share of a typical answer", f"{p50 / 10 / answer_s:.2f} %")


def row(label: str, value: str) -> None:
    print(f"{label:<46} {value}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--max-new-tokens", type=int, default=96)
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--skip-cold", action="store_true")
    asyncio.run(main(parser.parse_args()))
