"""The nightly loop end to end: feedback stored by people, a run, the gate, the registry,
a running generator that switches to the promoted adapter, and a rollback that restores
the answers of before.

Slow: one short LoRA run on the packaged model (about a minute on two cores).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from config.settings import Settings
from config.wiring import open_registry, open_store
from core.db import SqlStore
from core.feedback_data import FeedbackRecord
from core.generator import GenerationRequest, GenerationResult
from core.registry import AdapterStatus
from core.store import Store
from core.types import ContextReport, ConversationKey, Feedback, Role, UserRef, utcnow
from tests.test_training_run import FAST
from workers.batching import BatchedGenerator
from workers.lora import VersionWatcher
from workers.model import LoadedModel, load_model
from workers.nightly import RUNS_FILE, run_nightly
from workers.training.synthetic import signed_feedback

pytestmark = pytest.mark.slow

OPTIONS = FAST  # the short CPU run that learns the sign-off (tests/test_training_run.py)


@pytest.fixture
def settings(test_settings: Settings, tmp_path: Path) -> Settings:
    return test_settings.model_copy(update={"data_dir": tmp_path})


@pytest.fixture(scope="module")
def base(test_settings: Settings) -> LoadedModel:
    return load_model(test_settings)


def store_feedback(store: SqlStore, prompts: int) -> int:
    """People on Slack rate answers: the liked ones end with a sign-off (synthetic)."""
    records = signed_feedback(prompts)
    for n, record in enumerate(records):
        key = ConversationKey("slack", "T1", f"C{n}")
        asker = UserRef("slack", record.person)
        store.append(key, Role.USER, record.prompt[-1].content, user=asker)
        context = ContextReport(
            turns=record.prompt, segments=(), prompt_tokens=20, budget_tokens=1024
        )
        answer = store.append(key, Role.ASSISTANT, record.answer, context=context)
        assert record.rating is not None
        store.save_feedback(Feedback(answer_id=answer.id, user=asker, rating=record.rating))
    return len(records)


def rate_answers(store: Store, records: Sequence[FeedbackRecord]) -> None:
    """Each record's answer, in a Slack conversation of its own, rated by its person."""
    for n, record in enumerate(records):
        key = ConversationKey("slack", "T1", f"C{n}")
        asker = UserRef("slack", record.person)
        context = ContextReport(turns=record.prompt, segments=(), prompt_tokens=9, budget_tokens=99)
        answer = store.append(key, Role.ASSISTANT, record.answer, context=context)
        assert record.rating is not None
        store.save_feedback(Feedback(answer_id=answer.id, user=asker, rating=record.rating))


def ask(generator: BatchedGenerator) -> GenerationResult:
    request = GenerationRequest(
        turns=signed_feedback(1)[0].prompt, max_new_tokens=12, request_id="nightly-test"
    )
    return asyncio.run(generator.generate(request).collect())


def test_a_night_of_feedback_becomes_the_served_adapter_and_rollback_restores(
    settings: Settings, base: LoadedModel
) -> None:
    store = open_store(settings)
    registry = open_registry(store)
    given = store_feedback(store, 40)

    outcome = run_nightly(settings, store, registry, options=OPTIONS, base=base)

    assert outcome.status == "promoted", outcome.reason
    assert outcome.figures["before"]["preference_accuracy"] == pytest.approx(0.5, abs=0.1)
    assert outcome.figures["after"]["preference_accuracy"] >= 0.8
    served = registry.serving()
    assert served is not None
    assert served.id == outcome.version_id
    assert served.parent is None
    assert served.window_until == outcome.until
    assert (Path(served.path) / "adapter_config.json").is_file()
    assert outcome.folder is not None
    assert (outcome.folder / "report.png").is_file()
    lines = [json.loads(line) for line in (settings.versions_path / RUNS_FILE).open()]
    [run] = [line for line in lines if "event" not in line]  # not its plan and progress
    assert (run["status"], run["version"]) == ("promoted", served.id)
    assert outcome.figures["counts"]["records"] == given

    # A running generator (on a model copy of its own, as in a worker) follows the
    # registry: the adapter, then back to the base model.
    served_model = load_model(settings)
    generator = BatchedGenerator(served_model, settings)
    watcher = VersionWatcher(registry, generator, interval_s=60)
    try:
        assert watcher.check()
        tuned = ask(generator)
        assert tuned.model_version == f"{base.source.version}+{served.id}"
        registry.rollback("operator: test")
        assert watcher.check()
        restored = ask(generator)
    finally:
        generator.close()
    reference = BatchedGenerator(load_model(settings), settings)
    try:
        untouched = ask(reference)
    finally:
        reference.close()
    assert restored.model_version == base.source.version
    assert restored.text == untouched.text
    assert registry.versions()[0].status is AdapterStatus.ROLLED_BACK

    # The next night has no new feedback: it skips, says why, and trains nothing.
    later = run_nightly(
        settings, store, registry, options=OPTIONS, base=base, now=utcnow() + timedelta(hours=1)
    )
    assert later.status == "skipped"
    assert "0 new feedback items" in later.reason
    assert later.since == outcome.until
    assert len(registry.versions()) == 1
    store.dispose()


def test_feedback_that_teaches_nothing_is_kept_but_not_served(
    settings: Settings, base: LoadedModel
) -> None:
    store = open_store(settings)
    registry = open_registry(store)
    rate_answers(store, signed_feedback(40, labels="random"))

    outcome = run_nightly(
        settings, store, registry, options=replace(OPTIONS, max_steps=4), base=base
    )

    assert outcome.status == "rejected"
    assert registry.serving() is None
    [kept] = registry.versions()
    assert kept.status is AdapterStatus.REJECTED
    assert kept.reason == outcome.reason
    store.dispose()


def test_a_version_the_model_server_cannot_serve_stays_a_candidate_and_says_why(
    settings: Settings, base: LoadedModel
) -> None:
    from core.versions import ModelVersions

    remote = settings.model_copy(
        update={"engine": "openai", "openai_base_url": "http://gpu-host:8000/v1"}
    )
    store = open_store(remote)
    registry = open_registry(store)
    store_feedback(store, 40)

    outcome = run_nightly(remote, store, registry, options=OPTIONS, base=base)

    assert outcome.status == "candidate", outcome.reason
    assert registry.serving() is None
    [kept] = registry.versions()
    assert kept.status is AdapterStatus.CANDIDATE
    assert "cannot be served" in kept.reason
    assert "PARLEY_OPENAI_LORA" in kept.reason
    listed = ModelVersions(registry, store).versions()  # what /admin versions shows
    assert "cannot be served" in listed
    store.dispose()
