"""Benchmark: does the nightly run learn what a team teaches it? A learning curve.

Everything goes the way a team meets Parley (the embedded deployment: SQLite, the packaged
model and its profile-following version served, greedy answers):

1. ``--people`` teammates on Slack each ask ``--per-person`` everyday questions through the
   conversation service and correct every answer the same way, ``/feedback bad Ahoy, matey!
   <the answer>`` (:mod:`workers.training.team_corrections`): stored as people's feedback is.
2. For each point of ``--curve`` (10, 20, 40 and 80 corrections by default), the nightly run
   (:func:`workers.nightly.run_nightly`, the settings' training options) trains on the first
   N corrections, in a versions folder of its own, from the served version; the version it
   promotes is then served (the version watcher's check) and 20 new people ask the 20
   held-out questions (:data:`~workers.training.team_corrections.NEW`, never corrected).
   Adoption: the share of those answers that open with the greeting. The version served
   before is restored after each point.
3. Thumbs only (``--thumbs``): other teammates ask and press 👎 on answers that open with
   filler ("Sure thing!", "Good question.") and 👍 on the rest; the next night (in the last
   point's folder, so it reads only this feedback) trains on them, and the share of new
   answers that open with filler should fall. When the gate refuses that version, the share
   is also measured with it served (once, then the version before is served again).

Printed: adoption before and after each point, the gate's verdict, the chitchat drift and
each run's wall time, against the targets (80 corrections: adoption >= 0.6 from 0, drift
within the gate, the run under 15 minutes). The curve is drawn to ``--chart`` (PNG).

Usage::

    PARLEY_MODEL_CACHE_DIR=.cache/models python bench/learning.py  # ~40 min on 2 cores
    python bench/learning.py --curve 10 40 --no-thumbs --chart /tmp/curve.png
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import tempfile
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from config import load_settings
from config.parts import open_registry
from config.settings import Settings, options_for
from config.wiring import Parley, build_embedded
from core.registry import AdapterRegistry
from core.types import utcnow
from workers.model import load_model
from workers.nightly import run_nightly
from workers.training import TrainingOptions
from workers.training.team_corrections import adopted, ask_new, filler, rate, teach

TARGET_ADOPTION = 0.6
TARGET_SECONDS = 15 * 60


def row(label: str, value: str) -> None:
    print(f"{label:<44} {value}", flush=True)


async def _served_share(parley: Parley, check: Any, tag: str) -> tuple[float, list[str]]:
    """Switch to what the registry serves, ask the held-out questions, the share ``check``."""
    assert parley.watcher is not None
    parley.watcher.check()
    answers = await ask_new(parley.service, tag=tag)
    return sum(map(check, answers)) / len(answers), answers


def _night(
    parley: Parley, settings: Settings, registry: AdapterRegistry, base: Any, name: str, until: Any
) -> tuple[Any, float]:
    """One nightly run in a versions folder of its own, on the feedback until ``until``."""
    night = settings.model_copy(
        update={
            "fine_tuning": settings.fine_tuning.model_copy(
                update={"versions_dir": settings.storage.data_dir / "nights" / name}
            )
        }
    )
    options = replace(options_for(TrainingOptions, night.fine_tuning), min_new_feedback=1)
    started = time.perf_counter()
    outcome = run_nightly(night, parley.store, registry, now=until, options=options, base=base)
    return outcome, time.perf_counter() - started


def chart(path: Path, points: list[dict[str, Any]], before: float) -> None:
    """Adoption against the number of corrections, with the target."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5))
    xs = [0, *(p["corrections"] for p in points)]
    ys = [before, *(p["adoption"] for p in points)]
    axes.plot(xs, ys, marker="o", label="served: new questions answered with the greeting")
    trained = [
        (p["corrections"], p["gate_adoption"]) for p in points if p["gate_adoption"] is not None
    ]
    axes.plot(
        [x for x, _ in trained],
        [y for _, y in trained],
        marker="s",
        linestyle=":",
        label="trained version, held-out corrections (the gate's check)",
    )
    for k, p in enumerate(points):
        drift = f"\ndrift {p['drift']:+.3f}" if p["drift"] is not None else ""
        high = p["adoption"] > 0.5
        axes.annotate(
            f"{p['status']}{drift}\n{p['seconds'] / 60:.1f} min",
            (p["corrections"], p["adoption"]),
            textcoords="offset points",
            xytext=(0, -40 if high else 10 + 36 * (k % 2)),
            ha="center",
            fontsize=7,
        )
    axes.axhline(TARGET_ADOPTION, color="grey", linestyle="--", label="target (80 corrections)")
    axes.set_xlabel("consistent corrections from the team")
    axes.set_ylabel("share of answers that adopt it")
    axes.set_ylim(-0.05, 1.15)
    axes.set_title("What the nightly run learned from the team's corrections")
    axes.legend(loc="upper left", fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    data = Path(tempfile.mkdtemp(prefix="parley-learning-"))
    settings = load_settings(data_dir=data, temperature=0.0, max_new_tokens=args.max_new_tokens)
    parley = build_embedded(settings)
    registry = open_registry(parley.store)
    start_version = registry.serving()
    base = load_model(settings)  # the copy the nightly runs train on
    payload: dict[str, Any] = {"points": [], "data_dir": str(data)}
    try:
        started = time.perf_counter()
        before, answers = await _served_share(parley, adopted, "b")
        row("served version", start_version.id if start_version else "base model")
        row("adoption before any correction", f"{before:.2f} ({sum(map(adopted, answers))}/20)")
        given = await teach(
            parley.service,
            people=args.people,
            per_person=args.per_person,
            on_round=lambda r, n: row(f"  round {r}: corrections stored", str(n)),
        )
        row(
            "corrections given (asked, answered, corrected)",
            f"{given} in {time.perf_counter() - started:.0f} s",
        )
        records = sorted(parley.store.feedback_records(), key=lambda r: (r.given_at, r.feedback_id))
        for n in args.curve:
            until = records[min(n, len(records)) - 1].given_at + timedelta(microseconds=1)
            outcome, seconds = _night(parley, settings, registry, base, f"n{n}", until)
            share, answers = await _served_share(parley, adopted, f"c{n}-")
            figures = outcome.figures
            drift = (
                figures["after"]["regression_nll"] - figures["before"]["regression_nll"]
                if figures.get("after")
                else None
            )
            point = {
                "corrections": n,
                "status": outcome.status,
                "adoption": share,
                "gate_adoption": figures.get("after", {}).get("adoption"),
                "drift": drift,
                "seconds": seconds,
                "reason": outcome.reason,
                "examples": answers[:3],
            }
            payload["points"].append(point)
            row(
                f"{n} corrections: {outcome.status}",
                f"adoption {before:.2f} -> {share:.2f}, drift "
                + (f"{drift:+.3f}" if drift is not None else "n/a")
                + f", run {seconds / 60:.1f} min",
            )
            row("  for example", repr(answers[0][:90]))
            if start_version is not None:
                registry.promote(start_version.id, "benchmark: back to the version before")
        if args.thumbs:
            base_filler, _ = await _served_share(parley, filler, "tb")
            good, bad = await rate(parley.service, people=args.people, per_person=args.per_person)
            row("thumbs given (filler 👎, to the point 👍)", f"{good} 👍, {bad} 👎")
            # The next night of the last point's folder: it reads only the feedback given since.
            night = f"n{args.curve[-1]}"
            outcome, seconds = _night(parley, settings, registry, base, night, utcnow())
            after_filler, _ = await _served_share(parley, filler, "ta")
            trained_filler = None
            if outcome.status != "promoted" and outcome.version_id is not None:
                # What the gate refused: served for this one measurement, then put back.
                served = registry.serving()
                registry.promote(outcome.version_id, "benchmark: measure the refused version")
                trained_filler, _ = await _served_share(parley, filler, "tr")
                if served is not None:
                    registry.promote(served.id, "benchmark: back to the version before")
                else:
                    registry.rollback("benchmark: back to the base model")
                parley.watcher.check()  # type: ignore[union-attr]
            payload["thumbs"] = {
                "good": good,
                "bad": bad,
                "status": outcome.status,
                "filler_before": base_filler,
                "filler_after": after_filler,
                "filler_trained": trained_filler,
                "seconds": seconds,
                "reason": outcome.reason,
            }
            row(
                f"thumbs only: {outcome.status}",
                f"answers opening with filler {base_filler:.2f} -> {after_filler:.2f}, "
                f"run {seconds / 60:.1f} min",
            )
            if trained_filler is not None:
                row("  the version the gate refused", f"filler {trained_filler:.2f}")
                row("  why", outcome.reason)
    finally:
        parley.close()
    payload["before"] = before
    last = payload["points"][-1] if payload["points"] else None
    if last is not None:
        met = {
            "adoption": last["adoption"] >= TARGET_ADOPTION and before == 0.0,
            "drift": last["status"] == "promoted",
            "time": last["seconds"] <= TARGET_SECONDS,
        }
        payload["met"] = met
        row(
            f"targets at {last['corrections']} corrections",
            ", ".join(f"{k} {'met' if v else 'NOT met'}" for k, v in met.items()),
        )
    chart(args.chart, payload["points"], before)
    row("chart", str(args.chart))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=2, ensure_ascii=False, default=str))
    return payload


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=10)
    parser.add_argument("--per-person", type=int, default=8)
    parser.add_argument("--curve", type=int, nargs="+", default=[10, 20, 40, 80])
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--thumbs", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--chart", type=Path, default=Path("data/bench/learning.png"))
    parser.add_argument("--json", type=Path, default=None)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    for noisy in ("httpx", "urllib3", "filelock", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
