"""How long a run will be: steps per stage from its rows, an estimate of its seconds, progress.

Epochs decide a stage's length and ``max_steps`` only caps it::

    steps = min(max_steps, ceil(epochs * ceil(ceil(rows / batch_size) / grad_accum)))

:func:`plan_run` sizes every stage; :meth:`RunPlan.with_estimate` prices it from the
forward passes the run measured anyway (the reference scoring before training): a training
row costs :data:`PASSES` forward passes of its tokens (the policy's forward and backward,
the reference's forward, KTO's mismatched "KL" pair). :class:`Progress` turns measured step
times into "time left" as training goes, and says when a progress line is due.
Pure arithmetic: no torch, no clock of its own (callers pass the time).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

__all__ = [
    "PASSES",
    "Progress",
    "RunPlan",
    "StagePlan",
    "duration",
    "estimate_record",
    "plan_run",
    "stage_examples",
    "stage_steps",
]

PASSES: Mapping[str, float] = {"kto": 6.0, "dpo": 4.0, "sft": 3.0}
"""Forward-pass equivalents per token of a training row, by stage. A training step costs
about 3 forward passes of its tokens (forward, and a backward of about twice that); DPO and
KTO add the reference's forward pass (DPO's row counts both its chosen and rejected
tokens), KTO also scores a mismatched completion with the policy and the reference."""


def stage_steps(
    rows: int, batch_size: int, epochs: float, max_steps: int | None, grad_accum: int = 1
) -> int:
    """Optimiser steps of a stage: ``epochs`` over ``rows``, at most ``max_steps``."""
    if rows <= 0:
        return 0
    batches = math.ceil(rows / batch_size)  # the last batch of an epoch is short
    per_epoch = max(1, math.ceil(batches / grad_accum))
    steps = max(1, math.ceil(epochs * per_epoch - 1e-9))
    return min(steps, max_steps) if max_steps is not None else steps


def stage_examples(rows: int, batch_size: int, steps: int, grad_accum: int = 1) -> int:
    """Rows processed by ``steps`` optimiser steps (whole epochs, then part of one)."""
    if rows <= 0 or steps <= 0:
        return 0
    per_step = batch_size * grad_accum
    per_epoch = max(1, math.ceil(rows / per_step))
    epochs, rest = divmod(steps, per_epoch)
    return epochs * rows + min(rest * per_step, rows)


@dataclass(frozen=True, slots=True)
class StagePlan:
    """One stage: its rows, how many steps it will take, and (once priced) its seconds."""

    name: str
    rows: int
    steps: int
    epoch_steps: int
    """The steps its epochs alone would take."""
    capped: bool
    examples: int
    tokens_per_row: float = 0.0
    seconds: float | None = None


@dataclass(frozen=True, slots=True)
class RunPlan:
    """Every stage of a run, and the forward-pass speed the estimate came from."""

    stages: tuple[StagePlan, ...]
    epochs: float
    max_steps: int | None
    batch_size: int
    forward_tokens_per_s: float | None = None
    scoring_s: float | None = None
    """Seconds of one scoring pass (the run scores again after training)."""

    @property
    def rows(self) -> int:
        """Training rows over every stage."""
        return sum(s.rows for s in self.stages)

    @property
    def steps(self) -> int:
        """Optimiser steps over every stage."""
        return sum(s.steps for s in self.stages)

    @property
    def training_s(self) -> float | None:
        """Estimated seconds in the trainers, or ``None`` before :meth:`with_estimate`."""
        if any(s.seconds is None for s in self.stages):
            return None
        return sum(s.seconds or 0.0 for s in self.stages)

    @property
    def remaining_s(self) -> float | None:
        """Estimated seconds from the start of training to the end of the run (training,
        then scoring once more)."""
        training = self.training_s
        if training is None:
            return None
        return training + (self.scoring_s or 0.0)

    def with_estimate(
        self,
        tokens_per_row: Mapping[str, float],
        forward_tokens_per_s: float,
        scoring_s: float = 0.0,
    ) -> RunPlan:
        """This plan priced: each stage's examples x tokens per row x :data:`PASSES`, at
        ``forward_tokens_per_s`` (measured on forward passes of the same model)."""
        speed = max(forward_tokens_per_s, 1e-9)
        stages = tuple(
            replace(
                s,
                tokens_per_row=tokens_per_row.get(s.name, 0.0),
                seconds=s.examples * tokens_per_row.get(s.name, 0.0) * PASSES[s.name] / speed,
            )
            for s in self.stages
        )
        return replace(
            self, stages=stages, forward_tokens_per_s=forward_tokens_per_s, scoring_s=scoring_s
        )

    def describe(self) -> str:
        """One line for the operator: rows, steps per stage, and the estimate."""
        parts = " + ".join(
            f"{s.name} {s.steps}" + (f" (capped from {s.epoch_steps})" if s.capped else "")
            for s in self.stages
        )
        cap = f", at most {self.max_steps} a stage" if self.max_steps is not None else ""
        line = (
            f"{self.rows} training rows ({', '.join(f'{s.name} {s.rows}' for s in self.stages)}),"
            f" {self.steps} steps ({parts}; {self.epochs:g} epoch{'' if self.epochs == 1 else 's'}"
            f" of batch {self.batch_size}{cap})"
        )
        left = self.remaining_s
        if left is not None:
            line += ", " + self.estimate_text()
        return line

    def estimate_text(self) -> str:
        """``about 1.5 min to go (40 s training, 5.2 s a step)`` once priced, else ``""``."""
        left, training = self.remaining_s, self.training_s
        if left is None or training is None:
            return ""
        pace = f", {training / self.steps:.1f} s a step" if self.steps else ""
        return f"about {duration(left)} to go ({duration(training)} training{pace})"

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready copy with the totals."""
        return {
            **asdict(self),
            "rows": self.rows,
            "steps": self.steps,
            "training_s": self.training_s,
            "remaining_s": self.remaining_s,
        }


def plan_run(
    rows: Mapping[str, int],
    *,
    batch_size: int,
    epochs: float,
    max_steps: int | None,
    grad_accum: int = 1,
) -> RunPlan:
    """Size each stage with rows (in training order; stages without rows are left out)."""
    stages = []
    for name, count in rows.items():
        if count <= 0:
            continue
        uncapped = stage_steps(count, batch_size, epochs, None, grad_accum)
        steps = min(uncapped, max_steps) if max_steps is not None else uncapped
        stages.append(
            StagePlan(
                name=name,
                rows=count,
                steps=steps,
                epoch_steps=uncapped,
                capped=steps < uncapped,
                examples=stage_examples(count, batch_size, steps, grad_accum),
            )
        )
    return RunPlan(tuple(stages), epochs, max_steps, batch_size)


def estimate_record(plan: RunPlan, steps_run: int, actual_s: float) -> dict[str, Any]:
    """What was planned and estimated against what happened; ``error`` is estimated over
    actual training seconds, minus one (+0.25: the estimate was 25 % too long)."""
    estimated = plan.training_s
    return {
        "rows": plan.rows,
        "steps": plan.steps,
        "steps_run": steps_run,
        "estimated_s": round(estimated, 1) if estimated is not None else None,
        "actual_s": round(actual_s, 1),
        "error": round(estimated / actual_s - 1.0, 3) if estimated and actual_s > 0 else None,
    }


def duration(seconds: float) -> str:
    """``42 s``, ``3.5 min`` or ``1.2 h``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


class Progress:
    """Where training stands against the plan: steps done, measured pace, time left.

    :meth:`step` is called after every optimiser step with the current time (seconds, any
    clock) and answers the progress record; ``due`` in it says whether a line should be
    written (the first and last step of a stage, and otherwise at most every
    ``every_s`` seconds).
    """

    def __init__(self, plan: RunPlan, started: float, every_s: float = 30.0) -> None:
        self.plan = plan
        self.started = started
        self.every_s = every_s
        self._stage_started: dict[str, float] = {}
        self._last_due: float | None = None

    def start_stage(self, name: str, now: float) -> None:
        """Training of stage ``name`` begins now."""
        self._stage_started[name] = now

    def _index(self, name: str) -> int:
        return next(i for i, s in enumerate(self.plan.stages) if s.name == name)

    def time_left(self, name: str, step: int, now: float) -> float:
        """Seconds left in the run: this stage at its measured pace, the later stages at
        their estimate scaled by how far off this stage's estimate is (at this stage's pace
        per step when there is no estimate), then the scoring after training (as long as
        the one before)."""
        index = self._index(name)
        stage = self.plan.stages[index]
        spent = now - self._stage_started.get(name, self.started)
        per_step = spent / step if step > 0 else 0.0
        left = max(0, stage.steps - step) * per_step
        done_share = step / stage.steps if stage.steps else 1.0
        expected = (stage.seconds or 0.0) * done_share
        ratio = spent / expected if expected > 0 else None
        for later in self.plan.stages[index + 1 :]:
            if later.seconds is not None and ratio is not None:
                left += later.seconds * ratio
            elif step > 0:
                left += later.steps * per_step
        return left + (self.plan.scoring_s or 0.0)

    def step(self, name: str, step: int, loss: float | None, now: float) -> dict[str, Any]:
        """The progress record after ``step`` of stage ``name`` (1-based)."""
        stage = self.plan.stages[self._index(name)]
        done = sum(s.steps for s in self.plan.stages[: self._index(name)]) + step
        due = (
            step <= 1
            or step >= stage.steps
            or self._last_due is None
            or now - self._last_due >= self.every_s
        )
        if due:
            self._last_due = now
        return {
            "stage": name,
            "step": step,
            "steps": stage.steps,
            "done": done,
            "total": self.plan.steps,
            "loss": round(loss, 4) if loss is not None else None,
            "elapsed_s": round(now - self.started, 1),
            "left_s": round(self.time_left(name, step, now), 1),
            "due": due,
        }
