"""One fine-tuning run, end to end: data, adapter, figures, decision, report.

::

    from workers.model import load_model
    from workers.training import TrainingOptions, run_fine_tune

    base = load_model(settings)
    outcome = run_fine_tune(
        records, TrainingOptions(), base=base, out_dir=Path("data/training/2024-06-01"),
        parent_adapter=current_adapter_folder_or_None, window=(since, until),
    )
    outcome.status   # "passed" (a candidate to promote), "rejected" (kept, not served), "skipped"

The folder receives ``data/`` (the JSONL training and held-out rows, each with its
``person``), ``adapter/`` (the LoRA adapter and ``parley_run.json``: options, window,
counts, figures, decision), ``report.json`` and ``report.png``. A skipped run writes only
``report.json`` and, if it got that far, nothing under ``data/``: too little feedback
writes no file at all.

Before training the run logs its plan (rows, steps per stage, from :mod:`.sizing`) and,
once the reference scoring has measured the model's forward speed, how long it should
take; ``on_progress`` (optional) receives that as an ``{"event": "plan", ...}`` record,
then ``{"event": "progress", ...}`` records as training goes. The report and
``parley_run.json`` keep the plan and the estimate beside the seconds it really took.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import shutil
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from core.feedback_data import FeedbackRecord
from workers.model import LoadedModel
from workers.training.adoption import Adoption, measure_adoption
from workers.training.dataset import DatasetCounts, FeedbackDataset, build_dataset, write_dataset
from workers.training.evaluate import Figures, Scores, encode, figures, score_model
from workers.training.fitting import fit_dataset
from workers.training.gate import GateDecision, decide
from workers.training.options import TrainingOptions
from workers.training.regression import RegressionItem, regression_set
from workers.training.report import write_json, write_picture
from workers.training.sizing import RunPlan, duration, estimate_record
from workers.training.train import (
    ProgressReport,
    TrainingLog,
    plan_training,
    prepare_model,
    train_adapter,
    training_stages,
)

__all__ = ["RUN_FILE", "RunOutcome", "RunStatus", "run_fine_tune"]

log = logging.getLogger(__name__)

RUN_FILE = "parley_run.json"
"""The file beside every adapter with the options, window, counts, figures and decision."""

RunStatus = Literal["passed", "rejected", "skipped"]


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """What one run did: its status and reason, the figures, and where everything is."""

    status: RunStatus
    reason: str
    counts: DatasetCounts
    before: Figures | None = None
    after: Figures | None = None
    gate: GateDecision | None = None
    training: TrainingLog | None = None
    adapter_path: Path | None = None
    data_files: dict[str, Path] | None = None
    report_json: Path | None = None
    report_png: Path | None = None
    seconds: float = 0.0
    plan: RunPlan | None = None


def _window(window: tuple[datetime | None, datetime | None]) -> dict[str, str | None]:
    since, until = window
    return {
        "since": since.isoformat() if since else None,
        "until": until.isoformat() if until else None,
    }


def _skip_reason(counts: DatasetCounts, options: TrainingOptions) -> str | None:
    if counts.used < options.min_new_feedback:
        dropped = ", ".join(
            f"{n} {what}"
            for n, what in (
                (counts.opted_out, "opted out"),
                (counts.untrusted_excluded, "untrusted excluded"),
                (counts.untrusted_subsampled, "untrusted left out by weight"),
                (counts.no_verdict, "without a verdict"),
                (counts.duplicates, "duplicates"),
                (counts.capped, "over a person's cap"),
            )
            if n
        )
        return (
            f"not enough new feedback: {counts.used} usable of {counts.records} records "
            f"(need {options.min_new_feedback})" + (f"; dropped {dropped}" if dropped else "")
        )
    if not (counts.kto_rows or counts.dpo_rows or counts.sft_rows):
        return "no training rows: every usable item fell into the held-out slice"
    return None


def _with_adoption(figures: Figures, adoption: Adoption) -> Figures:
    return replace(figures, adoption=adoption.rate, adoption_items=adoption.items)


def _text(message: Any) -> str:
    return str(message[0]["content"]) if isinstance(message, list) else str(message)


def _tokens_per_row(
    tokenizer: Any, data: FeedbackDataset, options: TrainingOptions, sample: int = 64
) -> dict[str, float]:
    """Mean tokens of a training row per stage (a DPO row: chosen plus rejected), as the
    trainers will see them (chat template, ``max_length``), from up to ``sample`` rows."""
    means = {}
    for name, rows, _ in training_stages(data, options):
        if not rows:
            continue
        picked = rows[:: max(1, len(rows) // sample)][:sample]
        answers = ("chosen", "rejected") if name == "dpo" else ("completion",)
        total = sum(
            len(encode(tokenizer, row["prompt"], _text(row[a]), options.max_length)[0])
            for row in picked
            for a in answers
        )
        means[name] = total / len(picked)
    return means


def _scored_tokens(
    tokenizer: Any, items: list[Any], regression: list[RegressionItem], max_length: int
) -> int:
    held = sum(len(encode(tokenizer, i.prompt, i.completion, max_length)[0]) for i in items)
    chat = sum(len(encode(tokenizer, r.prompt, r.reply, max_length)[0]) for r in regression)
    return held + chat


def _as_progress(on_progress: ProgressReport | None) -> ProgressReport | None:
    if on_progress is None:
        return None
    report = on_progress
    return lambda line: report({"event": "progress", **line})


def run_fine_tune(
    records: list[FeedbackRecord],
    options: TrainingOptions,
    *,
    base: LoadedModel,
    out_dir: Path,
    parent_adapter: Path | None = None,
    window: tuple[datetime | None, datetime | None] = (None, None),
    on_progress: ProgressReport | None = None,
) -> RunOutcome:
    """Build the data, train an adapter, judge it and write the report (module docstring).

    ``base`` is not modified: training works on a deep copy (see :mod:`.train`). With
    ``parent_adapter`` the run continues that adapter (its own LoRA rank and modules; the
    LoRA fields of ``options`` then do not apply) and "before" is the parent's figures;
    without it a fresh LoRA starts from the base model. The reference of every reward is
    the base model without any adapter, so figures of successive runs compare.
    CPU threads are whatever ``load_model`` set (``PARLEY_CPU_THREADS``).
    """
    started = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {
        "created_at": datetime.now(UTC).isoformat(),
        "base_model": base.version,
        "parent_adapter": str(parent_adapter) if parent_adapter else None,
        "window": _window(window),
        "options": options.as_dict(),
    }
    data = build_dataset(records, options)
    reason = _skip_reason(data.counts, options)
    if reason is not None:
        log.info("Fine-tuning skipped: %s", reason)
        report = write_json(
            out_dir / "report.json",
            {**summary, "status": "skipped", "reason": reason, "counts": data.counts.as_dict()},
        )
        return RunOutcome(
            "skipped",
            reason,
            data.counts,
            report_json=report,
            seconds=time.perf_counter() - started,
        )
    fitted = fit_dataset(data, base.tokenizer, options.max_length)
    log.info(
        "Prompts shortened to fit %d tokens (oldest turns dropped): %d", options.max_length, fitted
    )
    files = write_dataset(data, out_dir / "data")
    log.info("Dataset: %s", data.counts.as_dict())
    plan = plan_training(data, options)
    log.info("Plan: %s", plan.describe())

    regression = regression_set(options.regression_size, options.regression_seed)
    model = prepare_model(base.model, options, parent_adapter)
    try:
        log.info(
            "Scoring %d held-out and %d regression items", len(data.eval_items), len(regression)
        )

        def score(peft_model: Any, *, adapter: bool) -> Scores:
            return score_model(
                peft_model,
                base.tokenizer,
                data.eval_items,
                regression,
                max_length=options.max_length,
                batch_size=options.eval_batch_size,
                adapter=adapter,
            )

        def adoption(peft_model: Any, *, adapter: bool) -> Adoption:
            switch = contextlib.nullcontext() if adapter else peft_model.disable_adapter()
            with switch:
                return measure_adoption(
                    peft_model,
                    base.tokenizer,
                    data.eval_items,
                    max_new_tokens=options.adoption_max_new_tokens,
                    batch_size=options.eval_batch_size,
                )

        scoring = time.perf_counter()
        reference = score(model, adapter=False)
        scoring_s = time.perf_counter() - scoring
        # A fresh LoRA starts as the identity (B = 0), so "before" is the reference itself.
        policy_before = score(model, adapter=True) if parent_adapter is not None else reference
        before = _with_adoption(
            figures(data.eval_items, policy_before, reference),
            adoption(model, adapter=parent_adapter is not None),
        )
        scored = _scored_tokens(base.tokenizer, data.eval_items, regression, options.max_length)
        plan = plan.with_estimate(
            _tokens_per_row(base.tokenizer, data, options),
            scored / max(scoring_s, 1e-6),
            scoring_s,
        )
        log.info(
            "Estimate: %s (forward passes at %.0f tokens/s; %s since the run began)",
            plan.estimate_text(),
            plan.forward_tokens_per_s or 0.0,
            duration(time.perf_counter() - started),
        )
        if on_progress is not None:
            on_progress({"event": "plan", **plan.as_dict()})
        training = train_adapter(
            model,
            base.tokenizer,
            data,
            options,
            out_dir / "work",
            base.device,
            plan=plan,
            report=_as_progress(on_progress),
        )
        policy_after = score(model, adapter=True)
        after = _with_adoption(
            figures(data.eval_items, policy_after, reference), adoption(model, adapter=True)
        )
        gate = decide(before, after, options)
        status: RunStatus = "passed" if gate.passed else "rejected"
        adapter_path = out_dir / "adapter"
        model.save_pretrained(str(adapter_path))
    finally:
        del model
        gc.collect()
        shutil.rmtree(out_dir / "work", ignore_errors=True)  # the trainers' scratch folders

    record = {
        **summary,
        "status": status,
        "reason": gate.reason,
        "checks": gate.checks,
        "counts": data.counts.as_dict(),
        "before": before.as_dict(),
        "after": after.as_dict(),
        "training": training.as_dict(),
        "plan": plan.as_dict(),
        "estimate": estimate_record(plan, sum(s.steps for s in training.stages), training.seconds),
        "regression_keys": [item.key for item in regression],
        "data_files": {kind: str(path) for kind, path in files.items()},
    }
    write_json(adapter_path / RUN_FILE, record)
    picture = write_picture(
        out_dir / "report.png",
        training=training,
        before=before,
        after=after,
        status=status,
        reason=gate.reason,
    )
    seconds = time.perf_counter() - started
    report = write_json(out_dir / "report.json", {**record, "seconds": seconds})
    estimate = record["estimate"]
    log.info(
        "Trained %d steps in %s (estimated %s); whole run %s",
        estimate["steps_run"],
        duration(training.seconds),
        duration(plan.training_s or 0.0),
        duration(seconds),
    )
    log.info("Fine-tuning %s: %s", status, gate.reason)
    return RunOutcome(
        status,
        gate.reason,
        data.counts,
        before=before,
        after=after,
        gate=gate,
        training=training,
        adapter_path=adapter_path,
        data_files=files,
        report_json=report,
        report_png=picture,
        seconds=seconds,
        plan=plan,
    )
