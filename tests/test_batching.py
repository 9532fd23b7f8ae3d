"""Continuous batching with the real packaged model: the same answers, served together.

Every answer is checked against plain ``model.generate`` answering the same prompt alone
(greedy, same settings), so padding, merging and trimming the batch must not change a
single token.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from config.settings import Settings
from core.errors import GenerationError
from core.generator import FinishReason, GenerationRequest, GenerationResult
from core.streaming import Streamed
from core.types import ChatTurn, Role
from tests.model_fixtures import plain_generate
from workers import batch_engine
from workers.batching import BatchedGenerator
from workers.detokenizer import Detokenizer

pytestmark = pytest.mark.slow

SYSTEM = ChatTurn(Role.SYSTEM, "You are a helpful assistant. Answer briefly.")

# Prompts of different lengths and answer budgets; the first stops on its own before its budget.
CASES = (
    ("Hi", 16),
    ("Write a long story about a dragon who loves tea and lives in a castle on a mountain.", 24),
    ("What is the capital of France?", 20),
    ("List three colours.", 16),
    (
        "Explain what a neural network is, in two sentences, for a child of ten years old "
        "who likes football.",
        20,
    ),
)
LONG = GenerationRequest(
    turns=(SYSTEM, ChatTurn(Role.USER, "Write a long story about a dragon.")), max_new_tokens=400
)


def request(case: int) -> GenerationRequest:
    text, max_new = CASES[case]
    return GenerationRequest(turns=(SYSTEM, ChatTurn(Role.USER, text)), max_new_tokens=max_new)


@dataclasses.dataclass
class Answer:
    """What a caller saw: the deltas and the result."""

    deltas: list[str]
    result: GenerationResult


async def answer(
    stream: Streamed[GenerationResult], started: asyncio.Event | None = None
) -> Answer:
    """Read a stream to its end; set ``started`` once three deltas have arrived."""
    deltas = []
    async for delta in stream:
        deltas.append(delta)
        if started is not None and len(deltas) == 3:
            started.set()
    return Answer(deltas, stream.result)


@pytest.fixture(scope="module")
def references(generator: BatchedGenerator, test_settings: Settings) -> list[GenerationResult]:
    """Each case answered alone by plain ``model.generate``."""
    return [plain_generate(generator.loaded, test_settings, request(i)) for i in range(len(CASES))]


@pytest.fixture
def make_batched(
    generator: BatchedGenerator, test_settings: Settings
) -> Iterator[Callable[..., BatchedGenerator]]:
    """Batched generators over the session's model, with settings changed as asked."""
    made: list[BatchedGenerator] = []

    def make(model: Any = None, **updates: Any) -> BatchedGenerator:
        loaded = generator.loaded
        if model is not None:
            loaded = dataclasses.replace(loaded, model=model)
        made.append(BatchedGenerator(loaded, test_settings.model_copy(update=updates)))
        return made[-1]

    yield make
    for batched in made:
        batched.close()


def assert_same(got: Answer, expected: GenerationResult) -> None:
    assert got.result.text == expected.text
    assert got.result.completion_tokens == expected.completion_tokens
    assert got.result.prompt_tokens == expected.prompt_tokens
    assert got.result.finish_reason is expected.finish_reason
    assert "".join(got.deltas).strip() == got.result.text


async def test_answers_together_equal_answers_alone(
    make_batched: Callable[..., BatchedGenerator], references: list[GenerationResult]
) -> None:
    batched = make_batched()
    got = await asyncio.gather(*(answer(batched.generate(request(i))) for i in range(len(CASES))))
    for i, expected in enumerate(references):
        assert_same(got[i], expected)
    # Different budgets are honoured, and an answer that stops leaves while others go on.
    assert [g.result.finish_reason for g in got] == [FinishReason.STOP] + [FinishReason.LENGTH] * 4
    assert [g.result.completion_tokens for g in got[1:]] == [m for _, m in CASES[1:]]
    # All five ran in the same steps: one at a time would need a step per token.
    assert batched.stats.peak_batch == len(CASES)
    assert batched.stats.steps <= max(m for _, m in CASES) + len(CASES)
    assert all(g.result.first_token_seconds is not None for g in got)


async def test_answers_joining_a_running_batch_equal_answers_alone(
    make_batched: Callable[..., BatchedGenerator], references: list[GenerationResult]
) -> None:
    batched = make_batched()
    first = [asyncio.Event(), asyncio.Event()]
    early = [
        asyncio.create_task(answer(batched.generate(request(case)), first[i]))
        for i, case in enumerate((1, 4))
    ]
    await asyncio.wait_for(asyncio.gather(*(e.wait() for e in first)), 30)
    late = [asyncio.create_task(answer(batched.generate(request(i)))) for i in (0, 2, 3)]
    got = dict(zip((1, 4, 0, 2, 3), await asyncio.gather(*early, *late), strict=True))
    for i, expected in enumerate(references):
        assert_same(got[i], expected)
    assert batched.stats.prefills >= 2
    assert batched.stats.peak_batch == len(CASES)


async def test_a_cancelled_answer_leaves_without_disturbing_the_others(
    make_batched: Callable[..., BatchedGenerator], references: list[GenerationResult]
) -> None:
    batched = make_batched()
    others = [asyncio.create_task(answer(batched.generate(request(i)))) for i in range(len(CASES))]
    long = batched.generate(LONG)
    for _ in range(3):
        await anext(long)
    await long.aclose()
    for i, got in enumerate(await asyncio.gather(*others)):
        assert_same(got, references[i])
    # The 400-token answer is gone: the engine goes idle instead of decoding it.
    steps = batched.stats.steps
    await asyncio.sleep(0.5)
    assert batched.stats.steps == steps
    assert batched.stats.steps < max(m for _, m in CASES) + len(CASES) + 2


async def test_time_limit_cuts_answers_short(make_batched: Callable[..., BatchedGenerator]) -> None:
    batched = make_batched(answer_time_limit_s=0.5)
    results = await asyncio.gather(
        batched.generate(LONG).collect(), batched.generate(LONG).collect()
    )
    for result in results:
        assert result.finish_reason is FinishReason.TIME
        assert 0 < result.completion_tokens < 400
        assert result.seconds < 3


async def test_requests_beyond_the_batch_size_wait_their_turn(
    make_batched: Callable[..., BatchedGenerator], references: list[GenerationResult]
) -> None:
    batched = make_batched(max_batch_size=2)
    got = await asyncio.gather(*(answer(batched.generate(request(i))) for i in range(len(CASES))))
    for i, expected in enumerate(references):
        assert_same(got[i], expected)
    assert batched.stats.peak_batch == 2
    assert batched.stats.finished == len(CASES)


async def test_newcomers_beyond_the_prefill_budget_join_at_later_steps(
    make_batched: Callable[..., BatchedGenerator],
    references: list[GenerationResult],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(batch_engine, "PREFILL_TOKENS", 100)  # about one prompt per prefill
    batched = make_batched()
    got = await asyncio.gather(*(answer(batched.generate(request(i))) for i in range(len(CASES))))
    for i, expected in enumerate(references):
        assert_same(got[i], expected)
    assert batched.stats.prefills >= 3
    assert batched.stats.peak_batch > 1


class FlakyModel:
    """The real model, except that the next forward pass of the armed kind raises."""

    def __init__(self, model: Any) -> None:
        self._model = model
        self.fail_next: str | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def __call__(self, **kwargs: Any) -> Any:
        kind = "prefill" if kwargs["input_ids"].shape[1] > 1 else "decode"
        if self.fail_next == kind:
            self.fail_next = None
            raise RuntimeError(f"injected {kind} failure")
        return self._model(**kwargs)


async def test_a_failing_step_fails_its_answers_and_the_engine_goes_on(
    make_batched: Callable[..., BatchedGenerator],
    generator: BatchedGenerator,
    references: list[GenerationResult],
) -> None:
    flaky = FlakyModel(generator.loaded.model)
    batched = make_batched(model=flaky)
    started = [asyncio.Event(), asyncio.Event()]
    doomed = [asyncio.create_task(answer(batched.generate(request(i)), started[i])) for i in (0, 1)]
    await asyncio.wait_for(asyncio.gather(*(e.wait() for e in started)), 30)
    flaky.fail_next = "decode"
    for task in doomed:
        with pytest.raises(GenerationError, match="injected decode failure"):
            await asyncio.wait_for(task, 30)
    assert batched.stats.failed == 2
    assert_same(await answer(batched.generate(request(2))), references[2])


async def test_a_failing_prefill_fails_only_the_newcomers(
    make_batched: Callable[..., BatchedGenerator],
    generator: BatchedGenerator,
    references: list[GenerationResult],
) -> None:
    flaky = FlakyModel(generator.loaded.model)
    batched = make_batched(model=flaky)
    started = asyncio.Event()
    running = asyncio.create_task(answer(batched.generate(request(1)), started))
    await asyncio.wait_for(started.wait(), 30)
    flaky.fail_next = "prefill"
    with pytest.raises(GenerationError, match="injected prefill failure"):
        await asyncio.wait_for(batched.generate(request(3)).collect(), 30)
    assert_same(await running, references[1])
    assert_same(await answer(batched.generate(request(2))), references[2])


def test_callers_on_different_event_loops_are_served_together(
    make_batched: Callable[..., BatchedGenerator], references: list[GenerationResult]
) -> None:
    batched = make_batched()
    barrier = threading.Barrier(2)
    got: dict[int, Answer] = {}

    def caller(case: int) -> None:  # as a Celery worker thread would: a loop of its own
        barrier.wait()
        got[case] = asyncio.run(answer(batched.generate(request(case))))

    threads = [threading.Thread(target=caller, args=(case,)) for case in (1, 4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert_same(got[1], references[1])
    assert_same(got[4], references[4])
    assert batched.stats.peak_batch == 2


async def test_seeded_sampling_does_not_depend_on_the_company(
    make_batched: Callable[..., BatchedGenerator],
) -> None:
    batched = make_batched(temperature=0.8, seed=7)
    alone = await batched.generate(request(1)).collect()
    together = await asyncio.gather(*(batched.generate(request(i)).collect() for i in (3, 1, 2)))
    assert together[1].text == alone.text
    assert alone.text


async def test_closing_fails_unfinished_answers_and_refuses_new_ones(
    make_batched: Callable[..., BatchedGenerator],
) -> None:
    batched = make_batched()
    stream = batched.generate(LONG)
    await anext(stream)
    started = time.perf_counter()
    await asyncio.to_thread(batched.close)
    assert time.perf_counter() - started < 5
    with pytest.raises(GenerationError, match="shut down"):
        await stream.collect()
    with pytest.raises(GenerationError, match="shutting down"):
        await batched.generate(request(2)).collect()


def test_streamed_text_never_splits_a_character(generator: BatchedGenerator) -> None:
    tokenizer = generator.loaded.tokenizer
    text = "日本語 😀 ok\nnext: ünï ✓"
    detokenizer = Detokenizer(tokenizer)
    deltas = [detokenizer.push(token) for token in tokenizer.encode(text)]
    deltas.append(detokenizer.flush())
    assert "".join(deltas) == text
    assert not any("\ufffd" in delta for delta in deltas)
    assert sum(1 for delta in deltas if delta) > 5
