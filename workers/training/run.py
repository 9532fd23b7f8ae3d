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
from workers.training.dataset import DatasetCounts, build_dataset, write_dataset
from workers.training.evaluate import Figures, Scores, figures, score_model
from workers.training.fitting import fit_dataset
from workers.training.gate import GateDecision, decide
from workers.training.options import TrainingOptions
from workers.training.regression import regression_set
from workers.training.report import write_json, write_picture
from workers.training.train import TrainingLog, prepare_model, train_adapter

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


def run_fine_tune(
    records: list[FeedbackRecord],
    options: TrainingOptions,
    *,
    base: LoadedModel,
    out_dir: Path,
    parent_adapter: Path | None = None,
    window: tuple[datetime | None, datetime | None] = (None, None),
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

        reference = score(model, adapter=False)
        # A fresh LoRA starts as the identity (B = 0), so "before" is the reference itself.
        policy_before = score(model, adapter=True) if parent_adapter is not None else reference
        before = _with_adoption(
            figures(data.eval_items, policy_before, reference),
            adoption(model, adapter=parent_adapter is not None),
        )
        training = train_adapter(
            model, base.tokenizer, data, options, out_dir / "work", base.device
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
    )
