"""The packaged profile version with the real model: it uses the profile on held-out people.

The benchmark's probes (held-out names, places and facts), answered
greedily by the served generation path, base then packaged version; the thresholds are the
issue's targets. Then the console, as ``make chat`` runs it, with ``/profile name Aiyana``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bots.console import PROMPT_BOT
from config.settings import Settings
from core.registry import AdapterVersion
from tests.console_process import console_process
from tests.model_fixtures import MODEL_CACHE
from workers.batching import BatchedGenerator
from workers.model import load_model
from workers.packaged_version import PACKAGED_VERSION_ID, packaged_folder
from workers.training.profile_data import eval_probes
from workers.training.profile_eval import Results, answer_all, measure, regression_nll, verdicts

pytestmark = pytest.mark.slow

PEOPLE = 12
"""Held-out people: the benchmark's sample (128 probes, about 5 minutes on 2 cores)."""


async def _measure(generator: BatchedGenerator, settings: Settings, people: int) -> Results:
    answers = await answer_all(
        generator, settings, eval_probes(people, 0), 160, canary="PX-00112233AABB"
    )
    results = measure(answers)
    results.regression_nll = regression_nll(generator)
    return results


async def _serve(generator: BatchedGenerator, version: AdapterVersion | None) -> None:
    from core.generator import GenerationRequest
    from core.types import ChatTurn, Role

    generator.use_version(version)
    stream = generator.generate(
        GenerationRequest(turns=(ChatTurn(Role.USER, "Hi"),), max_new_tokens=1)
    )
    async for _ in stream:
        pass


def test_the_packaged_version_meets_the_targets_on_held_out_people(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path, model_cache_dir=MODEL_CACHE, temperature=0.0, _env_file=None
    )  # type: ignore[call-arg]
    loaded = load_model(settings)
    generator = BatchedGenerator(loaded, settings)
    version = AdapterVersion(
        id=PACKAGED_VERSION_ID, base_model=loaded.version, path=str(packaged_folder())
    )

    async def both() -> tuple[Results, Results]:
        await _serve(generator, None)
        base = await _measure(generator, settings, PEOPLE)
        await _serve(generator, version)
        tuned = await _measure(generator, settings, PEOPLE)
        return base, tuned

    try:
        base, tuned = asyncio.run(both())
    finally:
        generator.close()
    met = verdicts(base, tuned)
    assert all(met.values()), (met, tuned.rates, tuned.examples)
    assert tuned.rates["length"] > base.rates["length"]


def test_make_chat_knows_the_name_set_with_profile(tmp_path: Path) -> None:
    run = console_process("/profile name Aiyana\nWhat is my name?\n/quit\n", tmp_path / "data")
    assert run.returncode == 0, run.stderr
    saved, answer = run.stdout.split(PROMPT_BOT)[1:3]
    assert "name: Aiyana" in saved
    assert "Aiyana" in answer
