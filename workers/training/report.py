"""A run's report: the figures before and after as JSON, and a picture of the run.

``report.json`` holds the status, the reason, the gate's checks, the figures before and
after, the dataset counts, the training log (loss per step, throughput), the options and the
data window. ``report.png`` (matplotlib, Agg backend) shows the training loss per step of
each stage beside the main figures before and after, titled with the gate's decision.
"""

from __future__ import annotations

import json
import math
import os
import textwrap
from pathlib import Path
from typing import Any

from workers.training.evaluate import Figures
from workers.training.train import TrainingLog

__all__ = ["write_json", "write_picture"]


def write_json(path: Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` as indented JSON, atomically."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    partial.write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")
    partial.replace(path)
    return path


_SHOWN = (
    ("preference_accuracy", "preference\naccuracy"),
    ("pair_accuracy", "pair\naccuracy"),
    ("correction_loss", "correction\nloss"),
    ("regression_nll", "regression\nNLL"),
)


def write_picture(
    path: Path,
    *,
    training: TrainingLog | None,
    before: Figures | None,
    after: Figures | None,
    status: str,
    reason: str,
) -> Path:
    """Draw the loss curves and the before/after figures into a PNG at ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (curves, bars) = plt.subplots(1, 2, figsize=(11, 5))
    offset = 0
    for stage in training.stages if training else []:
        if stage.losses:
            steps = [offset + s for s, _ in stage.losses]
            curves.plot(steps, [v for _, v in stage.losses], marker=".", label=stage.name)
            offset = steps[-1]
    curves.set_title("Training loss per step")
    curves.set_xlabel("step (stages run one after another)")
    curves.set_ylabel("loss")
    if offset:
        curves.legend()
    else:
        curves.text(0.5, 0.5, "no training", ha="center", va="center", transform=curves.transAxes)

    labels, values_before, values_after = [], [], []
    for name, label in _SHOWN:
        old = getattr(before, name, None) if before else None
        new = getattr(after, name, None) if after else None
        if old is None and new is None:
            continue
        labels.append(label)
        values_before.append(math.nan if old is None else old)
        values_after.append(math.nan if new is None else new)
    positions = list(range(len(labels)))
    for shift, values, label in ((-0.2, values_before, "before"), (0.2, values_after, "after")):
        drawn = bars.bar([p + shift for p in positions], values, width=0.4, label=label)
        bars.bar_label(drawn, labels=[f"{v:.3g}" for v in values], fontsize=7)
    bars.set_xticks(positions, labels)
    bars.set_title("Held-out figures")
    if labels:
        bars.legend()
    colour = {"passed": "darkgreen", "rejected": "darkred"}.get(status, "dimgray")
    # One line per check of the gate (its reason joins them with "; ").
    wrapped = "\n".join(
        textwrap.fill(part, width=150, max_lines=2, placeholder=" ...")
        for part in reason.split("; ")[:5]
    )
    figure.suptitle(f"Gate: {status}\n{wrapped}", color=colour, fontsize=8)
    lines = wrapped.count("\n") + 2
    figure.tight_layout(rect=(0, 0, 1, 1 - 0.026 * lines))
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
