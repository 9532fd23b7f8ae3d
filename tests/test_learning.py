"""The nightly loop learns what a team teaches: corrections in, answers to new questions changed.

Slow: the real packaged model (its profile-following version served) answers teammates
through the conversation service, the corrections are stored as ``/feedback`` stores them,
the nightly run trains on them and the promoted version answers questions nobody corrected.
``bench/learning.py`` draws the whole curve; this is one point of it, on fewer questions.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from config.parts import open_registry
from config.settings import Settings
from config.wiring import build_embedded
from tests.model_fixtures import MODEL_CACHE
from workers.model import load_model
from workers.nightly import RUNS_FILE, run_nightly
from workers.training.team_corrections import NEW, adopted, ask_new, teach

pytestmark = pytest.mark.slow

QUESTIONS = NEW[:10]


def test_consistent_corrections_change_the_answers_to_new_questions(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        model_cache_dir=MODEL_CACHE,
        temperature=0.0,
        max_new_tokens=40,
        fine_tune_min_feedback=30,
        _env_file=None,  # type: ignore[call-arg]
    )
    parley = build_embedded(settings)
    try:
        assert parley.watcher is not None
        before = asyncio.run(ask_new(parley.service, QUESTIONS, tag="before"))
        assert not any(map(adopted, before)), before

        # 64 corrections: at the default two epochs adoption starts between 40 and 80
        # (bench/learning.py draws the curve), so the test stays clear of that edge.
        given = asyncio.run(teach(parley.service, people=8, per_person=8))
        assert given >= 60  # an answer moderation blocks is not corrected
        stored = parley.store.feedback_records()
        assert len(stored) == given
        assert all(r.correction for r in stored)

        registry = open_registry(parley.store)
        outcome = run_nightly(settings, parley.store, registry, base=load_model(settings))
        assert outcome.status == "promoted", outcome.reason
        assert "corrections adopted" in outcome.reason
        gate = outcome.figures["after"]
        assert gate["adoption"] is not None
        assert gate["adoption"] > 0.5

        parley.watcher.check()
        after = asyncio.run(ask_new(parley.service, QUESTIONS, tag="after"))
    finally:
        parley.close()
    share = sum(map(adopted, after)) / len(after)
    assert share >= 0.5, after
    # The operator's log says how the run was sized and how long it took.
    lines = [json.loads(x) for x in (settings.versions_path / RUNS_FILE).read_text().splitlines()]
    final = [x for x in lines if "event" not in x]
    assert final[-1]["status"] == "promoted"
    assert any(x.get("event") == "plan" for x in lines)
