"""vLLM's runtime LoRA API, as vLLM documents it, through a local fake of its server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from config.settings import Settings
from core.registry import AdapterVersion
from tests.fakes.openai_server import FakeOpenAIServer
from workers.vllm_lora import LoraError, LoraServer, promotion_blocker

VERSION = AdapterVersion(id="ft-20261205-030000", base_model="m", path="/srv/adapters/ft-1")


@pytest.fixture
def vllm() -> Iterator[FakeOpenAIServer]:
    fake = FakeOpenAIServer(models=("m",))
    fake.start()
    yield fake
    fake.stop()


def settings(server: FakeOpenAIServer, tmp_path: Path, **extra: object) -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        data_dir=tmp_path,
        engine="openai",
        openai_base_url=server.base_url,
        openai_model="m",
        **extra,
    )


def test_load_and_unload_are_idempotent(vllm: FakeOpenAIServer) -> None:
    server = LoraServer(vllm.base_url)
    server.load("a", "/srv/a")
    server.load("a", "/srv/a")  # every worker loads it: the second is told it is there
    assert vllm.lora == {"a": "/srv/a"}
    server.unload("a")
    server.unload("a")
    assert vllm.lora == {}


def test_a_folder_the_server_cannot_read_is_named(vllm: FakeOpenAIServer) -> None:
    vllm.readable = False
    with pytest.raises(LoraError, match="No adapter found for /srv/a"):
        LoraServer(vllm.base_url).load("a", "/srv/a")


def test_a_server_without_the_runtime_api_says_how_to_start_it(vllm: FakeOpenAIServer) -> None:
    vllm.lora_enabled = False
    with pytest.raises(LoraError, match="--enable-lora"):
        LoraServer(vllm.base_url).load("a", "/srv/a")


def test_promotion_is_free_for_the_in_process_engine(tmp_path: Path) -> None:
    assert promotion_blocker(Settings(_env_file=None, data_dir=tmp_path), VERSION) is None  # type: ignore[call-arg]


def test_promotion_on_a_server_without_lora_says_why(
    vllm: FakeOpenAIServer, tmp_path: Path
) -> None:
    reason = promotion_blocker(settings(vllm, tmp_path), VERSION)
    assert reason is not None
    assert "PARLEY_OPENAI_LORA" in reason


def test_promotion_on_vllm_loads_the_version_first(vllm: FakeOpenAIServer, tmp_path: Path) -> None:
    assert promotion_blocker(settings(vllm, tmp_path, openai_lora=True), VERSION) is None
    assert vllm.lora == {VERSION.id: VERSION.path}


def test_promotion_on_vllm_that_cannot_read_the_folder_says_why(
    vllm: FakeOpenAIServer, tmp_path: Path
) -> None:
    vllm.readable = False
    reason = promotion_blocker(settings(vllm, tmp_path, openai_lora=True), VERSION)
    assert reason is not None
    assert "No adapter found" in reason
