"""Benchmark: does Parley use the person's profile? The plain base against the profile version.

Held-out people (names, places, jobs, pets, hobbies, diets and questions that no training
row holds: :data:`workers.training.profile_data.EVAL`) ask what people ask. Each prompt is
built by Parley's prompt builder from the settings and a real profile, answered greedily by
the served generation path (:class:`workers.batching.BatchedGenerator`, all probes at once,
the base model and then the version merged by its adapter slot), with the responder's
answer-length rule (at most ``SHORT_ANSWER_TOKENS`` for "short" and for an upset person).

Printed per model, with the targets of the tuned version:

- **name recall**: "What is my name?" answers containing the name (target >= 0.9);
- **greeting uses name**: "Hi!" answers containing the name (shown, no target);
- **fact use**: recall ("Where do I live?", job, pet) and indirect use ("Suggest a dinner"
  for a vegetarian must say "vegetarian"; weekend ideas must name the hobby; a day out
  must name the town) answers containing the fact's word (target >= 0.7);
- **name claimed**: answers where Parley takes the person's name as its own ("I'm Aiyana",
  "My name is Aiyana", "call me Aiyana"), over every probe (target <= 0.02);
- **length**: pairs of the same question from the same person with ``length short`` and
  ``length detailed``; compliant when the short answer has at most half the tokens of the
  detailed one (target >= 0.8);
- **tone**: the same question with ``tone formal`` and ``tone casual``; a formal answer
  complies when it has no contraction (``'m 're 's 've 'll 'd n't``) and no casual word
  (hey, hi, yeah, awesome, cool, sure thing, no worries, totally, gonna); a casual answer
  when it has a contraction, an exclamation mark or one of those casual words (target >= 0.8);
- **upset acknowledged**: a frustrated person (the responder's ``UPSET_GUIDANCE`` in the
  prompt) gets an acknowledgement (sorry, frustrat, understand, that sounds, upset,
  annoying, stressful); the tuned version must keep it (target >= the base's rate, and > 0);
- **chitchat NLL**: per-token NLL of the nightly regression set (fixed chitchat exchanges);
  the drift of the tuned version must stay within the nightly gate's limit
  (``TrainingOptions.max_regression_drift``).

A bar chart of base against tuned per probe type is written to ``--chart``.

Usage::

    PARLEY_MODEL_CACHE_DIR=.cache/models python bench/personalization.py  # ~10 min, 2 cores
    python bench/personalization.py --people 6 --chart /tmp/profile.png --json /tmp/profile.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any

from config import load_settings
from core.generator import GenerationRequest
from core.prompt_guard import PromptGuard
from core.registry import AdapterVersion
from core.types import ChatTurn, Role
from workers.batching import BatchedGenerator
from workers.model import load_model
from workers.packaged_version import PACKAGED_VERSION_ID, packaged_folder
from workers.training.options import TrainingOptions
from workers.training.profile_data import eval_probes
from workers.training.profile_eval import (
    TARGETS,
    Results,
    answer_all,
    measure,
    regression_nll,
    verdicts,
)


async def _serve(generator: BatchedGenerator, version: AdapterVersion | None) -> None:
    """Switch the served weights, and wait until the engine has switched."""
    generator.use_version(version)
    # The engine switches before it takes the next request: one short answer does it.
    turns = (ChatTurn(Role.USER, "Hi"),)
    stream = generator.generate(GenerationRequest(turns=turns, max_new_tokens=1))
    async for _ in stream:
        pass


def chart(path: Path, base: Results, tuned: Results) -> None:
    """Bars of base against tuned per probe type."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in base.rates if k in tuned.rates]
    figure, axes = plt.subplots(figsize=(12, 5))
    positions = list(range(len(keys)))
    for shift, results, label in ((-0.2, base, "base"), (0.2, tuned, "profile version")):
        drawn = axes.bar(
            [p + shift for p in positions], [results.rates[k] for k in keys], 0.4, label=label
        )
        axes.bar_label(drawn, labels=[f"{results.rates[k]:.2f}" for k in keys], fontsize=7)
    axes.set_xticks(positions, [k.replace("_", "\n") for k in keys])
    axes.set_ylim(0, 1.1)
    axes.set_title(
        f"Held-out profile probes (greedy). Chitchat NLL {base.regression_nll:.3f} → "
        f"{tuned.regression_nll:.3f}"
    )
    axes.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Answer the probes with the base and the tuned version; print and return the figures."""
    settings = load_settings(temperature=0.0)
    probes = eval_probes(args.people, args.seed)
    loaded = load_model(settings)
    base_version = loaded.version
    generator = BatchedGenerator(loaded, settings)
    adapter = args.adapter or packaged_folder()
    tuned_version = AdapterVersion(
        id=PACKAGED_VERSION_ID, base_model=loaded.version, path=str(adapter)
    )
    results = {}
    canary = PromptGuard().canary
    try:
        for label, version in (("base", None), ("tuned", tuned_version)):
            await _serve(generator, version)
            started = time.perf_counter()
            answers = await answer_all(
                generator, settings, probes, args.max_new_tokens, canary=canary
            )
            measured = measure(answers)
            measured.regression_nll = regression_nll(generator)
            measured.seconds = time.perf_counter() - started
            results[label] = measured
    finally:
        generator.close()
    base, tuned = results["base"], results["tuned"]
    met = verdicts(base, tuned)
    print(f"Held-out probes: {len(probes)} from {args.people} people; model {base_version}")
    print(f"{'probe':<22} {'n':>4} {'base':>7} {'tuned':>7}  target")
    for key in base.rates:
        how, limit = TARGETS.get(key, ("", None))
        target = f"{how} {limit}" if limit is not None else ""
        if key in met:
            target += "  met" if met[key] else "  NOT met"
        print(
            f"{key:<22} {base.counts[key]:>4} {base.rates[key]:>7.3f} "
            f"{tuned.rates[key]:>7.3f}  {target}"
        )
    drift = tuned.regression_nll - base.regression_nll
    limit = TrainingOptions().max_regression_drift
    print(
        f"{'chitchat NLL':<22} {'':>4} {base.regression_nll:>7.3f} "
        f"{tuned.regression_nll:>7.3f}  "
        f"drift {drift:+.3f} (gate allows <= {limit})  "
        + ("met" if met["chitchat_drift"] else "NOT met")
    )
    print(f"seconds: base {base.seconds:.0f}, tuned {tuned.seconds:.0f}")
    print(
        "All targets met."
        if all(met.values())
        else "Targets NOT met: " + ", ".join(k for k, v in met.items() if not v)
    )
    chart(args.chart, base, tuned)
    print(f"Chart: {args.chart}")
    payload = {
        "probes": len(probes),
        "people": args.people,
        "base": {
            "rates": base.rates,
            "counts": base.counts,
            "regression_nll": base.regression_nll,
            "examples": base.examples,
        },
        "tuned": {
            "rates": tuned.rates,
            "counts": tuned.counts,
            "regression_nll": tuned.regression_nll,
            "examples": tuned.examples,
        },
        "met": met,
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
    return payload


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=12, help="held-out people")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-new-tokens", type=int, default=160)
    parser.add_argument("--adapter", type=Path, default=None, help="default: the packaged one")
    parser.add_argument("--chart", type=Path, default=Path("data/bench/personalization.png"))
    parser.add_argument("--json", type=Path, default=None)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
