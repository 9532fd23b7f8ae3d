"""Benchmark of one fine-tuning run on this machine: throughput, wall time, peak memory.

Builds 1,000 synthetic feedback items (500 prompts, each with a liked answer that ends
with a sign-off and a disliked one without it, from 50 people), then runs
:func:`workers.training.run_fine_tune` once on the packaged model: dataset build, the
reference and "before" scoring of the held-out slice and the regression set, a KTO stage of
``--max-steps`` steps (bounded: a full epoch of 1,000 items at batch 8 would be ~100 steps),
the "after" scoring, the gate and the report. Prints the training throughput (examples and
tokens per second), the wall time of each part and of the whole run, and the process's peak
resident memory. Progress goes to stderr (log lines with step counts, tqdm bars).

Baseline in the same process: the same number of steps of a plain PyTorch loop (AdamW,
causal-LM loss on the liked answers) over the same LoRA configuration, batch size and
sequence length, with no TRL. Its examples per second against the KTO stage's say what
preference training costs over plain supervised steps (KTO also scores a mismatched "KL"
completion and the reference model for every example).

Usage::

    PARLEY_MODEL_CACHE_DIR=.cache/models python bench/fine_tune.py   # about 5 minutes, 2 cores
    python bench/fine_tune.py --items 200 --max-steps 5 --targets q_proj v_proj
"""

from __future__ import annotations

import argparse
import logging
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from config import load_settings
from workers.model import load_model
from workers.training import TrainingOptions, run_fine_tune
from workers.training.synthetic import signed_feedback


def row(label: str, value: str) -> None:
    print(f"{label:<48} {value}")


def plain_steps(base: Any, records: list[Any], options: TrainingOptions, steps: int) -> float:
    """Seconds for ``steps`` plain LoRA steps on the liked answers (the baseline)."""
    import torch

    from workers.training import prepare_model

    model = prepare_model(base.model, options, None)
    model.train()
    optimiser = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=options.learning_rate
    )
    tokenizer = base.tokenizer
    liked = [r for r in records if r.rating is not None and r.rating.value == "good"]
    texts = [
        tokenizer.apply_chat_template(
            [*(t.as_dict() for t in r.prompt), {"role": "assistant", "content": r.answer}],
            tokenize=False,
        )
        for r in liked
    ]
    started = time.perf_counter()
    for step in range(steps):
        batch = texts[step * options.batch_size : (step + 1) * options.batch_size]
        encoded = tokenizer(
            batch,
            return_tensors="pt",
            padding=True,
            truncation=True,
            max_length=options.max_length,
        ).to(base.device)
        labels = encoded.input_ids.masked_fill(encoded.attention_mask == 0, -100)
        loss = model(**encoded, labels=labels).loss
        loss.backward()
        optimiser.step()
        optimiser.zero_grad()
        logging.info("plain step %d/%d loss %.4f", step + 1, steps, loss.item())
    return time.perf_counter() - started


def main(args: argparse.Namespace) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    for noisy in ("httpx", "datasets", "transformers", "trl"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    settings = load_settings(cpu_threads=args.threads)
    started = time.perf_counter()
    base = load_model(settings)
    load_s = time.perf_counter() - started
    records = signed_feedback(args.items // 2, people=args.people)
    options = TrainingOptions(
        lora_targets=tuple(args.targets),
        max_steps=args.max_steps,
        batch_size=args.batch_size,
        max_length=args.max_length,
        learning_rate=args.learning_rate,
        min_new_feedback=10,
        untrusted_weight=1.0,
    )
    with tempfile.TemporaryDirectory(prefix="parley-bench-") as folder:
        outcome = run_fine_tune(records, options, base=base, out_dir=Path(folder))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    training = outcome.training
    if training is None or outcome.before is None or outcome.after is None:
        raise SystemExit(f"The run did not train: {outcome.status}: {outcome.reason}")
    summary = training.as_dict()
    steps = training.stages[0].steps

    print(
        f"\nParley fine-tuning benchmark: {base.version} on {base.device}, {args.threads} thread(s)"
    )
    row("model load", f"{load_s:.1f} s")
    row(
        "feedback items / used / trained rows / held-out",
        (
            f"{len(records)} / {outcome.counts.used} / {outcome.counts.kto_rows} / "
            f"{outcome.counts.held_out_records}"
        ),
    )
    row(
        f"LoRA r={options.lora_r} on {','.join(options.lora_targets)}, batch {args.batch_size}",
        f"{steps} steps",
    )
    row(
        "training time",
        f"{training.seconds:.1f} s ({training.seconds / max(1, steps):.1f} s/step)",
    )
    row(
        "training throughput",
        (
            f"{summary['examples_per_second']:.2f} examples/s, "
            f"{summary['tokens_per_second']:.0f} tokens/s"
        ),
    )
    plain_s = plain_steps(base, records, options, steps)
    plain_rate = steps * args.batch_size / plain_s
    row(
        "baseline: plain PyTorch LoRA steps (same run)",
        (
            f"{plain_s:.1f} s, {plain_rate:.2f} examples/s; KTO / plain "
            f"{summary['examples_per_second'] / plain_rate:.2f}"
        ),
    )
    row("scoring + gate + report (rest of the run)", f"{outcome.seconds - training.seconds:.1f} s")
    row("wall time of the run", f"{outcome.seconds:.1f} s")
    row("peak RSS", f"{peak_mb:.0f} MB")
    row(
        "preference accuracy before -> after",
        (f"{outcome.before.preference_accuracy:.3f} -> {outcome.after.preference_accuracy:.3f}"),
    )
    row(
        "regression NLL before -> after",
        (f"{outcome.before.regression_nll:.3f} -> {outcome.after.regression_nll:.3f}"),
    )
    row("gate", outcome.status)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--people", type=int, default=50)
    parser.add_argument("--max-steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--targets", nargs="+", default=["q_proj", "k_proj", "v_proj", "o_proj"])
    parser.add_argument("--threads", type=int, default=2)
    main(parser.parse_args())
