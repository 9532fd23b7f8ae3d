"""Fine-tuning runs on the real packaged model, on CPU: the gate passes what was learned.

Slow: a handful of short LoRA runs (tiny synthetic feedback, ~30-token sequences, a few
steps, LoRA on two modules), about three minutes together on two cores.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from config.settings import Settings
from core.feedback_data import FeedbackRecord
from core.types import Rating
from workers.model import LoadedModel, load_model
from workers.training import RUN_FILE, RunOutcome, TrainingOptions, run_fine_tune
from workers.training.replay import REPLAY_PERSON
from workers.training.synthetic import SIGN_OFF, signed_feedback

pytestmark = pytest.mark.slow

WINDOW = (datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 2, tzinfo=UTC))
FAST = TrainingOptions(
    lora_targets=("q_proj", "v_proj"),
    max_steps=6,
    learning_rate=5e-4,
    batch_size=8,
    max_length=64,
    min_new_feedback=10,
    held_out_fraction=0.3,
    max_person_share=0.25,
    untrusted_weight=1.0,
    regression_size=16,
)


@pytest.fixture(scope="module")
def base(test_settings: Settings) -> LoadedModel:
    """The packaged model, loaded once for this module."""
    return load_model(test_settings)


def fingerprint(base: LoadedModel) -> Any:
    """The base model's logits on a fixed prompt."""
    import torch

    ids = base.tokenizer("Hello there, how are you?", return_tensors="pt").input_ids
    with torch.no_grad():
        return base.model(input_ids=ids.to(base.device)).logits.cpu()


@pytest.fixture(scope="module")
def learned(
    base: LoadedModel, tmp_path_factory: pytest.TempPathFactory
) -> tuple[RunOutcome, Any, Any]:
    """A run on feedback whose liked answers all end with the same sign-off."""
    before = fingerprint(base)
    outcome = run_fine_tune(
        signed_feedback(40),
        FAST,
        base=base,
        out_dir=tmp_path_factory.mktemp("learned"),
        window=WINDOW,
    )
    return outcome, before, fingerprint(base)


def test_a_learnable_preference_is_learned_and_passes_the_gate(
    learned: tuple[RunOutcome, Any, Any],
) -> None:
    outcome = learned[0]
    assert outcome.before is not None
    assert outcome.after is not None
    assert outcome.before.liked >= 8
    assert outcome.before.disliked >= 8
    assert outcome.before.preference_accuracy == pytest.approx(0.5)  # the base is chance
    assert outcome.after.preference_accuracy is not None
    assert outcome.after.preference_accuracy >= 0.8
    assert outcome.after.reward_margin is not None
    assert outcome.after.reward_margin > 0
    drift = outcome.after.regression_nll - outcome.before.regression_nll
    assert drift <= FAST.max_regression_drift
    assert outcome.status == "passed", outcome.reason
    assert outcome.gate is not None
    assert all(outcome.gate.checks.values())


def test_the_run_saves_adapter_configuration_figures_and_report(
    learned: tuple[RunOutcome, Any, Any],
) -> None:
    outcome = learned[0]
    assert outcome.adapter_path is not None
    assert (outcome.adapter_path / "adapter_config.json").is_file()
    assert (outcome.adapter_path / "adapter_model.safetensors").is_file()
    saved = json.loads((outcome.adapter_path / RUN_FILE).read_text())
    assert saved["options"]["max_steps"] == FAST.max_steps
    assert saved["window"]["since"].startswith("2024-01-01")
    assert saved["status"] == "passed"
    assert saved["before"]["preference_accuracy"] == pytest.approx(0.5)
    assert saved["counts"]["used"] == outcome.counts.used

    assert outcome.report_json is not None
    assert outcome.report_png is not None
    report = json.loads(outcome.report_json.read_text())
    assert report["after"]["preference_accuracy"] >= 0.8
    [stage] = report["training"]["stages"]
    assert stage["name"] == "kto"
    assert stage["steps"] == FAST.max_steps
    assert [step for step, _ in stage["losses"]] == list(range(1, FAST.max_steps + 1))
    assert report["training"]["tokens_per_second"] > 0
    assert outcome.report_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    assert outcome.data_files is not None
    rows = outcome.data_files["kto"].read_text().splitlines()
    assert len(rows) == outcome.counts.kto_rows
    people = {json.loads(row)["person"] for row in rows}
    assert all(p.startswith("person-") for p in people - {REPLAY_PERSON})  # and rehearsal


def test_the_served_model_is_untouched(
    base: LoadedModel, learned: tuple[RunOutcome, Any, Any]
) -> None:
    import torch

    _, before, after = learned
    assert torch.equal(before, after)
    assert not any("lora" in name for name, _ in base.model.named_parameters())


def test_random_feedback_does_not_pass_the_gate(base: LoadedModel, tmp_path: Path) -> None:
    outcome = run_fine_tune(
        signed_feedback(40, labels="random"), FAST, base=base, out_dir=tmp_path, window=WINDOW
    )
    assert outcome.status == "rejected"
    assert outcome.gate is not None
    assert outcome.gate.checks["preference"] is False
    assert outcome.adapter_path is not None  # kept for inspection, not served
    assert json.loads((outcome.adapter_path / RUN_FILE).read_text())["status"] == "rejected"


def test_contradictory_feedback_does_not_pass_the_gate(base: LoadedModel, tmp_path: Path) -> None:
    records = signed_feedback(20, labels="contradictory")
    outcome = run_fine_tune(
        records, replace(FAST, max_steps=2), base=base, out_dir=tmp_path, window=WINDOW
    )
    assert outcome.status == "rejected"
    assert outcome.after is not None
    assert outcome.after.preference_accuracy is not None
    assert abs(outcome.after.preference_accuracy - 0.5) < 0.1


def test_too_little_feedback_skips_the_run_and_says_why(base: LoadedModel, tmp_path: Path) -> None:
    options = replace(FAST, max_person_share=None)
    outcome = run_fine_tune(signed_feedback(3), options, base=base, out_dir=tmp_path)
    assert outcome.status == "skipped"
    assert "not enough new feedback: 6 usable of 6 records (need 10)" in outcome.reason
    assert outcome.report_json is not None
    assert json.loads(outcome.report_json.read_text())["status"] == "skipped"
    assert not list(tmp_path.rglob("*.jsonl"))
    assert outcome.adapter_path is None


def corrections(prompts: int) -> list[FeedbackRecord]:
    """Corrections that add the sign-off to the original answer."""
    records = []
    for record in signed_feedback(prompts):
        if record.rating is Rating.BAD:
            records.append(replace(record, rating=None, correction=record.answer + SIGN_OFF))
    return records


def test_training_continues_from_a_parent_adapter_with_dpo_on_corrections(
    base: LoadedModel, learned: tuple[RunOutcome, Any, Any], tmp_path: Path
) -> None:
    parent = learned[0].adapter_path
    options = replace(FAST, max_steps=1, max_person_share=None, correction_method="dpo")
    outcome = run_fine_tune(
        corrections(40), options, base=base, out_dir=tmp_path, parent_adapter=parent
    )
    assert outcome.training is not None
    assert [s.name for s in outcome.training.stages] == ["dpo"]
    # The parent adapter already prefers the signed answers: "before" is the parent's.
    assert outcome.before is not None
    assert outcome.before.preference_accuracy is not None
    assert outcome.before.preference_accuracy >= 0.8
    assert outcome.before.correction_loss is not None
    assert outcome.before.corrections > 0
    assert outcome.adapter_path is not None
    saved = json.loads((outcome.adapter_path / RUN_FILE).read_text())
    assert saved["parent_adapter"] == str(parent)
    assert outcome.status in ("passed", "rejected")


def test_corrections_can_be_learned_by_supervised_fine_tuning(
    base: LoadedModel, tmp_path: Path
) -> None:
    options = replace(FAST, max_steps=1, correction_method="sft", max_person_share=None)
    outcome = run_fine_tune(corrections(24), options, base=base, out_dir=tmp_path)
    assert outcome.training is not None
    [stage] = outcome.training.stages
    assert stage.name == "sft"
    assert stage.steps == 1
    assert stage.losses
    assert outcome.after is not None
    assert outcome.after.correction_loss is not None
    assert outcome.before is not None
    assert outcome.before.correction_loss is not None
    assert outcome.after.correction_loss != outcome.before.correction_loss
