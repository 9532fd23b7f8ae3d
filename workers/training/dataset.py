"""From feedback records to training rows: filter, redact, deduplicate, cap, split, write.

:func:`build_dataset` applies, in order:

1. records whose person opted out (``allows_training=False``) are dropped, before anything
   else touches them, so they can never reach a file;
2. untrusted feedback is dropped when ``untrusted_weight`` is 0;
3. prompt turns, answers and corrections are redacted (:func:`core.redaction.redact`), and
   prompts lose any prompt-guard canary (:func:`core.prompt_guard.strip_canaries`);
4. records with nothing to learn (no rating, no correction) and duplicates (the same
   redacted prompt, answer, rating and correction, whoever gave them) are dropped;
5. untrusted feedback is subsampled to ``untrusted_weight`` (seeded, deterministic);
6. each person's share is capped (most recent feedback kept);
7. prompts are split into training and held-out by a seeded hash of the prompt, so both
   answers to one prompt land on the same side and a held-out prompt stays held out.

Thumbs become KTO rows (``prompt``/``completion``/``label``); corrections become DPO pairs
(the correction ``chosen`` over the original ``rejected``) and SFT rows (``completion`` is
the correction). A correction supersedes the thumb given with it (``/feedback bad <what it
should have been>``): its record trains the corrections' stage only, which already says that
the original was worse. With SFT, ``replay_share`` of the SFT rows are ordinary chitchat
(:mod:`.replay`), so that the corrections do not spill into every exchange; the KTO rows get
the same share of chitchat as liked answers, so that a night of thumbs does not sharpen the
model away from ordinary talk either. Prompts and
completions are in the conversational form TRL takes
(lists of ``{"role", "content"}``). Every row written keeps the opaque ``person`` and the
``feedback_id`` it came from, so :func:`forget_person` can remove a person's rows later.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from core.feedback_data import FeedbackRecord
from core.prompt_guard import strip_canaries
from core.redaction import redact
from core.types import ChatTurn, Rating
from workers.training.options import TrainingOptions
from workers.training.replay import replay_count, replay_rows

__all__ = [
    "DATA_FILES",
    "DatasetCounts",
    "EvalItem",
    "FeedbackDataset",
    "build_dataset",
    "forget_person",
    "write_dataset",
]

Messages = list[dict[str, str]]

DATA_FILES = {
    "kto": "train_kto.jsonl",
    "dpo": "train_dpo.jsonl",
    "sft": "train_sft.jsonl",
    "held_out": "held_out.jsonl",
}
"""The files :func:`write_dataset` writes, by kind."""


@dataclass(slots=True)
class DatasetCounts:
    """How many records each step kept or dropped, for the run's report."""

    records: int = 0
    opted_out: int = 0
    untrusted_excluded: int = 0
    no_verdict: int = 0
    duplicates: int = 0
    untrusted_subsampled: int = 0
    capped: int = 0
    used: int = 0
    people: int = 0
    person_cap: int | None = None
    train_records: int = 0
    held_out_records: int = 0
    kto_rows: int = 0
    dpo_rows: int = 0
    sft_rows: int = 0
    replay_rows: int = 0
    held_out_liked: int = 0
    held_out_disliked: int = 0
    held_out_corrections: int = 0

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready copy."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class EvalItem:
    """One held-out completion to score: liked or disliked, and whether it is a correction."""

    prompt: tuple[dict[str, str], ...]
    completion: str
    liked: bool
    correction: bool
    group: str
    corrects: str = ""
    """For a correction: the answer it corrected (what adoption compares against)."""


@dataclass(slots=True)
class FeedbackDataset:
    """The rows to train on, the held-out items to judge with, and the counts."""

    kto: list[dict[str, Any]] = field(default_factory=list)
    dpo: list[dict[str, Any]] = field(default_factory=list)
    sft: list[dict[str, Any]] = field(default_factory=list)
    held_out: list[dict[str, Any]] = field(default_factory=list)
    eval_items: list[EvalItem] = field(default_factory=list)
    counts: DatasetCounts = field(default_factory=DatasetCounts)


@dataclass(frozen=True, slots=True)
class _Clean:
    """A record after redaction, with the key of its prompt."""

    record: FeedbackRecord
    prompt: tuple[dict[str, str], ...]
    answer: str
    correction: str | None
    group: str


def _turns(turns: Sequence[ChatTurn]) -> tuple[dict[str, str], ...]:
    # Canaries are stripped before prompts are stored; again here, for older stored prompts.
    return tuple({"role": str(t.role), "content": redact(strip_canaries(t.content))} for t in turns)


def _unit(seed: int, text: str) -> float:
    """A number in [0, 1) fixed by ``seed`` and ``text``: a stable, seeded coin."""
    digest = hashlib.sha256(f"{seed}\x00{text}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _clean(record: FeedbackRecord) -> _Clean:
    prompt = _turns(record.prompt)
    correction = redact(record.correction).strip() if record.correction else None
    group = hashlib.sha256(json.dumps(prompt, sort_keys=True).encode()).hexdigest()[:16]
    return _Clean(record, prompt, redact(record.answer).strip(), correction or None, group)


def _person_cap(sizes: Iterable[int], options: TrainingOptions) -> int | None:
    """The largest per-person count that keeps every share within the configured cap."""
    counts = list(sizes)
    cap = max(counts, default=0)
    if options.max_person_examples is not None:
        cap = min(cap, options.max_person_examples)
    if options.max_person_share is None:
        return cap if options.max_person_examples is not None else None
    # Each person keeps min(n, cap); the biggest share is then cap / total. Lower the cap
    # until it fits (it may reach 0 when too few people gave feedback to share a run).
    while cap > 0 and cap > options.max_person_share * sum(min(n, cap) for n in counts):
        cap -= 1
    return cap


def _select(
    records: Sequence[FeedbackRecord], options: TrainingOptions
) -> tuple[list[_Clean], DatasetCounts]:
    counts = DatasetCounts(records=len(records))
    seen: set[tuple[Any, ...]] = set()
    kept: list[_Clean] = []
    for record in sorted(records, key=lambda r: (r.given_at, r.feedback_id)):
        if not record.allows_training:
            counts.opted_out += 1
            continue
        if not record.trusted and options.untrusted_weight == 0.0:
            counts.untrusted_excluded += 1
            continue
        clean = _clean(record)
        if record.rating is None and (clean.correction is None or clean.correction == clean.answer):
            counts.no_verdict += 1
            continue
        if not clean.answer and clean.correction is None:
            counts.no_verdict += 1
            continue
        key = (clean.group, clean.answer, record.rating, clean.correction)
        if key in seen:
            counts.duplicates += 1
            continue
        seen.add(key)
        if not record.trusted and _unit(options.seed, f"u{record.feedback_id}") >= (
            options.untrusted_weight
        ):
            counts.untrusted_subsampled += 1
            continue
        kept.append(clean)

    by_person: dict[str, list[_Clean]] = defaultdict(list)
    for clean in kept:
        by_person[clean.record.person].append(clean)
    cap = _person_cap((len(v) for v in by_person.values()), options)
    counts.person_cap = cap
    if cap is not None:
        allowed: set[int] = set()
        for items in by_person.values():
            if cap > 0:  # the most recent ``cap`` items (they are in time order)
                allowed.update(id(c) for c in items[max(0, len(items) - cap) :])
        counts.capped = len(kept) - len(allowed)
        kept = [c for c in kept if id(c) in allowed]
    counts.used = len(kept)
    counts.people = len({c.record.person for c in kept})
    return kept, counts


def _assistant(text: str) -> Messages:
    return [{"role": "assistant", "content": text}]


def build_dataset(records: Sequence[FeedbackRecord], options: TrainingOptions) -> FeedbackDataset:
    """Turn feedback into training rows and held-out items (see the module docstring)."""
    kept, counts = _select(records, options)
    data = FeedbackDataset(counts=counts)
    for clean in kept:
        record = clean.record
        meta = {"person": record.person, "feedback_id": record.feedback_id}
        prompt = list(clean.prompt)
        held_out = _unit(options.seed, clean.group) < options.held_out_fraction
        if held_out:
            counts.held_out_records += 1
            data.held_out.append(
                {
                    **meta,
                    "prompt": prompt,
                    "answer": clean.answer,
                    "rating": str(record.rating) if record.rating else None,
                    "correction": clean.correction,
                }
            )
            if record.rating is not None and clean.answer:
                liked = record.rating is Rating.GOOD
                data.eval_items.append(
                    EvalItem(clean.prompt, clean.answer, liked, False, clean.group)
                )
            if clean.correction is not None and clean.correction != clean.answer:
                data.eval_items.append(
                    EvalItem(clean.prompt, clean.correction, True, True, clean.group, clean.answer)
                )
                if record.rating is None and clean.answer:
                    data.eval_items.append(
                        EvalItem(clean.prompt, clean.answer, False, False, clean.group)
                    )
            continue
        counts.train_records += 1
        corrected = clean.correction is not None and clean.correction != clean.answer
        if record.rating is not None and clean.answer and not corrected:
            data.kto.append(
                {
                    **meta,
                    "prompt": prompt,
                    "completion": _assistant(clean.answer),
                    "label": record.rating is Rating.GOOD,
                }
            )
        if clean.correction is not None and clean.correction != clean.answer:
            data.sft.append({**meta, "prompt": prompt, "completion": _assistant(clean.correction)})
            if clean.answer:
                data.dpo.append(
                    {
                        **meta,
                        "prompt": prompt,
                        "chosen": _assistant(clean.correction),
                        "rejected": _assistant(clean.answer),
                    }
                )
    if options.correction_method == "sft":
        extra = replay_rows(_replay_count(len(data.sft), options), options)
        counts.replay_rows = len(extra)
        data.sft += extra
    if data.kto:
        # The thumbs' stage rehearses too: plain exchanges as liked answers (KTO's 👍).
        extra = replay_rows(_replay_count(len(data.kto), options), options)
        counts.replay_rows += len(extra)
        data.kto += [{**row, "label": True} for row in extra]
    counts.kto_rows, counts.dpo_rows, counts.sft_rows = len(data.kto), len(data.dpo), len(data.sft)
    counts.held_out_liked = sum(1 for i in data.eval_items if i.liked)
    counts.held_out_disliked = sum(1 for i in data.eval_items if not i.liked)
    counts.held_out_corrections = sum(1 for i in data.eval_items if i.correction)
    # Rows are shuffled (seeded) so that a batch mixes people, prompts and labels.
    for rows in (data.kto, data.dpo, data.sft):
        random.Random(options.seed).shuffle(rows)
    return data


def _replay_count(rows: int, options: TrainingOptions) -> int:
    return replay_count(rows, options.replay_share, options.replay_min_rows)


def _write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> int:
    """Write rows atomically (a temporary file renamed into place); return how many."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    written = 0
    with partial.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            written += 1
    partial.replace(path)
    return written


def write_dataset(data: FeedbackDataset, folder: Path) -> dict[str, Path]:
    """Write the training and held-out rows as JSONL under ``folder``; return the paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for kind, name in DATA_FILES.items():
        rows: list[dict[str, Any]] = getattr(data, kind)
        paths[kind] = folder / name
        _write_jsonl(paths[kind], rows)
    return paths


def forget_person(training_dir: Path, person: str) -> int:
    """Delete ``person``'s rows from every dataset file under ``training_dir``; return how many.

    Every ``*.jsonl`` file below the folder is read and, when it holds any of the person's
    rows, rewritten atomically without them. A missing folder holds nothing to forget.
    """
    if not training_dir.is_dir():
        return 0
    removed = 0
    for path in sorted(training_dir.rglob("*.jsonl")):
        kept: list[dict[str, Any]] = []
        dropped = 0
        with path.open(encoding="utf-8") as handle:
            for line in handle:
                if not line.strip():
                    continue
                row = json.loads(line)
                if isinstance(row, dict) and row.get("person") == person:
                    dropped += 1
                else:
                    kept.append(row)
        if dropped:
            _write_jsonl(path, kept)
            removed += dropped
    return removed
