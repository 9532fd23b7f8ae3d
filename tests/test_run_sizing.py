"""A run sized to its data: epochs decide its steps, ``max_steps`` only caps them, the plan
and its estimate are printed and logged, and progress lines in ``runs.jsonl`` are no runs.

The last test is slow: the operator's command trains a tiny real run on the packaged model.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest

from config.settings import Settings
from workers.nightly import NightlyOutcome, _in_flight, _last_trained_until, _record
from workers.training.options import TrainingOptions
from workers.training.sizing import (
    PASSES,
    Progress,
    estimate_record,
    plan_run,
    stage_examples,
    stage_steps,
)


@pytest.mark.parametrize(
    ("rows", "batch", "epochs", "cap", "accum", "steps"),
    [
        (60, 8, 1.0, None, 1, 8),  # the last batch of the epoch is short
        (64, 8, 1.0, None, 1, 8),
        (60, 16, 3.0, 200, 1, 12),  # the KTO stage: 3 epochs, not 50
        (60, 8, 0.5, None, 1, 4),
        (1, 8, 1.0, 200, 1, 1),
        (60, 8, 1.0, None, 2, 4),  # gradient accumulation: one step per two batches
        (0, 8, 3.0, 200, 1, 0),
    ],
)
def test_rows_become_steps(
    rows: int, batch: int, epochs: float, cap: int | None, accum: int, steps: int
) -> None:
    assert stage_steps(rows, batch, epochs, cap, accum) == steps


def test_max_steps_is_an_upper_bound_not_a_length() -> None:
    assert stage_steps(60, 8, 2.0, None) == 16
    assert stage_steps(60, 8, 2.0, 10) == 10  # smaller: it caps
    assert stage_steps(60, 8, 2.0, 16) == 16
    assert stage_steps(60, 8, 2.0, 200) == 16  # larger: no step added

    plan = plan_run({"kto": 60, "dpo": 20, "sft": 0}, batch_size=8, epochs=2.0, max_steps=10)
    assert [(s.name, s.steps, s.epoch_steps, s.capped) for s in plan.stages] == [
        ("kto", 10, 16, True),
        ("dpo", 6, 6, False),
    ]
    assert (plan.rows, plan.steps) == (80, 16)
    assert "80 training rows (kto 60, dpo 20), 16 steps (kto 10 (capped from 16) + dpo 6" in (
        plan.describe()
    )


def test_examples_count_whole_epochs_then_part_of_one() -> None:
    assert stage_examples(60, 8, 8) == 60
    assert stage_examples(60, 8, 10) == 60 + 16
    assert stage_examples(60, 8, 3) == 24
    assert stage_examples(60, 8, 4, grad_accum=2) == 60


def test_the_estimate_is_examples_times_tokens_times_passes_at_the_measured_speed() -> None:
    plan = plan_run({"kto": 40, "dpo": 10}, batch_size=8, epochs=1.0, max_steps=None)
    assert plan.training_s is None
    assert plan.remaining_s is None

    priced = plan.with_estimate({"kto": 50.0, "dpo": 120.0}, 1000.0, scoring_s=7.0)

    kto, dpo = priced.stages
    assert kto.seconds == pytest.approx(40 * 50.0 * PASSES["kto"] / 1000.0)  # 12 s
    assert dpo.seconds == pytest.approx(10 * 120.0 * PASSES["dpo"] / 1000.0)  # 4.8 s
    assert priced.training_s == pytest.approx(16.8)
    assert priced.remaining_s == pytest.approx(16.8 + 7.0)
    assert "about 24 s to go (17 s training, 2.4 s a step)" in priced.describe()
    saved = priced.as_dict()
    assert (saved["rows"], saved["steps"], saved["training_s"]) == (50, 7, pytest.approx(16.8))

    record = estimate_record(priced, 7, 21.0)
    assert record["estimated_s"] == 16.8
    assert record["actual_s"] == 21.0
    assert record["error"] == pytest.approx(16.8 / 21.0 - 1.0, abs=1e-3)  # 20 % too short
    assert estimate_record(plan, 7, 21.0)["error"] is None


def test_time_left_follows_the_measured_pace_and_lines_are_throttled() -> None:
    plan = plan_run({"kto": 40, "dpo": 16}, batch_size=8, epochs=1.0, max_steps=None)
    priced = plan.with_estimate({"kto": 50.0, "dpo": 50.0}, 100.0, 20.0)  # 120 s, 32 s
    progress = Progress(priced, started=0.0, every_s=30.0)
    progress.start_stage("kto", 10.0)

    first = progress.step("kto", 1, 0.7, now=58.0)  # 48 s a step: twice the estimate
    assert first["due"]
    assert (first["done"], first["total"], first["elapsed_s"]) == (1, 7, 58.0)
    # 4 kto steps at 48 s, then dpo at twice its estimate.
    assert first["left_s"] == pytest.approx(4 * 48.0 + 2 * 32.0 + 20.0)  # and scoring
    assert not progress.step("kto", 2, 0.6, now=80.0)["due"]  # 22 s after the last line
    assert progress.step("kto", 3, 0.5, now=90.0)["due"]
    last = progress.step("kto", 5, 0.4, now=100.0)
    assert last["due"]  # a stage's last step always gets a line
    assert last["left_s"] == pytest.approx(32.0 * 90.0 / 120.0 + 20.0)

    progress.start_stage("dpo", 100.0)
    end = progress.step("dpo", 2, 0.3, now=130.0)
    assert (end["stage"], end["step"], end["steps"], end["done"]) == ("dpo", 2, 2, 7)
    assert end["left_s"] == 20.0  # the scoring after training

    unpriced = Progress(plan, started=0.0)
    unpriced.start_stage("kto", 0.0)
    assert unpriced.step("kto", 2, None, now=20.0)["left_s"] == pytest.approx(5 * 10.0)


def test_plan_and_progress_lines_in_runs_jsonl_are_not_runs(tmp_path: Path) -> None:
    runs = tmp_path / "runs.jsonl"
    trained_until = datetime(2026, 12, 1, 3, tzinfo=UTC)
    _record(runs, NightlyOutcome("promoted", "passed", None, trained_until, "ft-1"))
    # The next night: a plan, progress, then the run fails; its window stays open.
    write = _in_flight(runs, "ft-2")
    plan = plan_run({"kto": 20}, batch_size=8, epochs=1.0, max_steps=200)
    write({"event": "plan", **plan.with_estimate({"kto": 40.0}, 500.0, 3.0).as_dict()})
    progress = Progress(plan, started=0.0)
    write({"event": "progress", **progress.step("kto", 1, 0.69, now=5.0)})
    assert _last_trained_until(runs) == trained_until
    _record(runs, NightlyOutcome("failed", "oops", trained_until, datetime.now(UTC)))

    assert _last_trained_until(runs) == trained_until
    lines = [json.loads(line) for line in runs.read_text().splitlines()]
    assert [line.get("event") for line in lines] == [None, "plan", "progress", None]
    planned, step = lines[1], lines[2]
    assert (planned["version"], planned["rows"], planned["steps"]) == ("ft-2", 20, 3)
    assert (planned["epochs"], planned["max_steps"], planned["batch_size"]) == (1.0, 200, 8)
    assert planned["stages"][0]["name"] == "kto"
    assert planned["estimated_s"] == pytest.approx(20 * 40.0 * PASSES["kto"] / 500.0)
    assert (step["stage"], step["step"], step["steps"], step["loss"]) == ("kto", 1, 3, 0.69)
    assert "status" not in planned
    assert "until" not in step


@pytest.mark.slow
def test_the_nightly_command_trains_exactly_the_planned_steps_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    from config.wiring import open_store
    from tests.model_fixtures import MODEL_CACHE
    from tests.test_nightly import rate_answers
    from workers.fine_tune import main
    from workers.training.synthetic import signed_feedback

    settings = Settings(
        data_dir=tmp_path,
        model_cache_dir=MODEL_CACHE,
        fine_tune_min_feedback=10,
        fine_tune_person_cap=1.0,
        _env_file=None,  # type: ignore[call-arg]
    )
    assert settings.fine_tuning.max_steps == 200  # the default cap, far above this run
    store = open_store(settings)
    rate_answers(store, signed_feedback(12))
    store.dispose()
    caplog.set_level(logging.INFO)

    assert main(["run"], settings) == 0

    lines = [json.loads(line) for line in (settings.versions_path / "runs.jsonl").open()]
    plan, *progress, run = lines
    assert plan["event"] == "plan"
    [stage] = plan["stages"]
    # The default epochs of batch 8: the cap of 200 adds nothing.
    epochs = TrainingOptions().epochs
    assert stage["steps"] == stage_steps(stage["rows"], 8, epochs, None) == plan["steps"]
    assert plan["estimated_s"] > 0
    assert {p["event"] for p in progress} == {"progress"}
    assert progress[0]["step"] == 1
    assert (progress[-1]["step"], progress[-1]["done"]) == (plan["steps"], plan["steps"])
    scoring_s = plan["left_s"] - plan["estimated_s"]  # after training, the run scores again
    assert progress[-1]["left_s"] == pytest.approx(scoring_s, abs=0.2)
    assert "event" not in run
    assert (run["rows"], run["steps"], run["steps_run"]) == (stage["rows"],) + (plan["steps"],) * 2
    assert run["estimated_s"] == pytest.approx(plan["estimated_s"], abs=0.1)
    assert run["actual_s"] > 0
    assert run["error"] == pytest.approx(run["estimated_s"] / run["actual_s"] - 1.0, abs=0.01)

    saved = json.loads((Path(run["folder"]) / "report.json").read_text())
    [trained] = saved["training"]["stages"]
    assert trained["steps"] == plan["steps"]  # what the trainer really ran
    assert [s for s, _ in trained["losses"]] == list(range(1, plan["steps"] + 1))
    logged = caplog.text
    assert f"Plan: {plan['rows']} training rows (kto {stage['rows']}), {plan['steps']} steps" in (
        logged
    )
    assert "Estimate: about " in logged
    assert " to go (" in logged
    assert f"kto step {plan['steps']}/{plan['steps']} loss" in logged
    assert f"Trained {plan['steps']} steps in " in logged
    printed = capsys.readouterr().out
    assert f"Trained {stage['rows']} rows in {plan['steps']} steps" in printed
