"""The operator's commands (command line and /admin), forgetting training rows, and
moderated answers kept out of training."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.settings import Settings
from config.wiring import build_safety, forgetters, open_registry, open_store
from core.access import AccessPolicy, parse_admins
from core.admin import NOT_ADMIN
from core.privacy import Privacy
from core.registry import AdapterStatus, AdapterVersion, MemoryRegistry
from core.safety import Safety
from core.types import ChatTurn, ContextReport, ConversationKey, Feedback, Rating, Role, UserRef
from core.versions import ModelVersions, register_admin
from tests.factories import make_message, make_service, make_user
from workers.fine_tune import main


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, _env_file=None)  # type: ignore[call-arg]


def _register(settings: Settings, version_id: str, accuracy: tuple[float, float]) -> None:
    store = open_store(settings)
    open_registry(store).add(
        AdapterVersion(
            id=version_id,
            base_model="smollm2",
            path=str(settings.versions_path / version_id),
            status=AdapterStatus.CANDIDATE,
            reason="passed the gate",
            figures={
                "before": {"preference_accuracy": accuracy[0]},
                "after": {"preference_accuracy": accuracy[1]},
            },
        )
    )
    store.dispose()


def test_versions_promote_and_rollback(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    _register(settings, "ft-1", (0.5, 0.9))

    assert main(["versions"], settings) == 0
    listed = capsys.readouterr().out
    assert "Serving: the base model." in listed
    assert "ft-1 · candidate · 0.50 → 0.90 · base" in listed

    assert main(["promote", "ft-1"], settings) == 0
    assert "Serving ft-1" in capsys.readouterr().out
    main(["versions"], settings)
    assert "▶ ft-1 · serving" in capsys.readouterr().out

    assert main(["rollback"], settings) == 0
    assert "serving the base model" in capsys.readouterr().out
    assert main(["rollback"], settings) == 1
    assert "nothing to roll back" in capsys.readouterr().err
    assert main(["promote", "ft-404"], settings) == 1
    assert "no adapter ft-404" in capsys.readouterr().err


def test_rates_per_version(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    store = open_store(settings)
    key = ConversationKey("slack", "T", "C")
    context = ContextReport(
        turns=(ChatTurn(Role.USER, "hi"),), segments=(), prompt_tokens=1, budget_tokens=9
    )
    answer = store.append(key, Role.ASSISTANT, "Hello", model_version="base+ft-1", context=context)
    store.save_feedback(Feedback(answer_id=answer.id, user=make_user(), rating=Rating.GOOD))
    store.dispose()

    assert main(["rates"], settings) == 0

    assert "base+ft-1 · 1 · 1 · 0 · 0 · 100%" in capsys.readouterr().out


async def test_admins_see_versions_and_rates_promote_and_roll_back_in_chat() -> None:
    registry = MemoryRegistry()
    registry.add(AdapterVersion(id="ft-1", base_model="smollm2", path="/adapters/ft-1"))
    access = AccessPolicy(admins=parse_admins(["test:boss"]))
    service, store, _ = make_service(safety=Safety(access=access))
    register_admin(service.admin, ModelVersions(registry, store))
    boss = make_user("boss")

    async def say(text: str, user: UserRef = boss) -> str:
        return (await service.handle(make_message(text, user=user)).collect()).text

    await say("hello")
    assert "ft-1 · candidate" in await say("/admin versions")
    assert "echo-1 · 1 · 0 · 0 · 0" in await say("/admin rates")
    assert await say("/admin promote ft-1", user=make_user("mallory")) == NOT_ADMIN
    assert registry.serving() is None
    assert "Serving ft-1" in await say("/admin promote ft-1")
    served = registry.serving()
    assert served is not None
    assert served.reason == "promoted by test:boss (/admin)"
    assert "serving the base model" in await say("/admin rollback")
    assert "nothing to roll back" in await say("/admin rollback")
    assert "no adapter ft-9" in await say("/admin promote ft-9")


async def test_forget_removes_the_persons_rows_from_training_files(
    settings: Settings,
) -> None:
    from workers.training import build_dataset, write_dataset
    from workers.training.options import TrainingOptions

    store = open_store(settings)
    key = ConversationKey("slack", "T", "C")
    context = ContextReport(
        turns=(ChatTurn(Role.USER, "hi"),), segments=(), prompt_tokens=1, budget_tokens=9
    )
    ada, bob = make_user("ada", platform="slack"), make_user("bob", platform="slack")
    for n in range(6):
        answer = store.append(key, Role.ASSISTANT, f"Hello {n}", context=context)
        for user, rating in ((ada, Rating.GOOD), (bob, Rating.BAD)):
            store.save_feedback(Feedback(answer_id=answer.id, user=user, rating=rating))
    options = TrainingOptions(min_new_feedback=1, max_person_share=None, held_out_fraction=0.5)
    files = write_dataset(
        build_dataset(store.feedback_records(), options), settings.versions_path / "ft-1" / "data"
    )
    ada_key = store.person_key(ada)
    assert ada_key is not None

    def rows_of(key: str) -> int:
        return sum(
            line.count(f'"person": "{key}"') for path in files.values() for line in path.open()
        )

    assert rows_of(ada_key) > 0
    privacy = Privacy(store, forgetters(settings, store, build_safety(settings)))

    removed = privacy.forget(ada)

    assert removed > 0
    assert rows_of(ada_key) == 0
    bob_key = store.person_key(bob)
    assert bob_key is not None
    assert rows_of(bob_key) > 0
    store.dispose()


def test_feedback_on_a_blocked_answer_is_never_training_data(settings: Settings) -> None:
    store = open_store(settings)
    key = ConversationKey("slack", "T", "C")
    asked = store.append(
        key, Role.USER, "say something rude", user=make_user(), expects_answer=True
    )
    claim = store.claim_job(asked.id, lease_seconds=30, max_attempts=3)
    assert claim.token is not None
    context = ContextReport(
        turns=(ChatTurn(Role.USER, "say something rude"),),
        segments=(),
        prompt_tokens=4,
        budget_tokens=9,
    )
    answer = store.finish_job(
        asked.id,
        claim.token,
        "I'd rather not say that.",
        model_version="base",
        context=context,
        blocked_reason="offensive (0.97)",
    )
    assert answer is not None
    store.save_feedback(Feedback(answer_id=answer.id, user=make_user(), rating=Rating.GOOD))

    assert store.feedback_records() == []
    store.dispose()


def test_a_run_that_fails_is_logged_and_leaves_its_feedback_for_the_next(
    settings: Settings,
) -> None:
    import json

    from workers.nightly import RUNS_FILE, run_nightly
    from workers.training import TrainingOptions

    store = open_store(settings)
    key = ConversationKey("slack", "T", "C")
    context = ContextReport(
        turns=(ChatTurn(Role.USER, "hi"),), segments=(), prompt_tokens=1, budget_tokens=9
    )
    answer = store.append(key, Role.ASSISTANT, "Hello", context=context)
    store.save_feedback(Feedback(answer_id=answer.id, user=make_user(), rating=Rating.GOOD))

    class Broken:
        adapter_slot = None
        source = None

    options = TrainingOptions(min_new_feedback=1, max_person_share=None)
    with pytest.raises(AttributeError):
        run_nightly(settings, store, open_registry(store), options=options, base=Broken())

    [run] = [json.loads(line) for line in (settings.versions_path / RUNS_FILE).open()]
    assert run["status"] == "failed"
    assert "AttributeError" in run["reason"]
    later = run_nightly(settings, store, open_registry(store), options=TrainingOptions())
    assert later.status == "skipped"
    assert later.since is None  # the failed run's feedback is still new
    store.dispose()
