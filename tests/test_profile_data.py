"""The profile-following data set: Parley's own prompts, every kind of use, no held-out leak."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from config.settings import Settings
from core.context import ContextBuilder
from core.generator import WordTokenCounter
from core.prompt_guard import PromptGuard
from core.responder import UPSET_GUIDANCE
from core.safety import Safety
from core.types import UserProfile
from workers.training.profile_data import (
    EVAL,
    TRAIN,
    build_rows,
    eval_probes,
    eval_terms,
    held_out_rows,
    mentions,
    prompt_for,
)
from workers.training.profile_eval import claims_name
from workers.training.profile_pools import Pools
from workers.training.regression import regression_set

NAME = re.compile(r"The user's name is ([^.\n]+)\.")


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(data_dir=tmp_path_factory.mktemp("data"), _env_file=None)  # type: ignore[call-arg]


@pytest.fixture(scope="module")
def rows(settings: Settings) -> list[dict[str, Any]]:
    return build_rows(settings, WordTokenCounter(), people=150, chitchat_share=0.2, seed=3)


def _text(row: dict[str, Any]) -> str:
    return "\n".join(m["content"] for m in [*row["prompt"], *row["completion"]])


def _keys(pools: Pools) -> dict[str, set[str]]:
    return {
        "names": {n.lower() for n in pools.names},
        "places": {p.lower() for p in pools.places},
        "jobs": set(pools.jobs),
        "pets": {pet for _, pet in pools.pets},
        "hobbies": {h for h, _, _ in pools.hobbies},
        "diets": {d for d, _, _ in pools.diets},
        "topics": {t.question for t in pools.topics},
        "parley": set(pools.parley_questions),
        "upset": set(pools.upset),
    }


def test_the_training_and_evaluation_pools_are_disjoint() -> None:
    train, held = _keys(TRAIN), _keys(EVAL)
    for pool, values in train.items():
        assert not values & held[pool], pool


def test_no_evaluation_name_place_or_fact_appears_in_a_training_row(
    rows: list[dict[str, Any]],
) -> None:
    terms = eval_terms()
    leaks = [(row["kind"], mentions(_text(row), terms)) for row in rows]
    assert [leak for leak in leaks if leak[1] is not None] == []


def test_the_regression_set_is_never_trained_on(rows: list[dict[str, Any]]) -> None:
    chitchat = {row["key"] for row in rows if row["kind"] == "chitchat"}
    assert chitchat
    assert not chitchat & {item.key for item in regression_set(32, 0)}


def test_every_use_of_a_profile_is_covered(rows: list[dict[str, Any]]) -> None:
    kinds = {row["kind"] for row in rows}
    assert {
        "name",
        "greeting",
        "fact_recall",
        "fact_use",
        "parley",
        "tone",
        "length",
        "upset",
        "chitchat",
    } <= kinds
    upset = [row for row in rows if row["kind"] == "upset"]
    assert all(UPSET_GUIDANCE in row["prompt"][0]["content"] for row in upset)


def test_the_data_is_seeded(settings: Settings, rows: list[dict[str, Any]]) -> None:
    again = build_rows(settings, WordTokenCounter(), people=150, chitchat_share=0.2, seed=3)
    other = build_rows(settings, WordTokenCounter(), people=150, chitchat_share=0.2, seed=4)
    assert again == rows
    assert other != rows


def test_prompts_are_the_ones_the_conversation_service_builds(settings: Settings) -> None:
    tokens = WordTokenCounter()
    profile = UserProfile(display_name="Amara", preferences={"tone": "formal"})
    canary = "PX-0123456789AB"
    built = prompt_for(settings, tokens, profile, "What is my name?", canary=canary)
    # As core.conversation builds its responder's context from the settings.
    service = ContextBuilder(
        tokens,
        Safety(guard=PromptGuard(canary)).instructions(settings.conversation.system_prompt),
        settings.prompt_budget,
        settings.conversation.assistant_name,
        profile_budget=settings.conversation.profile_tokens,
    )
    report = service.build(history=(), text="What is my name?", speaker=None, profile=profile)
    assert built == [turn.as_dict() for turn in report.turns]
    assert "The user's name is Amara." in built[0]["content"]
    assert "Use a formal tone." in built[0]["content"]


def test_answers_use_the_profile_and_parley_keeps_its_name(rows: list[dict[str, Any]]) -> None:
    for row in rows:
        found = NAME.search(row["prompt"][0]["content"])
        answer = row["completion"][0]["content"]
        if row["kind"] in ("name", "greeting"):
            assert found is not None
            assert found.group(1) in answer
        if row["kind"] == "parley":
            assert "Parley" in answer
            assert found is None or not claims_name(answer, found.group(1))


def test_short_answers_are_at_most_half_as_long_as_detailed_ones(
    rows: list[dict[str, Any]],
) -> None:
    lengths: dict[str, list[int]] = {"short": [], "detailed": []}
    for row in rows:
        if row["kind"] != "length":
            continue
        system = row["prompt"][0]["content"]
        which = "short" if "Keep your answers short" in system else "detailed"
        lengths[which].append(len(row["completion"][0]["content"].split()))
    assert lengths["short"]
    assert lengths["detailed"]
    assert max(lengths["short"]) * 2 <= min(lengths["detailed"])


def test_evaluation_probes_and_held_out_rows_come_from_the_evaluation_pools(
    settings: Settings,
) -> None:
    probes = eval_probes(6, 0)
    assert {p.persona.name for p in probes} <= set(EVAL.names)
    pairs: dict[tuple[str | None, str | None], set[str]] = {}
    for probe in probes:
        if probe.kind == "length":
            pairs.setdefault((probe.persona.name, probe.topic), set()).add(
                probe.persona.length or ""
            )
    assert pairs
    assert all(kinds == {"short", "detailed"} for kinds in pairs.values())
    held = held_out_rows(settings, WordTokenCounter(), people=6, seed=0)
    names = {m.group(1) for row in held if (m := NAME.search(row["prompt"][0]["content"]))}
    assert names
    assert names <= set(EVAL.names)


def test_the_command_writes_the_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from workers.training import profile_data

    monkeypatch.setattr("workers.model.load_tokenizer", lambda _settings: WordTokenCounter())
    monkeypatch.setenv("PARLEY_DATA_DIR", str(tmp_path / "data"))
    out = tmp_path / "sft"
    assert profile_data.main(["--out", str(out), "--people", "20", "--eval-people", "3"]) == 0
    assert {p.name for p in out.iterdir()} == {
        "train.jsonl",
        "held_out.jsonl",
        "eval.jsonl",
        "counts.json",
    }


def test_the_style_stage_contrasts_length_and_tone_without_leaks(settings: Settings) -> None:
    from workers.training.profile_data import style_rows

    rows = style_rows(settings, WordTokenCounter(), people=40, chitchat_share=0.1, seed=1)
    terms = eval_terms()
    assert all(mentions(_text(row), terms) is None for row in rows)
    kinds = [row["kind"] for row in rows]
    assert kinds.count("length") >= 80
    assert kinds.count("tone") >= 80
    formal = [
        row["completion"][0]["content"]
        for row in rows
        if row["kind"] == "tone" and "Use a formal tone." in row["prompt"][0]["content"]
    ]
    assert formal
    assert not any(re.search(r"\b\w+'(m|re|s|ve|ll|d|t)\b", answer) for answer in formal)


def test_the_length_stage_ends_short_answers_after_their_core(settings: Settings) -> None:
    from workers.training.profile_length import length_rows

    rows = length_rows(settings, WordTokenCounter(), people=40, chitchat_share=0.1, seed=2)
    terms = eval_terms()
    assert all(mentions(_text(row), terms) is None for row in rows)
    cores = {topic.question: topic.core for topic in TRAIN.topics}
    answers: dict[str, list[tuple[str, str]]] = {"short": [], "detailed": []}
    for row in rows:
        if row["kind"] == "length":
            which = (
                "short" if "Keep your answers short" in row["prompt"][0]["content"] else "detailed"
            )
            answers[which].append((row["prompt"][-1]["content"], row["completion"][0]["content"]))
    assert len(answers["short"]) == len(answers["detailed"]) == 80  # two questions per person
    assert all(answer == cores[question] for question, answer in answers["short"])
    for question, answer in answers["detailed"]:
        assert answer.startswith(cores[question])
        assert len(cores[question].split()) * 2 <= len(answer.split())
        assert "Here are some more details" not in answer
    assert {"tone", "name", "chitchat"} <= {row["kind"] for row in rows}
