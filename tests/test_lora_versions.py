"""Serving fine-tuned adapters: a promotion or a rollback changes answers without a restart.

These tests load their own copy of the packaged model (the session's ``generator`` must stay
on the base weights) and make a LoRA adapter with random weights: it changes answers
visibly, which is all serving needs to show. Learning itself is tested with the training.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from config.settings import Settings
from core.generator import GenerationRequest, GenerationResult
from core.registry import AdapterVersion, MemoryRegistry
from core.types import ChatTurn, Role
from workers.batching import BatchedGenerator
from workers.lora import VersionWatcher
from workers.model import LoadedModel, load_model

pytestmark = pytest.mark.slow

QUESTION = GenerationRequest(
    turns=(
        ChatTurn(Role.SYSTEM, "You are a helpful assistant."),
        ChatTurn(Role.USER, "Name three colours."),
    ),
    max_new_tokens=16,
)


@pytest.fixture(scope="module")
def loaded(test_settings: Settings) -> LoadedModel:
    """A model copy of this module's own."""
    return load_model(test_settings)


@pytest.fixture(scope="module")
def adapter_dir(loaded: LoadedModel, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LoRA adapter with random (not identity) weights, saved as PEFT saves any."""
    from peft import LoraConfig, get_peft_model

    folder = tmp_path_factory.mktemp("adapters") / "ft-random"
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"])
    config.init_lora_weights = False  # random B: the adapter changes the answers
    get_peft_model(copy.deepcopy(loaded.model), config).save_pretrained(folder)
    return folder


def version(folder: Path, version_id: str = "ft-1") -> AdapterVersion:
    return AdapterVersion(id=version_id, base_model="smollm2", path=str(folder))


@pytest.fixture
def batched(loaded: LoadedModel, test_settings: Settings) -> Iterator[BatchedGenerator]:
    made = BatchedGenerator(loaded, test_settings)
    yield made
    made.use_version(None)  # the next test starts from the base weights
    asyncio.run(made.generate(QUESTION).collect())
    made.close()


def ask(generator: BatchedGenerator) -> GenerationResult:
    return asyncio.run(generator.generate(QUESTION).collect())


def test_promotion_and_rollback_switch_the_answers_of_a_running_generator(
    batched: BatchedGenerator, adapter_dir: Path
) -> None:
    registry = MemoryRegistry()
    watcher = VersionWatcher(registry, batched, interval_s=60)
    base = ask(batched)

    registry.add(version(adapter_dir))
    registry.promote("ft-1", "passed the gate")
    assert watcher.check()
    tuned = ask(batched)

    assert tuned.model_version == f"{base.model_version}+ft-1"
    assert tuned.text != base.text
    assert not watcher.check()  # nothing changed since

    registry.rollback("operator: answers got worse")
    assert watcher.check()
    restored = ask(batched)

    assert restored.model_version == base.model_version
    assert restored.text == base.text  # greedy decoding: the very same answer again

    registry.promote("ft-1", "operator: promote again")
    watcher.check()
    assert ask(batched).text == tuned.text


def test_answers_running_at_a_switch_finish_on_the_version_they_started_with(
    batched: BatchedGenerator, adapter_dir: Path
) -> None:
    async def run() -> tuple[GenerationResult, GenerationResult]:
        first = batched.generate(QUESTION)
        started = await first.__anext__()  # the first answer is decoding
        assert started
        batched.use_version(version(adapter_dir))
        second = await batched.generate(QUESTION).collect()
        return await first.collect(), second

    before, after = asyncio.run(run())

    assert "+" not in before.model_version
    assert after.model_version.endswith("+ft-1")


def test_switching_to_an_adapter_and_back_to_the_base_model(
    batched: BatchedGenerator, adapter_dir: Path
) -> None:
    base = ask(batched)
    batched.use_version(version(adapter_dir))
    tuned = ask(batched)
    batched.use_version(None)
    again = ask(batched)

    assert tuned.model_version.endswith("+ft-1")
    assert tuned.text != base.text
    assert (again.text, again.model_version) == (base.text, base.model_version)


def test_an_adapter_that_cannot_be_loaded_leaves_the_base_model_serving(
    batched: BatchedGenerator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    base = ask(batched)

    with caplog.at_level(logging.ERROR, logger="workers.batch_engine"):
        batched.use_version(version(tmp_path / "missing", "ft-gone"))
        after = ask(batched)

    assert (after.text, after.model_version) == (base.text, base.model_version)
    assert "switching adapters failed" in caplog.text
    assert "ft-gone" in caplog.text
