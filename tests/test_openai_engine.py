"""The openai engine against a scripted OpenAI-compatible server: streaming and failures.

The same engine against a real server (llama.cpp's) is in test_openai_server.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from config.settings import Settings
from core.errors import ConfigurationError, GenerationError
from core.generator import FinishReason, GenerationRequest
from core.registry import AdapterVersion
from core.types import ChatTurn, Role
from tests.fakes.openai_server import FakeOpenAIServer, Plan
from workers.openai_engine import (
    OpenAIGenerator,
    RetryPolicy,
    check_server,
    retry_after_seconds,
)
from workers.token_estimate import EstimatedTokenCounter

FAST_RETRY = RetryPolicy(first_s=0.05, factor=2.0, max_s=0.2)


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    fake = FakeOpenAIServer(models=("fake-model", "other"), api_key="sk-test")
    fake.start()
    yield fake
    fake.stop()


def settings_for(server: FakeOpenAIServer, tmp_path: Path, **extra: object) -> Settings:
    values: dict[str, object] = {
        "data_dir": tmp_path,
        "engine": "openai",
        "openai_base_url": server.base_url,
        "openai_api_key": "sk-test",
        "openai_model": "fake-model",
        "answer_time_limit_s": 5.0,
        **extra,
    }
    return Settings(_env_file=None, **values)  # type: ignore[call-arg, arg-type]


def request(text: str = "hi", max_new_tokens: int = 32) -> GenerationRequest:
    turns = (ChatTurn(Role.SYSTEM, "Be brief."), ChatTurn(Role.USER, text))
    return GenerationRequest(turns=turns, max_new_tokens=max_new_tokens, request_id="m1")


def engine(server: FakeOpenAIServer, tmp_path: Path, **extra: object) -> OpenAIGenerator:
    settings = settings_for(server, tmp_path, **extra)
    return OpenAIGenerator(settings, check_server(settings), retry=FAST_RETRY)


async def collect(generator: OpenAIGenerator, req: GenerationRequest) -> tuple[list[str], object]:
    stream = generator.generate(req)
    deltas = [delta async for delta in stream]
    return deltas, stream.result


async def test_streams_deltas_then_a_result_with_the_servers_usage(
    server: FakeOpenAIServer, tmp_path: Path
) -> None:
    generator = engine(server, tmp_path, temperature=0.0, seed=7)
    deltas, result = await collect(generator, request())
    assert deltas == ["Hello", " from", " the", " fake", " server."]
    assert result.text == "Hello from the fake server."  # type: ignore[attr-defined]
    assert result.model_version == "fake-model"  # type: ignore[attr-defined]
    assert result.finish_reason is FinishReason.STOP  # type: ignore[attr-defined]
    assert result.completion_tokens == 5  # type: ignore[attr-defined]
    sent = server.requests[0]
    assert sent["stream"] is True
    assert sent["stream_options"] == {"include_usage": True}
    assert sent["temperature"] == 0.0
    assert sent["seed"] == 7
    assert sent["messages"][-1] == {"role": "user", "content": "hi"}


async def test_answer_length_is_the_servers_max_tokens(
    server: FakeOpenAIServer, tmp_path: Path
) -> None:
    deltas, result = await collect(engine(server, tmp_path), request(max_new_tokens=2))
    assert deltas == ["Hello", " from"]
    assert result.finish_reason is FinishReason.LENGTH  # type: ignore[attr-defined]
    assert server.requests[0]["max_tokens"] == 2


async def test_a_server_that_refuses_stream_options_is_asked_without_them(
    server: FakeOpenAIServer, tmp_path: Path
) -> None:
    server.stream_options = False
    generator = engine(server, tmp_path)
    deltas, result = await collect(generator, request())
    assert "".join(deltas) == "Hello from the fake server."
    assert result.prompt_tokens > 0  # type: ignore[attr-defined]
    assert "stream_options" not in server.requests[-1]
    await collect(generator, request())  # remembered: asked once
    assert len(server.requests) == 3


async def test_a_refused_request_is_a_generation_error_with_the_servers_words(
    server: FakeOpenAIServer, tmp_path: Path
) -> None:
    server.plans = [Plan(status=400)]
    with pytest.raises(GenerationError, match=r"HTTP 400.*planned 400"):
        await collect(engine(server, tmp_path), request())


async def test_5xx_is_retried_with_backoff(server: FakeOpenAIServer, tmp_path: Path) -> None:
    server.plans = [Plan(status=503), Plan(status=500)]
    deltas, _ = await collect(engine(server, tmp_path), request())
    assert "".join(deltas) == "Hello from the fake server."
    assert len(server.requests) == 3


async def test_a_server_down_for_the_whole_time_limit_is_one_generation_error(
    server: FakeOpenAIServer, tmp_path: Path
) -> None:
    server.plans = [Plan(status=502) for _ in range(100)]
    generator = engine(server, tmp_path, answer_time_limit_s=1.0)
    started = time.perf_counter()
    with pytest.raises(GenerationError, match="HTTP 502; gave up after"):
        await collect(generator, request())
    assert time.perf_counter() - started < 3.0  # the limit, plus a loaded machine's slack


async def test_429_waits_what_retry_after_says(server: FakeOpenAIServer, tmp_path: Path) -> None:
    server.plans = [Plan(status=429, headers={"Retry-After": "1"})]
    started = time.perf_counter()
    deltas, _ = await collect(engine(server, tmp_path), request())
    assert time.perf_counter() - started >= 1.0
    assert "".join(deltas) == "Hello from the fake server."


async def test_429_asking_longer_than_the_time_limit_gives_up_at_once(
    server: FakeOpenAIServer, tmp_path: Path
) -> None:
    server.plans = [Plan(status=429, headers={"Retry-After": "30"})]
    started = time.perf_counter()
    with pytest.raises(GenerationError, match="rate limited"):
        await collect(engine(server, tmp_path, answer_time_limit_s=3.0), request())
    assert time.perf_counter() - started < 2.0


async def test_a_stream_cut_midway_is_a_generation_error_after_the_text_so_far(
    server: FakeOpenAIServer, tmp_path: Path
) -> None:
    server.plans = [Plan(cut_after=2)]
    stream = engine(server, tmp_path).generate(request())
    seen: list[str] = []

    async def read() -> None:
        async for delta in stream:
            seen.append(delta)

    with pytest.raises(GenerationError, match="broke off"):
        await read()
    assert seen == ["Hello", " from"]


async def test_a_slow_server_ends_the_answer_at_the_time_limit(
    server: FakeOpenAIServer, tmp_path: Path
) -> None:
    server.plans = [Plan(delay_s=0.4)]
    generator = engine(server, tmp_path, answer_time_limit_s=1.0)
    started = time.perf_counter()
    deltas, result = await collect(generator, request())
    assert time.perf_counter() - started < 3.0  # the limit, plus a loaded machine's slack
    assert 1 <= len(deltas) < 5
    assert result.finish_reason is FinishReason.TIME  # type: ignore[attr-defined]


async def test_a_server_silent_past_the_time_limit_is_a_generation_error(
    server: FakeOpenAIServer, tmp_path: Path
) -> None:
    server.plans = [Plan(stall_s=3.0)]
    with pytest.raises(GenerationError, match="within 1 s"):
        await collect(engine(server, tmp_path, answer_time_limit_s=1.0), request())


async def test_closing_the_stream_stops_the_answer(
    server: FakeOpenAIServer, tmp_path: Path
) -> None:
    server.plans = [Plan(words=tuple(f" w{i}" for i in range(50)), delay_s=0.05)]
    stream = engine(server, tmp_path).generate(request())
    assert await anext(stream) == " w0"
    await stream.aclose()
    assert not stream.finished


async def test_cancelling_the_reader_cancels_the_request(
    server: FakeOpenAIServer, tmp_path: Path
) -> None:
    server.plans = [Plan(words=tuple(f" w{i}" for i in range(50)), delay_s=0.05)]
    stream = engine(server, tmp_path).generate(request())

    async def read() -> None:
        async for _ in stream:
            pass

    task = asyncio.create_task(read())
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_start_up_check_names_the_wrong_key(server: FakeOpenAIServer, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="refused PARLEY_OPENAI_API_KEY"):
        check_server(settings_for(server, tmp_path, openai_api_key="sk-wrong"))


def test_start_up_check_names_the_unknown_model(server: FakeOpenAIServer, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="fake-model, other"):
        check_server(settings_for(server, tmp_path, openai_model="gpt-nope"))


def test_start_up_check_takes_the_only_model(tmp_path: Path) -> None:
    fake = FakeOpenAIServer(models=("solo",)).start()
    try:
        settings = Settings(  # type: ignore[call-arg]
            _env_file=None, data_dir=tmp_path, engine="openai", openai_base_url=fake.base_url
        )
        assert check_server(settings) == "solo"
    finally:
        fake.stop()


def test_start_up_check_names_a_server_that_is_not_there(tmp_path: Path) -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        data_dir=tmp_path,
        engine="openai",
        openai_base_url="http://127.0.0.1:9/v1",
        openai_model="m",
    )
    with pytest.raises(ConfigurationError, match="Cannot reach the model server"):
        check_server(settings, timeout_s=1.0)


def test_the_engine_needs_a_base_url() -> None:
    with pytest.raises(ValueError, match="PARLEY_OPENAI_BASE_URL"):
        Settings(_env_file=None, engine="openai")  # type: ignore[call-arg]


def test_the_prompt_budget_is_the_servers_context_less_the_answer() -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        engine="openai",
        openai_base_url="http://x/v1",
        openai_context_tokens=512,
        max_new_tokens=128,
    )
    assert settings.prompt_budget == 384
    larger = Settings(  # type: ignore[call-arg]
        _env_file=None,
        engine="openai",
        openai_base_url="http://x/v1",
        openai_context_tokens=8192,
        max_new_tokens=4096,
    )
    assert larger.prompt_budget == 4096  # PARLEY_CONTEXT_TOKENS (2048) is the local model's
    with pytest.raises(ValueError, match="PARLEY_OPENAI_CONTEXT_TOKENS"):
        Settings(  # type: ignore[call-arg]
            _env_file=None,
            engine="openai",
            openai_base_url="http://x/v1",
            openai_context_tokens=256,
            max_new_tokens=256,
        )


def test_retry_after_in_seconds_dates_and_milliseconds() -> None:
    assert retry_after_seconds({"retry-after": "3"}) == 3.0
    assert retry_after_seconds({"retry-after-ms": "250"}) == 0.25
    later = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 10))
    assert 8 <= (retry_after_seconds({"retry-after": later}) or 0) <= 10
    assert retry_after_seconds({}) is None


def test_the_estimate_is_conservative_and_learns_from_reported_usage() -> None:
    counter = EstimatedTokenCounter()
    turns = [ChatTurn(Role.USER, "a" * 300)]
    first = counter.count_chat(turns, add_generation_prompt=True)
    assert first == 100 + counter.PER_TURN + counter.GENERATION_PROMPT
    counter.observe(turns, prompt_tokens=2 * first)  # the server counted twice as many
    assert counter.count_chat(turns, add_generation_prompt=True) >= 2 * first


async def test_usage_corrects_the_estimate(server: FakeOpenAIServer, tmp_path: Path) -> None:
    generator = engine(server, tmp_path)
    counter = generator.tokens
    assert isinstance(counter, EstimatedTokenCounter)
    await collect(generator, request("x" * 400))
    assert counter.scale != 1.0


async def test_a_promoted_version_is_loaded_and_named_as_the_model(
    server: FakeOpenAIServer, tmp_path: Path
) -> None:
    from workers.vllm_lora import LoraServer

    settings = settings_for(server, tmp_path, openai_lora=True)
    generator = OpenAIGenerator(
        settings, "fake-model", lora=LoraServer.from_settings(settings), retry=FAST_RETRY
    )
    first = AdapterVersion(id="ft-1", base_model="fake-model", path="/srv/adapters/ft-1")
    generator.use_version(first)
    assert server.lora == {"ft-1": "/srv/adapters/ft-1"}
    _, result = await collect(generator, request())
    assert server.requests[-1]["model"] == "ft-1"
    assert result.model_version == "ft-1"  # type: ignore[attr-defined]
    second = AdapterVersion(id="ft-2", base_model="fake-model", path="/srv/adapters/ft-2")
    generator.use_version(second)
    assert server.lora == {"ft-2": "/srv/adapters/ft-2"}
    generator.use_version(None)  # rolled back to the base model
    assert server.lora == {}
    assert generator.model_version == "fake-model"


async def test_a_version_another_worker_unloaded_falls_back_to_the_base_model(
    server: FakeOpenAIServer, tmp_path: Path
) -> None:
    from workers.vllm_lora import LoraServer

    settings = settings_for(server, tmp_path, openai_lora=True)
    generator = OpenAIGenerator(
        settings, "fake-model", lora=LoraServer.from_settings(settings), retry=FAST_RETRY
    )
    generator.use_version(AdapterVersion(id="ft-1", base_model="fake-model", path="/srv/ft-1"))
    LoraServer(server.base_url).unload("ft-1")  # rolled back by a worker that saw it first
    _, result = await collect(generator, request())
    assert result.model_version == "fake-model"  # type: ignore[attr-defined]


def test_without_lora_the_engine_keeps_the_base_model(
    server: FakeOpenAIServer, tmp_path: Path
) -> None:
    generator = engine(server, tmp_path)
    generator.use_version(AdapterVersion(id="ft-1", base_model="fake-model", path="/x"))
    assert generator.model_version == "fake-model"
    assert server.lora == {}


def test_a_named_local_tokenizer_prices_prompts_exactly(tmp_path: Path) -> None:
    from tests.model_fixtures import MODEL_CACHE
    from workers.model import HfTokenCounter
    from workers.token_estimate import engine_token_counter

    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        data_dir=tmp_path,
        model_cache_dir=MODEL_CACHE,
        engine="openai",
        openai_base_url="http://x/v1",
        openai_tokenizer="packaged:smollm2-135m-instruct",
    )
    assert isinstance(engine_token_counter(settings), HfTokenCounter)
    missing = settings.model_copy(update={"openai_tokenizer": str(tmp_path / "nope.gguf")})
    with pytest.raises(ConfigurationError, match="PARLEY_OPENAI_TOKENIZER"):
        engine_token_counter(missing)
