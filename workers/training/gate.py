"""The evaluation gate: is the new adapter better on feedback and no worse at chatting?

The adapter passes only when every check that applies holds:

- ``preference``: held-out preference accuracy rose by at least ``min_preference_gain``
  *and* its Wilson lower bound (z = ``preference_confidence_z``, counting
  ``min(liked, disliked)`` held-out items as the sample size: conservative, since the
  accuracy compares every liked item with every disliked one) is above the accuracy before,
  so that a handful of lucky held-out items cannot pass a model that learned nothing;
- ``corrections`` (when held-out corrections exist): their per-token loss fell by at least
  ``min_correction_gain``;
- ``adoption`` (when at least ``min_adoption_items`` held-out corrections were answered):
  the share of them whose greedy answer shows what the correction changed rose by at least
  ``min_adoption_gain`` and its Wilson lower bound is above the share before: what people
  see, not only what the model prefers, so that a run whose answers did not visibly move
  toward the corrections is not promoted as a gain;
- ``regression``: the regression set's per-token NLL rose by at most ``max_regression_drift``.

With no held-out comparison at all (no liked and disliked items, no corrections) the gate
refuses: nothing shows the adapter is better.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from workers.training.evaluate import Figures
from workers.training.options import TrainingOptions

__all__ = ["GateDecision", "decide", "wilson_lower_bound"]


@dataclass(frozen=True, slots=True)
class GateDecision:
    """Whether the adapter may be served, the reason in words, and each check's result."""

    passed: bool
    reason: str
    checks: dict[str, bool] = field(default_factory=dict)


def wilson_lower_bound(rate: float, n: int, z: float) -> float:
    """The Wilson score interval's lower end for a proportion ``rate`` out of ``n``."""
    if n <= 0:
        return 0.0
    denominator = 1 + z * z / n
    centre = rate + z * z / (2 * n)
    spread = z * math.sqrt(rate * (1 - rate) / n + z * z / (4 * n * n))
    return (centre - spread) / denominator


def decide(before: Figures, after: Figures, options: TrainingOptions) -> GateDecision:
    """Judge ``after`` against ``before`` with the thresholds in ``options``."""
    checks: dict[str, bool] = {}
    notes: list[str] = []
    if before.preference_accuracy is not None and after.preference_accuracy is not None:
        gain = after.preference_accuracy - before.preference_accuracy
        n = min(after.liked, after.disliked)
        bound = wilson_lower_bound(after.preference_accuracy, n, options.preference_confidence_z)
        checks["preference"] = gain >= options.min_preference_gain and bound > (
            before.preference_accuracy
        )
        notes.append(
            f"preference accuracy {before.preference_accuracy:.3f} -> "
            f"{after.preference_accuracy:.3f} (gain {gain:+.3f}, need >= "
            f"{options.min_preference_gain:.3f}; lower bound {bound:.3f} over {n} items, "
            f"must exceed {before.preference_accuracy:.3f})"
        )
    if before.correction_loss is not None and after.correction_loss is not None:
        fall = before.correction_loss - after.correction_loss
        checks["corrections"] = fall >= options.min_correction_gain
        notes.append(
            f"correction loss {before.correction_loss:.3f} -> {after.correction_loss:.3f} "
            f"(fall {fall:+.3f}, need >= {options.min_correction_gain:.3f})"
        )
    if (
        before.adoption is not None
        and after.adoption is not None
        and after.adoption_items >= options.min_adoption_items
    ):
        rise = after.adoption - before.adoption
        n = after.adoption_items
        bound = wilson_lower_bound(after.adoption, n, options.preference_confidence_z)
        checks["adoption"] = rise >= options.min_adoption_gain and bound > before.adoption
        notes.append(
            f"corrections adopted {before.adoption:.2f} -> {after.adoption:.2f} of {n} "
            f"held-out answers (rise {rise:+.2f}, need >= {options.min_adoption_gain:.2f}; "
            f"lower bound {bound:.2f}, must exceed {before.adoption:.2f})"
        )
    if not checks:
        return GateDecision(
            False, "no held-out feedback to judge by (need liked and disliked items or corrections)"
        )
    drift = after.regression_nll - before.regression_nll
    checks["regression"] = drift <= options.max_regression_drift
    notes.append(
        f"regression NLL {before.regression_nll:.3f} -> {after.regression_nll:.3f} "
        f"(drift {drift:+.3f}, allowed <= {options.max_regression_drift:.3f})"
    )
    failed = [name for name, ok in checks.items() if not ok]
    verdict = "passed" if not failed else "failed " + ", ".join(failed)
    return GateDecision(not failed, f"{verdict}: " + "; ".join(notes), checks)
