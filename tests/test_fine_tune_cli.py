"""The operator's commands: versions, rates, promote and rollback on the real database."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.settings import Settings
from config.wiring import open_registry, open_store
from core.registry import AdapterStatus, AdapterVersion
from core.types import ChatTurn, ContextReport, ConversationKey, Feedback, Rating, Role
from tests.factories import make_user
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
            path=str(settings.adapters_path / version_id),
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
