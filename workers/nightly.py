"""The nightly run: new feedback in, a judged adapter in the registry, maybe served.

:func:`run_nightly` reads the feedback given since the last run that trained, skips (and
says why) when there is too little, otherwise trains an adapter on top of the one being
served (:func:`workers.training.run_fine_tune`), records it in the registry with its
figures, and promotes it when the gate passed (and ``PARLEY_FINE_TUNE_AUTO_PROMOTE`` is on).
Every run, skipped ones included, adds a line to ``<adapters>/runs.jsonl`` when it ends. A
run that trains also writes, before training, an ``"event": "plan"`` line (rows, steps per
stage, the estimated seconds) and, as it trains, ``"event": "progress"`` lines (stage, step
i/n, loss, elapsed, time left; at most one every 30 s, and each stage's first and last
step): lines with an ``event`` are a run in flight, not a run. The final line of a run
that trained has its rows, steps, and estimated against actual training seconds.

The Celery task ``parley.fine_tune`` (beat, nightly, on the ``train`` queue) and
``python -m workers.fine_tune run`` (cron, in the embedded mode) both call it.
"""

from __future__ import annotations

import fcntl
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from config.settings import Settings, options_for
from core.feedback_data import FeedbackSource
from core.privacy import Person
from core.registry import AdapterRegistry, AdapterStatus, AdapterVersion, new_adapter_id
from core.types import utcnow
from workers.vllm_lora import promotion_blocker

if TYPE_CHECKING:
    from workers.model import LoadedModel
    from workers.training import RunOutcome, TrainingOptions

__all__ = [
    "RUNS_FILE",
    "NightlyOutcome",
    "TrainingFilesForgetter",
    "run_nightly",
]

log = logging.getLogger(__name__)

RUNS_FILE = "runs.jsonl"
"""One JSON line per nightly run, in the adapters folder."""

NightlyStatus = Literal["skipped", "promoted", "candidate", "rejected", "failed"]


@dataclass(frozen=True, slots=True)
class NightlyOutcome:
    """What a nightly run did."""

    status: NightlyStatus
    reason: str
    since: datetime | None
    until: datetime
    version_id: str | None = None
    folder: Path | None = None
    figures: dict[str, Any] = field(default_factory=dict)
    timing: dict[str, Any] = field(default_factory=dict)
    """Rows, steps, estimated and actual training seconds, whole run seconds."""

    def summary(self) -> str:
        """One paragraph for the operator."""
        window = f"{self.since:%Y-%m-%d %H:%M} to " if self.since else "all until "
        until = f"{self.until:%Y-%m-%d %H:%M}"
        head = f"Fine-tuning {self.status}: {self.reason} (feedback {window}{until} UTC)."
        if self.version_id is None:
            return head
        before = self.figures.get("before", {}).get("preference_accuracy")
        after = self.figures.get("after", {}).get("preference_accuracy")
        accuracy = (
            f" Held-out preference accuracy {before:.2f} → {after:.2f}."
            if isinstance(before, float) and isinstance(after, float)
            else ""
        )
        return f"{head} Version {self.version_id} in {self.folder}.{accuracy}{self._timing()}"

    def _timing(self) -> str:
        from workers.training.sizing import duration

        t = self.timing
        if not t.get("steps_run"):
            return ""
        estimated = t.get("estimated_s")
        guess = f", estimated {duration(estimated)}" if estimated is not None else ""
        return (
            f" Trained {t['rows']} rows in {t['steps_run']} steps: {duration(t['actual_s'])}"
            f"{guess}; the whole run {duration(t['seconds'])}."
        )


@dataclass(frozen=True, slots=True)
class TrainingFilesForgetter:
    """``/forget`` for training data: the person's rows in every run's data files.

    (An adapter already trained keeps what it learned; the data it came from goes.)
    """

    feedback: FeedbackSource
    folder: Path

    def forget(self, person: Person) -> int:
        from workers.training import forget_person

        keys = {self.feedback.person_key(user) for user in person.identities}
        return sum(forget_person(self.folder, key) for key in keys if key is not None)


def _last_trained_until(runs: Path) -> datetime | None:
    """Where the window of the last run that trained ended; skipped and failed runs take
    no feedback, and plan and progress lines (with an ``event``) are no runs."""
    if not runs.is_file():
        return None
    until = None
    for line in runs.read_text(encoding="utf-8").splitlines():
        run = json.loads(line)
        if "event" in run:
            continue
        if run.get("status") not in ("skipped", "failed") and run.get("until"):
            until = datetime.fromisoformat(run["until"])
    return until


def _record(runs: Path, outcome: NightlyOutcome) -> None:
    line = {
        "at": utcnow().isoformat(),
        "status": outcome.status,
        "reason": outcome.reason,
        "since": outcome.since.isoformat() if outcome.since else None,
        "until": outcome.until.isoformat(),
        "version": outcome.version_id,
        "folder": str(outcome.folder) if outcome.folder else None,
        **outcome.timing,
    }
    _append(runs, line)


def _append(runs: Path, line: dict[str, Any]) -> None:
    runs.parent.mkdir(parents=True, exist_ok=True)
    with runs.open("a", encoding="utf-8") as out:
        out.write(json.dumps(line) + "\n")


def _rounded(seconds: float | None) -> float | None:
    return round(seconds, 1) if seconds is not None else None


def _in_flight(runs: Path, version_id: str) -> Callable[[dict[str, Any]], None]:
    """Writes a run's plan and progress records into ``runs`` as ``event`` lines, small."""

    def write(record: dict[str, Any]) -> None:
        line: dict[str, Any] = {"at": utcnow().isoformat(), "event": record["event"]}
        line["version"] = version_id
        if record["event"] == "plan":
            line |= {
                "rows": record["rows"],
                "steps": record["steps"],
                **{k: record[k] for k in ("epochs", "max_steps", "batch_size")},
                "stages": [
                    {k: s[k] for k in ("name", "rows", "steps", "epoch_steps")}
                    | {"estimated_s": _rounded(s["seconds"])}
                    for s in record["stages"]
                ],
                "estimated_s": _rounded(record["training_s"]),
                "left_s": _rounded(record["remaining_s"]),
            }
        else:
            line |= {k: v for k, v in record.items() if k != "event"}
        _append(runs, line)

    return write


def _timing(result: RunOutcome) -> dict[str, Any]:
    from workers.training.sizing import estimate_record

    if result.training is None or result.plan is None:
        return {}
    steps_run = sum(s.steps for s in result.training.stages)
    record = estimate_record(result.plan, steps_run, result.training.seconds)
    return {**record, "seconds": round(result.seconds, 1)}


def run_nightly(
    settings: Settings,
    feedback: FeedbackSource,
    registry: AdapterRegistry,
    *,
    now: datetime | None = None,
    options: TrainingOptions | None = None,
    base: LoadedModel | None = None,
) -> NightlyOutcome:
    """One nightly run (module docstring). ``options`` and ``base`` (a loaded model) are
    for tests and benchmarks; by default they come from the settings. One run at a time per
    adapters folder: a second one started meanwhile skips."""
    until = now or utcnow()
    folder = settings.versions_path
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / ".run.lock").open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return NightlyOutcome("skipped", "another run is in progress", None, until)
        return _run(settings, feedback, registry, until, options, base)


def _run(
    settings: Settings,
    feedback: FeedbackSource,
    registry: AdapterRegistry,
    until: datetime,
    options: TrainingOptions | None,
    base: LoadedModel | None,
) -> NightlyOutcome:
    from workers.model import load_model
    from workers.training import TrainingOptions, run_fine_tune

    folder = settings.versions_path
    runs = folder / RUNS_FILE
    since = _last_trained_until(runs)
    options = options or options_for(TrainingOptions, settings.fine_tuning)
    records = feedback.feedback_records(since=since, until=until)
    log.info("Nightly fine-tuning: %d feedback items since %s", len(records), since or "the start")
    if len(records) < options.min_new_feedback:
        outcome = NightlyOutcome(
            "skipped",
            f"{len(records)} new feedback items, fewer than the {options.min_new_feedback} "
            "a run needs (PARLEY_FINE_TUNE_MIN_FEEDBACK)",
            since,
            until,
        )
        _record(runs, outcome)
        log.info("%s", outcome.summary())
        return outcome

    serving = registry.serving()
    version_id = new_adapter_id(until)
    run_dir = folder / version_id
    try:
        model = base if base is not None else load_model(settings)
        if model.lora_slot is not None:
            # Its weights may hold a merged adapter and PEFT layers: not a base to train from.
            raise ValueError("train on a model copy of its own, not on one that serves answers")
        result = run_fine_tune(
            records,
            options,
            base=model,
            out_dir=run_dir,
            parent_adapter=Path(serving.path) if serving is not None else None,
            window=(since, until),
            on_progress=_in_flight(runs, version_id),
        )
    except Exception as exc:
        # The log (and Celery) get the trace; the run log says it failed. The window stays
        # open: the next run takes this feedback again.
        _record(runs, NightlyOutcome("failed", f"{type(exc).__name__}: {exc}", since, until))
        raise
    if result.status == "skipped":
        outcome = NightlyOutcome("skipped", result.reason, since, until, folder=run_dir)
        _record(runs, outcome)
        log.info("%s", outcome.summary())
        return outcome

    figures = {
        "before": result.before.as_dict() if result.before else {},
        "after": result.after.as_dict() if result.after else {},
        "counts": result.counts.as_dict(),
        "report": str(result.report_png) if result.report_png else None,
    }
    passed = result.status == "passed"
    version = AdapterVersion(
        id=version_id,
        base_model=model.source.version,
        path=str(result.adapter_path),
        parent=serving.id if serving is not None else None,
        status=AdapterStatus.CANDIDATE if passed else AdapterStatus.REJECTED,
        reason=result.reason,
        window_since=since,
        window_until=until,
        figures=figures,
    )
    # A remote engine may be unable to serve what was trained: /admin versions says why.
    blocker = promotion_blocker(settings, version) if passed else None
    if blocker is not None:
        version = replace(version, reason=f"{result.reason}; cannot be served: {blocker}")
    registry.add(version)
    status: NightlyStatus = "rejected"
    if passed and blocker is None and settings.fine_tuning.auto_promote:
        registry.promote(version_id, f"passed the gate: {result.reason}")
        status = "promoted"
    elif passed:
        status = "candidate"
    outcome = NightlyOutcome(
        status, version.reason, since, until, version_id, run_dir, figures, _timing(result)
    )
    _record(runs, outcome)
    log.info("%s", outcome.summary())
    return outcome
