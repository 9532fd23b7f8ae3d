"""The real packaged model: loading, answering, streaming, limits, and clear load errors."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from config.settings import Settings
from core.context import ContextBuilder
from core.errors import ModelLoadError
from core.generator import FinishReason, GenerationRequest
from core.types import ChatTurn, Role, StoredMessage, UserProfile, UserRef
from workers.batching import BatchedGenerator
from workers.model import load_model, resolve_source

SYSTEM = ChatTurn(Role.SYSTEM, "You are a helpful assistant. Answer briefly.")


def ask(text: str) -> tuple[ChatTurn, ...]:
    return (SYSTEM, ChatTurn(Role.USER, text))


@pytest.mark.slow
async def test_answers_in_english_and_streams_the_same_text(
    generator: BatchedGenerator,
) -> None:
    stream = generator.generate(
        GenerationRequest(turns=ask("What is the capital of France?"), max_new_tokens=40)
    )
    deltas = [d async for d in stream]
    result = stream.result
    assert "Paris" in result.text
    assert len(deltas) > 1, "the answer should arrive in several pieces"
    assert "".join(deltas).strip() == result.text
    assert result.finish_reason is FinishReason.STOP
    assert 0 < result.completion_tokens <= 40
    assert result.model_version == "SmolLM2-135M-Instruct.Q4_1"
    assert result.first_token_seconds is not None
    assert result.first_token_seconds < result.seconds


@pytest.mark.slow
async def test_stops_at_max_new_tokens(generator: BatchedGenerator) -> None:
    request = GenerationRequest(turns=ask("Write a long story about a dragon."), max_new_tokens=8)
    result = await generator.generate(request).collect()
    assert result.finish_reason is FinishReason.LENGTH
    assert result.completion_tokens == 8


@pytest.mark.slow
async def test_time_limit_cuts_an_answer_short(
    test_settings: Settings, generator: BatchedGenerator
) -> None:
    hurried = BatchedGenerator(
        generator.loaded, test_settings.model_copy(update={"answer_time_limit_s": 0.5})
    )
    try:
        request = GenerationRequest(
            turns=ask("Write a long story about a dragon."), max_new_tokens=400
        )
        result = await hurried.generate(request).collect()
    finally:
        hurried.close()
    assert result.finish_reason is FinishReason.TIME
    assert result.completion_tokens < 400
    assert result.seconds < 3


@pytest.mark.slow
async def test_prompt_budget_holds_in_real_tokens(generator: BatchedGenerator) -> None:
    ada = UserRef("test", "u1", "Ada")
    history = [
        StoredMessage(
            id=i,
            role=Role.USER if i % 2 else Role.ASSISTANT,
            text=f"Turn {i}: the quick brown fox jumps over the lazy dog, {i} times. Ünïcödé ✓",
            user=ada if i % 2 else None,
        )
        for i in range(1, 41)
    ]
    for budget in (120, 300, 700):
        builder = ContextBuilder(generator.tokens, SYSTEM.content, budget)
        report = builder.build(
            history=history, text="And now?", speaker=ada, profile=UserProfile(display_name="Ada")
        )
        assert report.prompt_tokens <= budget
        assert 0 < report.dropped_turns < len(history)
        # The count is the model's own: what generate() sees is exactly what was budgeted.
        result = await generator.generate(
            GenerationRequest(turns=report.turns, max_new_tokens=1)
        ).collect()
        assert result.prompt_tokens == report.prompt_tokens
        # And one more turn would not have fitted.
        kept = len(report.turns) - 2
        one_more = (report.turns[0], builder._turn(history[-kept - 1], False), *report.turns[1:])
        assert generator.tokens.count_chat(one_more, add_generation_prompt=True) > budget


@pytest.mark.slow
def test_cached_model_loads_from_the_cache(
    test_settings: Settings, generator: BatchedGenerator
) -> None:
    again = load_model(test_settings)
    assert again.from_cache
    assert again.device == "cpu"
    assert str(again.dtype) == "torch.float32"


def test_unknown_packaged_model_names_the_setting() -> None:
    with pytest.raises(ModelLoadError, match="PARLEY_MODEL"):
        resolve_source("packaged:gpt-17")


def test_missing_path_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="PARLEY_MODEL"):
        resolve_source(str(tmp_path / "nowhere" / "model.gguf"))
    with pytest.raises(ModelLoadError, match="PARLEY_MODEL"):
        resolve_source("./no/such/folder")


def test_folder_that_is_not_a_model_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"no config\.json"):
        resolve_source(str(tmp_path))


def test_broken_model_folder_gives_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": "big"}))
    settings = Settings(data_dir=tmp_path / "data", model=str(tmp_path))
    with pytest.raises(ModelLoadError, match="Could not load the model") as caught:
        load_model(settings)
    assert "PARLEY_MODEL" in str(caught.value)


@pytest.mark.slow
async def test_closing_a_stream_stops_the_model(generator: BatchedGenerator) -> None:
    long = GenerationRequest(turns=ask("Write a long story about a dragon."), max_new_tokens=400)
    stream = generator.generate(long)
    await anext(stream)
    await stream.aclose()
    # The closed answer leaves the batch at the next step instead of decoding 400 tokens
    # (about 30 s here) beside the next one, which then answers within seconds.
    started = time.perf_counter()
    await generator.generate(GenerationRequest(turns=ask("Say hi."), max_new_tokens=4)).collect()
    assert time.perf_counter() - started < 10
