"""Fixtures that load the real packaged model once per test session.

The converted model is cached under ``.cache/models`` in the repository (ignored by git),
so only the first run on a machine pays for the GGUF conversion.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from config.settings import Settings
from core.generator import FinishReason, GenerationRequest, GenerationResult
from workers.batching import BatchedGenerator
from workers.model import LoadedModel, stop_token_ids

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
def generator(test_settings: Settings) -> Iterator[BatchedGenerator]:
    """The served generator over the packaged model, loaded once for the whole session."""
    served = BatchedGenerator.from_settings(test_settings)
    yield served
    served.close()


def plain_generate(
    loaded: LoadedModel, settings: Settings, request: GenerationRequest
) -> GenerationResult:
    """``request`` answered by plain greedy ``model.generate``, with the settings' repetition
    penalty: what the served generator must match token for token."""
    import torch

    tokenizer = loaded.tokenizer
    stops = stop_token_ids(tokenizer)
    inputs = tokenizer.apply_chat_template(
        [t.as_dict() for t in request.turns],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    ).to(loaded.device)
    prompt_tokens = int(inputs["input_ids"].shape[1])
    with torch.inference_mode():
        output = loaded.model.generate(
            **inputs,
            max_new_tokens=request.max_new_tokens,
            do_sample=False,
            eos_token_id=stops,
            pad_token_id=tokenizer.pad_token_id,
            repetition_penalty=settings.generation.repetition_penalty,
        )
    new_ids = output[0, prompt_tokens:].tolist()
    stopped = bool(new_ids) and new_ids[-1] in stops
    if stopped:
        new_ids = new_ids[:-1]
    return GenerationResult(
        text=tokenizer.decode(new_ids, skip_special_tokens=True).strip(),
        model_version=loaded.version,
        prompt_tokens=prompt_tokens,
        completion_tokens=len(new_ids),
        finish_reason=FinishReason.STOP if stopped else FinishReason.LENGTH,
    )
