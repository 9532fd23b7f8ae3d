"""Everything a fine-tuning run can be told, in one frozen dataclass.

The defaults suit a nightly run on a GPU worker or a patient CPU; tests and benchmarks
shrink them (fewer steps, shorter sequences, LoRA on two modules). Every run saves the
options it used beside the adapter (``parley_run.json``), so a result can be reproduced.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from core.errors import ConfigurationError

__all__ = ["TrainingOptions"]


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainingOptions:
    """How to build the data, train the LoRA adapter and judge it.

    Data: ``min_new_feedback`` usable items are needed or the run is skipped;
    ``held_out_fraction`` of the prompts (chosen by a seeded hash of the prompt, so the same
    prompt stays held out night after night) is never trained on; each person may supply at
    most ``max_person_share`` of a run (a fraction, solved so that the share holds *after*
    capping) and at most ``max_person_examples`` items; feedback from untrusted sources
    (public Telegram users) is kept with probability ``untrusted_weight`` (0 excludes it,
    1 treats it like the rest; a seeded, deterministic subsample).

    Training: LoRA ``lora_r``/``lora_alpha``/``lora_dropout`` on ``lora_targets`` (of the
    ``lora_layers``, or of every layer); KTO on
    thumbs (its loss weights balancing 👍 against 👎, :func:`.train.kto_weights`), then
    ``correction_method`` ("sft" or "dpo") on corrections; the KTO and SFT rows have
    ``replay_share`` of ordinary chitchat mixed in (``replay_min_rows`` at least); each stage
    trains ``epochs`` over its rows,
    ``max_steps`` (per stage) at most.

    Gate: the adapter passes when the held-out preference accuracy rises by at least
    ``min_preference_gain`` and its Wilson lower bound (``preference_confidence_z``) is above
    the accuracy before; when held-out corrections exist their loss falls by at least
    ``min_correction_gain``; when at least ``min_adoption_items`` held-out corrections exist,
    the share of them whose greedy answer (``adoption_max_new_tokens`` tokens) adopts the
    correction rises by at least ``min_adoption_gain``, with its Wilson lower bound above the
    share before; and the regression set's per-token NLL
    rises by at most ``max_regression_drift`` nats.
    """

    # LoRA
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    lora_targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    lora_layers: tuple[int, ...] | None = None
    """Only these decoder layers get LoRA (``None``: all). The top layers alone cost far
    less to train: the backward pass stops at the lowest adapted layer."""
    # Optimisation
    learning_rate: float = 3e-4
    epochs: float = 2.0
    max_steps: int | None = None
    batch_size: int = 8
    max_length: int = 256
    kto_beta: float = 0.1
    correction_method: Literal["dpo", "sft"] = "sft"
    dpo_beta: float = 0.1
    replay_share: float = 0.25
    replay_min_rows: int = 40
    # Data
    min_new_feedback: int = 50
    held_out_fraction: float = 0.2
    max_person_share: float | None = 0.2
    max_person_examples: int | None = None
    untrusted_weight: float = 0.5
    regression_size: int = 32
    regression_seed: int = 0
    # Gate
    min_preference_gain: float = 0.05
    preference_confidence_z: float = 1.64
    min_correction_gain: float = 0.0
    min_adoption_gain: float = 0.1
    min_adoption_items: int = 1
    adoption_max_new_tokens: int = 32
    max_regression_drift: float = 0.05
    # Run
    eval_batch_size: int = 8
    seed: int = 0

    def __post_init__(self) -> None:
        problems = []
        if self.lora_r < 1 or self.lora_alpha < 1:
            problems.append("lora_r and lora_alpha must be at least 1")
        if not self.lora_targets:
            problems.append("lora_targets must name at least one module")
        if self.lora_layers is not None and (not self.lora_layers or min(self.lora_layers) < 0):
            problems.append("lora_layers must name layers (>= 0), or be None for all")
        if not 0.0 <= self.lora_dropout < 1.0:
            problems.append("lora_dropout must be in [0, 1)")
        if self.learning_rate <= 0 or self.epochs <= 0:
            problems.append("learning_rate and epochs must be positive")
        if self.max_steps is not None and self.max_steps < 1:
            problems.append("max_steps must be at least 1 (or None to use epochs)")
        if self.batch_size < 1 or self.eval_batch_size < 1:
            problems.append("batch sizes must be at least 1")
        if self.max_length < 16:
            problems.append("max_length must be at least 16 tokens")
        if not 0.0 <= self.replay_share < 1.0:
            problems.append("replay_share must be in [0, 1)")
        if self.replay_min_rows < 0:
            problems.append("replay_min_rows must be at least 0")
        if self.correction_method not in ("dpo", "sft"):
            problems.append("correction_method must be 'dpo' or 'sft'")
        if self.min_new_feedback < 1:
            problems.append("min_new_feedback must be at least 1")
        if not 0.0 < self.held_out_fraction < 1.0:
            problems.append("held_out_fraction must be in (0, 1)")
        if self.max_person_share is not None and not 0.0 < self.max_person_share <= 1.0:
            problems.append("max_person_share must be in (0, 1] (or None for no share cap)")
        if self.max_person_examples is not None and self.max_person_examples < 1:
            problems.append("max_person_examples must be at least 1 (or None for no count cap)")
        if not 0.0 <= self.untrusted_weight <= 1.0:
            problems.append("untrusted_weight must be in [0, 1] (0 excludes untrusted feedback)")
        if not 0.0 <= self.min_adoption_gain <= 1.0 or self.min_adoption_items < 1:
            problems.append("min_adoption_gain must be in [0, 1] and min_adoption_items >= 1")
        if self.adoption_max_new_tokens < 1:
            problems.append("adoption_max_new_tokens must be at least 1")
        if self.regression_size < 1:
            problems.append("regression_size must be at least 1")
        if self.preference_confidence_z < 0 or self.max_regression_drift < 0:
            problems.append("preference_confidence_z and max_regression_drift must be >= 0")
        if problems:
            raise ConfigurationError("Invalid training options: " + "; ".join(problems) + ".")

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready copy, as saved beside every adapter."""
        data = asdict(self)
        data["lora_targets"] = list(self.lora_targets)
        data["lora_layers"] = list(self.lora_layers) if self.lora_layers is not None else None
        return data
