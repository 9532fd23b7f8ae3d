"""Benchmark of the sentiment classifier on this machine.

Prints the load time, the time to classify one message at batch 1 (p50 and p95 over chat-like
messages: held-out tweets of the training corpus, never trained on), the throughput at
batch 32, and the time of one ``/explain`` word-attribution call (p50).

Usage::

    python bench/sentiment.py                       # about a minute on 2 cores
    python bench/sentiment.py --messages 100 --explains 5 --threads 1
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from workers.sentiment import (
    TransformerSentimentClassifier,
    load_corpus,
    split_corpus,
)

EXPLAINED = (
    "The food was fine but the service was horrible",
    "Thanks a lot, that fixed it!",
    "Can you move my 3pm meeting to tomorrow morning?",
    "I'm really frustrated, the deploy failed again and nobody told me why.",
)


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def row(label: str, value: str) -> None:
    print(f"{label:<48} {value}")


def main(args: argparse.Namespace) -> None:
    started = time.perf_counter()
    classifier = TransformerSentimentClassifier.load(threads=args.threads)
    load_s = time.perf_counter() - started
    _, held_out = split_corpus(load_corpus())
    messages = [e.text for e in held_out if e.source == "tweets"][: args.messages]
    classifier.classify(messages[:4])  # warm-up

    single = []
    for i, text in enumerate(messages):
        t = time.perf_counter()
        classifier.classify([text])
        single.append(time.perf_counter() - t)
        if (i + 1) % 50 == 0:
            log(f"  classify, batch 1: {i + 1}/{len(messages)} messages")
    log("  classify, batch 32 …")
    t = time.perf_counter()
    classifier.classify(messages)
    batched = (time.perf_counter() - t) / len(messages)

    explains = []
    texts = [EXPLAINED[i % len(EXPLAINED)] for i in range(args.explains)]
    classifier.explain(texts[0])  # warm-up: builds the explainer
    for i, text in enumerate(texts):
        t = time.perf_counter()
        classifier.explain(text)
        explains.append(time.perf_counter() - t)
        log(f"  explain: {i + 1}/{len(texts)}")

    words = statistics.mean(len(m.split()) for m in messages)
    print(f"\nParley sentiment benchmark: fine-tuned MiniLM-L6, CPU, {args.threads} thread(s)")
    row("load (artefact + packaged encoder)", f"{load_s:.2f} s")
    row(f"classify, batch 1 ({len(messages)} tweets, {words:.0f} words avg)", "")
    row(
        "  p50 / p95 per message",
        f"{pct(single, 0.5) * 1e3:.1f} / {pct(single, 0.95) * 1e3:.1f} ms",
    )
    row("classify, batch 32, per message", f"{batched * 1e3:.1f} ms")
    row(f"explain (word attributions), p50 of {len(explains)}", f"{pct(explains, 0.5):.2f} s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--explains", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    main(parser.parse_args())
