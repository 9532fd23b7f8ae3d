"""The fine-tuning dataset: what reaches a training file, and what never does.

Fast tests, no model: opt-outs, redaction, duplicates, per-person caps, untrusted feedback,
the held-out split, corrections, ``forget_person``, and the gate's arithmetic.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from core.errors import ConfigurationError
from core.feedback_data import FeedbackRecord
from core.types import ChatTurn, Rating, Role
from workers.training import (
    Figures,
    TrainingOptions,
    build_dataset,
    decide,
    forget_person,
    regression_set,
    write_dataset,
)
from workers.training.gate import wilson_lower_bound
from workers.training.replay import REPLAY_PERSON
from workers.training.synthetic import SIGN_OFF, signed_feedback

START = datetime(2024, 5, 1, tzinfo=UTC)


def make_record(
    n: int,
    *,
    person: str = "p1",
    question: str | None = None,
    answer: str | None = None,
    rating: Rating | None = Rating.GOOD,
    correction: str | None = None,
    trusted: bool = True,
    allows_training: bool = True,
) -> FeedbackRecord:
    """One feedback record; every field can be overridden."""
    return FeedbackRecord(
        feedback_id=n,
        answer_id=n,
        person=person,
        platform="slack" if trusted else "telegram",
        trusted=trusted,
        allows_training=allows_training,
        prompt=(
            ChatTurn(Role.SYSTEM, "You are Parley."),
            ChatTurn(Role.USER, question or f"Question number {n}?"),
        ),
        answer=answer or f"Answer number {n}.",
        rating=rating,
        correction=correction,
        model_version="m1",
        given_at=START + timedelta(minutes=n),
    )


def options(**changes: Any) -> TrainingOptions:
    """Options that let everything through unless a test says otherwise."""
    base = {
        "min_new_feedback": 1,
        "held_out_fraction": 0.25,
        "max_person_share": None,
        "untrusted_weight": 1.0,
    }
    return TrainingOptions(**{**base, **changes})


def read_all(folder: Path) -> list[dict[str, Any]]:
    """Every row of every JSONL file under ``folder``."""
    rows = []
    for path in sorted(folder.rglob("*.jsonl")):
        rows.extend(json.loads(line) for line in path.read_text().splitlines() if line.strip())
    return rows


def test_opted_out_feedback_never_reaches_a_file(tmp_path: Path) -> None:
    secret = "MY-OPTED-OUT-SENTENCE"
    records = [make_record(i, person=f"p{i % 4}") for i in range(1, 41)]
    records += [
        make_record(
            100 + i,
            person="quitter",
            question=f"{secret} question {i}",
            answer=f"{secret} answer {i}",
            rating=Rating.BAD,
            correction=f"{secret} fix {i}",
            allows_training=False,
        )
        for i in range(10)
    ]
    data = build_dataset(records, options())
    files = write_dataset(data, tmp_path)

    assert data.counts.opted_out == 10
    assert set(files) == {"kto", "dpo", "sft", "held_out"}
    text = "".join(path.read_text() for path in tmp_path.rglob("*.jsonl"))
    assert secret not in text
    assert "quitter" not in text
    people = {row["person"] for row in read_all(tmp_path)}
    assert people == {"p0", "p1", "p2", "p3", REPLAY_PERSON}  # and rehearsal: nobody's


def test_personal_data_is_redacted_in_training_files(tmp_path: Path) -> None:
    records = [
        make_record(
            i,
            question=f"Mail me at ada{i}@example.org or call +44 20 7946 0958",
            answer=f"Sure, I'll write to ada{i}@example.org.",
            rating=Rating.BAD,
            correction="Your card 4111 1111 1111 1111 is safe with me.",
        )
        for i in range(1, 21)
    ]
    write_dataset(build_dataset(records, options()), tmp_path)

    text = "".join(path.read_text() for path in tmp_path.rglob("*.jsonl"))
    assert "@example.org" not in text
    assert "7946" not in text
    assert "4111" not in text
    assert "[email]" in text
    assert "[phone]" in text
    assert "[card]" in text


def test_every_row_keeps_its_person_and_forget_person_removes_them(tmp_path: Path) -> None:
    records = [
        make_record(i, person=f"p{i % 3}", rating=Rating.BAD, correction=f"Better {i}.")
        for i in range(1, 61)
    ]
    write_dataset(build_dataset(records, options()), tmp_path / "run-1")
    write_dataset(build_dataset(records, options(seed=1)), tmp_path / "run-2" / "data")
    rows = read_all(tmp_path)
    # Rehearsal rows (ordinary chitchat mixed into the corrections) are nobody's.
    assert all(row["person"] in {"p0", "p1", "p2", REPLAY_PERSON} for row in rows)
    expected = sum(1 for row in rows if row["person"] == "p1")
    assert expected > 0

    assert forget_person(tmp_path, "p1") == expected
    left = read_all(tmp_path)
    assert len(left) == len(rows) - expected
    assert "p1" not in {row["person"] for row in left}
    assert forget_person(tmp_path, "p1") == 0
    assert forget_person(tmp_path / "missing", "p0") == 0


def test_duplicates_are_removed_whoever_gave_them() -> None:
    same = {"question": "Same question?", "answer": "Same answer."}
    records = [
        make_record(1, person="a", **same),
        make_record(2, person="b", **same),  # the same verdict on the same text
        make_record(3, person="a", **same, rating=Rating.BAD),  # a different verdict stays
        make_record(4, person="c", question="Same question?", answer="Other answer."),
        # Redaction makes these two identical: the same text once personal data is gone.
        make_record(5, person="d", question="Mail x@example.org", answer="Done."),
        make_record(6, person="e", question="Mail y@example.net", answer="Done."),
    ]
    data = build_dataset(records, options())
    assert data.counts.duplicates == 2
    assert data.counts.used == 4


def test_records_without_a_verdict_are_ignored() -> None:
    records = [
        make_record(1, rating=None),
        make_record(2, rating=None, correction="Answer number 2."),  # same as the answer
        make_record(3, rating=None, correction="A better answer."),
    ]
    data = build_dataset(records, options())
    assert data.counts.no_verdict == 2
    assert data.counts.used == 1


def test_each_persons_share_is_capped_by_fraction() -> None:
    records = [make_record(i, person="loud") for i in range(1, 201)]
    records += [make_record(1000 + i, person=f"quiet{i % 6}") for i in range(30)]
    data = build_dataset(records, options(max_person_share=0.2))

    people = [r for rows in (data.kto, data.held_out) for r in rows if r["person"] != REPLAY_PERSON]
    per_person = Counter(row["person"] for row in people)
    total = sum(per_person.values())
    assert total == data.counts.used
    assert max(per_person.values()) / total <= 0.2
    assert data.counts.capped == 230 - total
    # The loud person keeps their most recent feedback.
    kept_ids = {row["feedback_id"] for row in people}
    loud_ids = sorted(i for i in kept_ids if i <= 200)
    assert loud_ids == list(range(201 - len(loud_ids), 201))


def test_each_persons_share_is_capped_by_count() -> None:
    records = [make_record(i, person=f"p{i % 2}") for i in range(1, 41)]
    data = build_dataset(records, options(max_person_examples=5))
    assert data.counts.used == 10
    assert data.counts.capped == 30


def test_too_few_people_for_the_share_leaves_nothing_to_train_on() -> None:
    records = [make_record(i, person=f"p{i % 3}") for i in range(1, 31)]
    data = build_dataset(records, options(max_person_share=0.25))
    assert data.counts.used == 0
    assert data.counts.person_cap == 0


def test_untrusted_feedback_can_be_excluded_or_weighted_down() -> None:
    trusted = [make_record(i, person=f"s{i % 5}") for i in range(1, 101)]
    public = [make_record(1000 + i, person=f"t{i % 5}", trusted=False) for i in range(200)]

    excluded = build_dataset(trusted + public, options(untrusted_weight=0.0))
    assert excluded.counts.untrusted_excluded == 200
    assert excluded.counts.used == 100

    halved = build_dataset(trusted + public, options(untrusted_weight=0.5))
    kept_public = halved.counts.used - 100
    assert 70 <= kept_public <= 130
    assert halved.counts.untrusted_subsampled == 200 - kept_public
    # The subsample is seeded: the same options choose the same records.
    again = build_dataset(trusted + public, options(untrusted_weight=0.5))
    assert [r["feedback_id"] for r in again.kto] == [r["feedback_id"] for r in halved.kto]

    full = build_dataset(trusted + public, options(untrusted_weight=1.0))
    assert full.counts.used == 300


def test_held_out_prompts_are_never_trained_on() -> None:
    records = signed_feedback(60, people=10)
    data = build_dataset(records, options(held_out_fraction=0.3))

    def key(prompt: list[dict[str, str]] | tuple[dict[str, str], ...]) -> str:
        return json.dumps(list(prompt))

    trained = {key(row["prompt"]) for row in data.kto}
    held = {key(row["prompt"]) for row in data.held_out}
    assert trained
    assert held
    assert not trained & held
    # Both answers to a held-out prompt are held out together, as a liked/disliked pair.
    assert data.counts.held_out_liked == data.counts.held_out_disliked
    assert all(item.liked == item.completion.endswith(SIGN_OFF) for item in data.eval_items)


def test_corrections_become_preference_pairs_and_supervised_rows() -> None:
    records = [
        make_record(i, rating=Rating.BAD, correction=f"Corrected answer {i}.") for i in range(1, 41)
    ]
    data = build_dataset(records, options(held_out_fraction=0.2, correction_method="dpo"))
    assert data.dpo
    # A correction supersedes the thumb given with it: no KTO row repeats the pair's verdict.
    assert len(data.dpo) == len(data.sft)
    assert not data.kto
    pair = data.dpo[0]
    assert pair["chosen"][0]["content"].startswith("Corrected answer")
    assert pair["rejected"][0]["content"].startswith("Answer number")
    corrections = [i for i in data.eval_items if i.correction]
    assert corrections
    assert all(i.liked for i in corrections)


def test_regression_set_is_fixed_by_its_seed() -> None:
    first = regression_set(12, seed=3)
    assert first == regression_set(12, seed=3)
    assert first != regression_set(12, seed=4)
    assert all(item.reply and item.prompt[0]["role"] == "user" for item in first)


def test_bad_options_are_refused_with_a_clear_message() -> None:
    with pytest.raises(ConfigurationError, match="held_out_fraction"):
        TrainingOptions(held_out_fraction=1.5)
    with pytest.raises(ConfigurationError, match="untrusted_weight"):
        TrainingOptions(untrusted_weight=-0.1)


FIGURES = Figures(
    preference_accuracy=0.5,
    reward_margin=0.0,
    pair_accuracy=0.5,
    pairs=20,
    liked=20,
    disliked=20,
    correction_loss=None,
    corrections=0,
    regression_nll=4.0,
    regression_items=16,
)


def test_the_gate_wants_a_clear_gain_and_little_drift() -> None:
    opts = TrainingOptions()
    better = replace(FIGURES, preference_accuracy=0.9, regression_nll=4.01)
    assert decide(FIGURES, better, opts).passed

    lucky = replace(FIGURES, preference_accuracy=0.75, liked=6, disliked=6)
    decision = decide(replace(FIGURES, liked=6, disliked=6), lucky, opts)
    assert not decision.passed
    assert decision.checks["preference"] is False

    drifted = replace(better, regression_nll=4.2)
    decision = decide(FIGURES, drifted, opts)
    assert not decision.passed
    assert decision.checks == {"preference": True, "regression": False}
    assert "drift +0.200" in decision.reason

    worse_fix = replace(better, correction_loss=2.5, corrections=4)
    decision = decide(replace(FIGURES, correction_loss=2.0, corrections=4), worse_fix, opts)
    assert not decision.passed
    assert decision.checks["corrections"] is False

    nothing = replace(FIGURES, preference_accuracy=None, liked=0)
    assert "no held-out feedback" in decide(nothing, nothing, opts).reason


def test_wilson_lower_bound() -> None:
    assert wilson_lower_bound(1.0, 1, 1.64) < 0.5
    assert 0.8 < wilson_lower_bound(1.0, 19, 1.64) < 0.9
    assert wilson_lower_bound(0.5, 0, 1.64) == 0.0
