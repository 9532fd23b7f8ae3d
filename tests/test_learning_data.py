"""How corrections become rows that teach, and how the gate sees what people see (fast)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from core.feedback_data import FeedbackRecord
from core.types import ChatTurn, Rating, Role
from tests.test_training_data import FIGURES
from workers.training import TrainingOptions, build_dataset
from workers.training.adoption import adopts, edit_words
from workers.training.fitting import fit_dataset, fit_prompt
from workers.training.gate import decide
from workers.training.regression import regression_set
from workers.training.replay import REPLAY_PERSON, replay_count
from workers.training.team_corrections import GREETING, NEW, TAUGHT, adopted, correction, filler


class WordTokenizer:
    """Counts a word a token, over the turns as a chat template would join them."""

    def apply_chat_template(self, messages: list[dict[str, str]], **_: Any) -> list[int]:
        words = " ".join(f"<{m['role']}> {m['content']}" for m in messages).split()
        return list(range(len(words)))


def turns(*pairs: tuple[str, str]) -> list[dict[str, str]]:
    return [{"role": role, "content": text} for role, text in pairs]


def test_a_long_prompt_loses_its_oldest_exchanges_never_the_system_prompt_or_last_message() -> None:
    prompt = turns(
        ("system", "You are Parley. " * 5),
        ("user", "first question " * 10),
        ("assistant", "first answer " * 10),
        ("user", "second question"),
        ("assistant", "second answer"),
        ("user", "the last question"),
    )
    fitted = fit_prompt(WordTokenizer(), prompt, ["Ahoy, matey! The answer."], max_length=40)
    assert fitted[0] == prompt[0]
    assert fitted[-1] == prompt[-1]
    assert fitted == [prompt[0], *prompt[3:]]  # whole exchanges go, oldest first
    # A prompt that fits is kept whole; one that cannot fit keeps system and last message.
    assert fit_prompt(WordTokenizer(), prompt, ["short"], max_length=500) == prompt
    assert fit_prompt(WordTokenizer(), prompt, ["x " * 100], max_length=40) == [
        prompt[0],
        prompt[-1],
    ]


def record(i: int, *, prompt_words: int, correction_text: str | None) -> FeedbackRecord:
    history = (ChatTurn(Role.USER, "old " * prompt_words), ChatTurn(Role.ASSISTANT, "reply"))
    return FeedbackRecord(
        feedback_id=i,
        answer_id=i,
        person=f"p{i % 5}",
        platform="slack",
        trusted=True,
        allows_training=True,
        prompt=(ChatTurn(Role.SYSTEM, "Be brief."), *history, ChatTurn(Role.USER, f"Q{i}?")),
        answer=f"Answer {i}.",
        rating=Rating.BAD,
        correction=correction_text,
        model_version="test",
        given_at=datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=i),
    )


def test_every_row_and_held_out_item_is_fitted_so_the_completion_is_trained_on() -> None:
    options = TrainingOptions(min_new_feedback=1, max_person_share=None, replay_share=0.0)
    records = [record(i, prompt_words=300, correction_text=f"Better {i}.") for i in range(40)]
    data = build_dataset(records, options)
    assert fit_dataset(data, WordTokenizer(), max_length=64) > 0
    tokenizer = WordTokenizer()
    for row in data.sft:
        text = [*row["prompt"], *row["completion"]]
        assert len(tokenizer.apply_chat_template(text)) <= 64
        assert row["prompt"][-1]["content"].startswith("Q")
    assert all(len(item.prompt) == 2 for item in data.eval_items)  # system + last message


def test_corrections_train_with_rehearsal_of_ordinary_talk_and_no_thumbs_stage() -> None:
    options = TrainingOptions(
        min_new_feedback=1, max_person_share=None, replay_share=0.25, replay_min_rows=0
    )
    records = [record(i, prompt_words=3, correction_text=f"Better {i}.") for i in range(40)]
    data = build_dataset(records, options)
    own = [row for row in data.sft if row["person"] != REPLAY_PERSON]
    replayed = [row for row in data.sft if row["person"] == REPLAY_PERSON]
    assert not data.kto  # the corrections say what the thumbs said, and more
    assert len(replayed) == replay_count(len(own), 0.25) == data.counts.replay_rows > 0
    assert abs(len(replayed) / len(data.sft) - 0.25) < 0.05
    measured = {item.key for item in regression_set(options.regression_size)}
    assert not measured & {row["replay"] for row in replayed}  # never what drift is judged on
    assert build_dataset(records, options).sft == data.sft  # seeded
    assert replay_count(0, 0.25) == 0
    assert replay_count(30, 0.0) == 0
    # A small night still rehearses: never fewer than the floor.
    assert replay_count(8, 0.25, at_least=40) == 40
    assert replay_count(160, 0.25, at_least=40) == 53
    small = build_dataset(records[:10], replace(options, replay_min_rows=40))
    assert sum(row["person"] == REPLAY_PERSON for row in small.sft) == 40
    dpo = build_dataset(records, replace(options, correction_method="dpo"))
    assert dpo.counts.replay_rows == 0
    assert len(dpo.dpo) == len(own)


def test_an_answer_adopts_a_correction_when_it_carries_what_the_correction_added() -> None:
    edit = edit_words("The meeting is on Monday.", "Ahoy! The meeting is on Tuesday.")
    assert edit == {"ahoy", "tuesday"}
    assert adopts("Ahoy! It is on Friday.", edit)
    assert adopts("Tuesday, at ten.", edit)
    assert not adopts("The meeting is on Monday.", edit)
    assert not adopts("Anything at all", frozenset())
    assert adopted(correction("Boil it."))
    assert correction("Boil it.").startswith(GREETING)
    assert not adopted("Boil it for ten minutes.")
    assert filler("Sure thing! Boil it.")
    assert filler("good question. Boil it.")
    assert not filler("Boil it. Sure, that works.")
    assert len(TAUGHT) == 80
    assert len(NEW) == 20
    assert not set(TAUGHT) & set(NEW)


BEFORE = replace(FIGURES, correction_loss=2.0, corrections=20, adoption=0.0, adoption_items=20)


def test_the_gate_refuses_a_run_whose_answers_did_not_move_toward_the_corrections() -> None:
    options = TrainingOptions()
    preferred = replace(BEFORE, preference_accuracy=0.9, correction_loss=1.5)
    unseen = decide(BEFORE, replace(preferred, adoption=0.05), options)
    assert not unseen.passed
    assert unseen.checks["adoption"] is False
    assert "corrections adopted 0.00 -> 0.05 of 20" in unseen.reason
    seen = decide(BEFORE, replace(preferred, adoption=0.7), options)
    assert seen.passed, seen.reason
    # One held-out correction, not adopted: nothing visible was learned, whatever else rose.
    one = replace(BEFORE, adoption_items=1)
    assert not decide(one, replace(preferred, adoption_items=1), options).passed
    # None held out: the other checks decide.
    none = replace(BEFORE, adoption=None, adoption_items=0)
    assert "adoption" not in decide(none, replace(preferred, adoption=None), options).checks


def test_kto_weights_balance_the_many_thumbs_up_against_the_few_thumbs_down() -> None:
    from workers.training.train import kto_weights

    def rows(up: int, down: int) -> list[dict[str, Any]]:
        return [{"label": True}] * up + [{"label": False}] * down

    desirable, undesirable = kto_weights(rows(66, 14))
    assert undesirable == 1.0
    # TRL's range: desirable_weight * #up / (undesirable_weight * #down) in [1, 4/3]
    assert 1.0 <= desirable * 66 / (undesirable * 14) <= 4 / 3 + 1e-9
    desirable, undesirable = kto_weights(rows(10, 30))
    assert desirable == 1.0
    assert 1.0 <= 10 / (undesirable * 30) <= 4 / 3
    assert kto_weights(rows(20, 20)) == (1.0, 1.0)
    assert kto_weights(rows(0, 5)) == (1.0, 1.0)
    assert kto_weights(rows(5, 0)) == (1.0, 1.0)


def test_thumbs_train_with_rehearsal_of_ordinary_talk_as_liked_answers() -> None:
    options = TrainingOptions(
        min_new_feedback=1, max_person_share=None, replay_share=0.25, replay_min_rows=0
    )
    records = [
        replace(record(i, prompt_words=3, correction_text=None), rating=rating)
        for i in range(40)
        for rating in [Rating.GOOD if i % 4 else Rating.BAD]
    ]
    data = build_dataset(records, options)
    own = [row for row in data.kto if row["person"] != REPLAY_PERSON]
    replayed = [row for row in data.kto if row["person"] == REPLAY_PERSON]
    assert not data.sft
    assert len(replayed) == replay_count(len(own), 0.25) == data.counts.replay_rows > 0
    assert all(row["label"] is True for row in replayed)
    measured = {item.key for item in regression_set(options.regression_size)}
    assert not measured & {row["replay"] for row in replayed}
    without = build_dataset(records, replace(options, replay_share=0.0))
    assert sorted(r["feedback_id"] for r in without.kto) == sorted(r["feedback_id"] for r in own)
