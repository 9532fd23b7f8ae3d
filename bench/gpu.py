"""Device check: Parley's transformers engine on a CUDA GPU, as a GPU Celery worker runs it.

Three parts, one run, a few minutes of device time:

1. **Serving**: :class:`workers.batching.BatchedGenerator` (the engine a ``worker`` process
   runs) on CUDA in bfloat16 at 1, 16, 64 and 256 concurrent conversations, against plain
   ``model.generate`` on the same GPU in the same run: one answer at a time (the first
   ``--measured`` answers timed, the queue behind them extrapolated from their mean, and said
   so), and one padded static batch of all N. Tokens/s, time to first token and to the full
   answer, p50/p95. Answers are held to ``--max-new-tokens`` (stop tokens ignored), so every
   mode does the same work.
2. **Training**: plain LoRA steps (PEFT, r=8 on q/k/v/o, batch 8 x 128 tokens: the CPU
   figure is about 7 s per step on 2 cores) and, where TRL and datasets are installed, the
   nightly run's KTO stage; steps per second.
3. **Switching the served version while answering**: answers are running when the LoRA of
   part 2 is promoted; every answer finishes, the ones after the switch name the adapter, and
   the time from the promotion to the first answer from the adapter is printed.

Usage::

    python bench/gpu.py                        # on the GPU machine, the packaged model
    python bench/gpu.py --smoke                # anywhere, in seconds: checks the script
    python bench/gpu.py --export-skeleton bench/gpu_model   # here: config + tokenizer, 3.5 MB
    python bench/gpu.py --model bench/gpu_model --random-init  # there, without the weights

The GPU machine reaches no registry and a call carries 64 MiB at most, less than the
packaged model's weights: ``--random-init`` builds the same architecture from its config
with random weights (the same compute per token; the text is noise, which a throughput
figure does not read).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# The one bench script that edits the path: it runs on a lent GPU machine over a copy of the
# working tree, where the project is not installed (its other benches import it installed).
sys.path.insert(0, str(ROOT))

# Siblings in bench/, which ``python bench/gpu.py`` puts on the module path.
from measuring import Timing, in_process, log, pct, time_answers  # noqa: E402
from skeleton import export_skeleton, random_init  # noqa: E402

from config import Settings, load_settings  # noqa: E402
from core.generator import GenerationRequest  # noqa: E402
from core.registry import AdapterVersion  # noqa: E402
from core.types import ChatTurn, Role  # noqa: E402

TOPICS = ("a team offsite", "remote work", "unit tests", "coffee", "the moon", "bicycles")
QUESTIONS = (
    "Give me three tips about {}.",
    "Write a short paragraph about {}.",
    "What are the pros and cons of {}?",
    "Explain {} to a ten-year-old.",
)
CPU_LORA_S_PER_STEP = 7.0
"""LoRA r=8 on q/k/v/o, batch 8 x 128 tokens, on this project's 2-core CPUs (ASSETS.md)."""


@dataclass(frozen=True, slots=True)
class Row:
    mode: str
    n: int
    timings: Sequence[Timing]

    def line(self) -> str:
        tokens = sum(t.tokens for t in self.timings)
        speed = tokens / max(t.total_s for t in self.timings)
        first = [t.first_token_s for t in self.timings]
        full = [t.total_s for t in self.timings]
        return (
            f"{self.mode:<34}{self.n:>5}{tokens:>8}{speed:>9.1f}"
            f"{pct(first, 0.5):>9.3f}s{pct(first, 0.95):>9.3f}s"
            f"{pct(full, 0.5):>9.3f}s{pct(full, 0.95):>9.3f}s"
        )


def requests(settings: Settings, count: int, max_new: int) -> list[GenerationRequest]:
    """``count`` distinct conversations."""
    system = ChatTurn(Role.SYSTEM, settings.conversation.system_prompt)
    texts = [q.format(t) for q in QUESTIONS for t in TOPICS]
    return [
        GenerationRequest(
            turns=(system, ChatTurn(Role.USER, f"{texts[i % len(texts)]} (conversation {i})")),
            max_new_tokens=max_new,
            request_id=f"gpu-{i}",
        )
        for i in range(count)
    ]


async def batched_row(generator: Any, asked: Sequence[GenerationRequest]) -> Row:
    """Every request at once through the batching engine."""
    timings = await time_answers(in_process(generator), asked)
    return Row("Parley batching engine", len(asked), timings)


def _inputs(loaded: Any, asked: Sequence[GenerationRequest]) -> Any:
    tokenizer = loaded.tokenizer
    tokenizer.padding_side = "left"
    texts = [
        tokenizer.apply_chat_template(
            [t.as_dict() for t in r.turns], add_generation_prompt=True, tokenize=False
        )
        for r in asked
    ]
    return tokenizer(texts, return_tensors="pt", padding=True).to(loaded.device)


def generate_once(loaded: Any, request: GenerationRequest) -> tuple[float, float]:
    """Plain ``generate`` of one answer: seconds to the first token, seconds in all."""
    import torch
    from transformers import TextStreamer

    tokenizer = loaded.tokenizer
    started = time.perf_counter()
    first: list[float] = []

    class Clock(TextStreamer):
        def put(self, value: Any) -> None:
            if first or (self.skip_prompt and self.next_tokens_are_prompt):
                self.next_tokens_are_prompt = False
                return
            if loaded.device == "cuda":
                torch.cuda.synchronize()
            first.append(time.perf_counter() - started)

        def end(self) -> None:
            pass

    inputs = _inputs(loaded, [request])
    with torch.inference_mode():
        loaded.model.generate(
            **inputs,
            max_new_tokens=request.max_new_tokens,
            min_new_tokens=request.max_new_tokens,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
            streamer=Clock(tokenizer, skip_prompt=True),
        )
    if loaded.device == "cuda":
        torch.cuda.synchronize()
    total = time.perf_counter() - started
    return (first[0] if first else total), total


def sequential_row(loaded: Any, asked: Sequence[GenerationRequest], measured: int) -> Row:
    """One answer at a time: the first ``measured`` timed, the queue behind them extrapolated."""
    samples = [generate_once(loaded, r) for r in asked[:measured]]
    timings: list[Timing] = []
    clock = 0.0
    mean_first = sum(f for f, _ in samples) / len(samples)
    mean_total = sum(t for _, t in samples) / len(samples)
    for i, request in enumerate(asked):
        first, total = samples[i] if i < len(samples) else (mean_first, mean_total)
        timings.append(Timing(clock + first, clock + total, request.max_new_tokens))
        clock += total
    label = "generate, one at a time"
    if len(asked) > len(samples):
        label += f" ({len(samples)} timed)"
    return Row(label, len(asked), timings)


def static_batch_row(loaded: Any, asked: Sequence[GenerationRequest]) -> Row:
    """All N in one padded ``generate`` call: nothing shows until all are done."""
    import torch

    inputs = _inputs(loaded, asked)
    started = time.perf_counter()
    with torch.inference_mode():
        loaded.model.generate(
            **inputs,
            max_new_tokens=asked[0].max_new_tokens,
            min_new_tokens=asked[0].max_new_tokens,
            do_sample=False,
            pad_token_id=loaded.tokenizer.pad_token_id,
        )
    if loaded.device == "cuda":
        torch.cuda.synchronize()
    total = time.perf_counter() - started
    timings = [Timing(total, total, r.max_new_tokens) for r in asked]
    return Row("generate, one static batch", len(asked), timings)


def lora_steps(loaded: Any, steps: int, batch: int, length: int) -> tuple[float, Path]:
    """Seconds per plain LoRA step (r=8, q/k/v/o) and the adapter's folder."""
    import torch

    from workers.training import TrainingOptions, prepare_model
    from workers.training.synthetic import signed_feedback

    options = TrainingOptions(batch_size=batch, max_length=length)
    model = prepare_model(loaded.model, options, None)
    model.train()
    optimiser = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=options.learning_rate
    )
    tokenizer = loaded.tokenizer
    records = [r for r in signed_feedback(max(8, steps * batch)) if r.rating is not None]
    texts = [
        tokenizer.apply_chat_template(
            [*(t.as_dict() for t in r.prompt), {"role": "assistant", "content": r.answer}],
            tokenize=False,
        )
        for r in records
    ]
    tokenizer.padding_side = "right"
    timed = 0.0
    for step in range(steps + 1):  # step 0 warms up kernels and the allocator
        chunk = [texts[(step * batch + i) % len(texts)] for i in range(batch)]
        encoded = tokenizer(
            chunk, return_tensors="pt", padding="max_length", truncation=True, max_length=length
        ).to(loaded.device)
        labels = encoded.input_ids.masked_fill(encoded.attention_mask == 0, -100)
        started = time.perf_counter()
        with torch.autocast(loaded.device, dtype=torch.bfloat16, enabled=loaded.device == "cuda"):
            loss = model(**encoded, labels=labels).loss
        loss.backward()
        optimiser.step()
        optimiser.zero_grad()
        if loaded.device == "cuda":
            torch.cuda.synchronize()
        if step:
            timed += time.perf_counter() - started
    folder = Path(tempfile.mkdtemp(prefix="parley-gpu-lora-"))
    model.save_pretrained(folder)
    del model, optimiser
    return timed / steps, folder


def kto_steps(loaded: Any, steps: int, batch: int, length: int) -> str:
    """The nightly run's KTO stage on this device, or why it could not run."""
    try:
        import datasets  # noqa: F401
        import trl  # noqa: F401
    except ImportError as exc:
        return f"skipped ({exc.name} is not installed here)"
    from workers.training import TrainingOptions, run_fine_tune
    from workers.training.synthetic import signed_feedback

    options = TrainingOptions(
        max_steps=steps,
        batch_size=batch,
        max_length=length,
        min_new_feedback=10,
        untrusted_weight=1.0,
        regression_size=16,
    )
    records = signed_feedback(max(40, steps * batch))
    with tempfile.TemporaryDirectory(prefix="parley-gpu-kto-") as folder:
        outcome = run_fine_tune(records, options, base=loaded, out_dir=Path(folder))
    if outcome.training is None:
        return f"did not train: {outcome.status}: {outcome.reason}"
    stage = outcome.training.stages[0]
    return (
        f"{stage.steps} steps in {outcome.training.seconds:.1f} s "
        f"({stage.steps / outcome.training.seconds:.2f} steps/s), whole run {outcome.seconds:.1f} s"
    )


async def switch_while_answering(
    generator: Any, settings: Settings, adapter: Path, n: int, max_new: int
) -> list[str]:
    """Promote the adapter while ``n`` answers run; check what each answer names."""
    version = AdapterVersion(id="gpu-bench", base_model="bench", path=str(adapter))
    asked = requests(settings, 2 * n, max_new)
    first_adapted: list[float] = []

    async def answer(request: GenerationRequest, running: asyncio.Event) -> Any:
        stream = generator.generate(request)
        async for _ in stream:
            running.set()
        result = stream.result
        if result.model_version.endswith("+gpu-bench") and not first_adapted:
            first_adapted.append(time.perf_counter() - promoted)
        return result

    events = [asyncio.Event() for _ in range(2 * n)]
    promoted = time.perf_counter()
    before = [asyncio.ensure_future(answer(r, e)) for r, e in zip(asked[:n], events, strict=False)]
    await asyncio.gather(*(e.wait() for e in events[:n]))  # every one of them is answering
    promoted = time.perf_counter()
    generator.use_version(version)
    after = [
        asyncio.ensure_future(answer(r, e)) for r, e in zip(asked[n:], events[n:], strict=True)
    ]
    results = [*await asyncio.gather(*before), *await asyncio.gather(*after)]
    generator.use_version(None)
    back = await generator.generate(asked[0]).collect()
    names = sorted({r.model_version for r in results})
    return [
        f"{len(results)} answers, all finished: {all(r.completion_tokens for r in results)}",
        f"versions named: {', '.join(names)}",
        f"running answers kept their version: "
        f"{all(not r.model_version.endswith('+gpu-bench') for r in results[:n])}",
        "promotion to the first answer from the adapter: "
        + (f"{first_adapted[0]:.2f} s" if first_adapted else "never (FAILED)"),
        f"after rollback: {back.model_version}",
    ]


async def main(args: argparse.Namespace) -> None:
    import torch

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    if args.smoke:
        args.concurrency = [1, 2]
        args.max_new_tokens = 4
        args.measured = 1
        args.lora_steps, args.lora_batch, args.lora_length = 2, 2, 32
        args.kto = False
        args.switch_n = 2
    cuda = torch.cuda.is_available()
    if not cuda and not args.smoke:
        raise SystemExit("no CUDA GPU here: run with --smoke to check the script on a CPU")
    device, dtype = ("cuda", "bfloat16") if cuda else ("cpu", "float32")
    model = args.model
    if args.random_init:
        model = str(random_init(Path(args.model), Path(tempfile.mkdtemp()) / "model", dtype))
    settings = load_settings(
        model=model,
        device=device,
        dtype=dtype,
        temperature=0.0,
        max_batch_size=max(args.concurrency),
        answer_time_limit_s=600.0,
    )
    from workers.batching import BatchedGenerator
    from workers.model import load_model

    started = time.perf_counter()
    loaded = load_model(settings)
    load_s = time.perf_counter() - started
    where = torch.cuda.get_device_name(0) if cuda else "CPU"
    print(
        f"Parley device check: {loaded.version} on {where} ({dtype}), loaded in {load_s:.1f} s"
        f"{' (random weights)' if args.random_init else ''}; {args.max_new_tokens} new tokens "
        "per answer, stop tokens ignored, greedy"
    )

    # 1. Serving.
    generator = BatchedGenerator(loaded, settings, stop_token_ids=())
    largest = max(args.concurrency)
    asked = requests(settings, largest, args.max_new_tokens)
    log("warming up …")
    await batched_row(generator, asked[:2])
    generate_once(loaded, asked[0])
    header = (
        f"{'mode':<34}{'N':>5}{'tokens':>8}{'tok/s':>9}{'TTFT p50':>10}{'TTFT p95':>10}"
        f"{'full p50':>10}{'full p95':>10}"
    )
    print("\n1. Serving: N conversations at once\n" + header + "\n" + "-" * len(header))
    sequential = sequential_row(loaded, asked, args.measured)
    for n in sorted(args.concurrency):
        log(f"N={n} …")
        batched = await batched_row(generator, asked[:n])
        baseline = Row(sequential.mode, n, sequential.timings[:n])
        static = static_batch_row(loaded, asked[:n])
        for row in (baseline, static, batched):
            print(row.line())
    print(f"peak batch: {generator.stats.peak_batch}")
    if cuda:
        print(f"peak GPU memory: {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")

    # 2. Training.
    print("\n2. Training on this device")
    per_step, adapter = lora_steps(
        load_model(settings), args.lora_steps, args.lora_batch, args.lora_length
    )
    against_cpu = ""
    if (args.lora_batch, args.lora_length) == (8, 128):
        against_cpu = (
            f"; CPU (2 cores): ~{CPU_LORA_S_PER_STEP:.0f} s/step → "
            f"{CPU_LORA_S_PER_STEP / per_step:.0f}x"
        )
    print(
        f"plain LoRA r=8 q/k/v/o, batch {args.lora_batch} x {args.lora_length} tokens: "
        f"{per_step:.3f} s/step ({1 / per_step:.2f} steps/s){against_cpu}"
    )
    if args.kto:
        kto = kto_steps(load_model(settings), args.lora_steps, args.lora_batch, args.lora_length)
        print(f"nightly KTO stage: {kto}")

    # 3. Switching the served version while answering.
    print("\n3. Promoting a version while answering")
    lines = await switch_while_answering(
        generator, settings, adapter, args.switch_n, args.max_new_tokens
    )
    for line in lines:
        print(line)
    generator.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="packaged:smollm2-135m-instruct")
    parser.add_argument("--random-init", action="store_true", help="--model is a skeleton")
    parser.add_argument("--export-skeleton", type=Path, default=None, metavar="DIR")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64, 256])
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--measured", type=int, default=8, help="generate calls timed one by one")
    parser.add_argument("--lora-steps", type=int, default=20)
    parser.add_argument("--lora-batch", type=int, default=8)
    parser.add_argument("--lora-length", type=int, default=128)
    parser.add_argument("--no-kto", dest="kto", action="store_false")
    parser.add_argument("--switch-n", type=int, default=32)
    parser.add_argument("--smoke", action="store_true", help="a tiny run on any device")
    arguments = parser.parse_args()
    if arguments.export_skeleton is not None:
        export_skeleton(arguments.export_skeleton)
    else:
        asyncio.run(main(arguments))
