"""Fixtures that load the real packaged model once per test session.

The converted model is cached under ``.cache/models`` in the repository (ignored by git),
so only the first run on a machine pays for the GGUF conversion.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from config.settings import Settings
from workers.generation import TransformersGenerator

REPO = Path(__file__).resolve().parent.parent
MODEL_CACHE = REPO / ".cache" / "models"


@pytest.fixture(scope="session")
def test_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings for the embedded deployment in a temporary data folder, greedy decoding."""
    return Settings(
        data_dir=tmp_path_factory.mktemp("parley-data"),
        model_cache_dir=MODEL_CACHE,
        temperature=0.0,
        max_new_tokens=64,
        _env_file=None,  # type: ignore[call-arg]
    )


@pytest.fixture(scope="session")
def generator(test_settings: Settings) -> Iterator[TransformersGenerator]:
    """The packaged model, loaded once for the whole session."""
    loaded = TransformersGenerator.from_settings(test_settings)
    yield loaded
    loaded.close()
