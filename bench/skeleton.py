"""The packaged model's architecture without its weights, for a machine that cannot carry them.

``bench/gpu.py --export-skeleton DIR`` writes the config and tokenizer here (3.5 MB); on the
GPU machine, ``--model DIR --random-init`` builds the same architecture with random weights:
the same compute per token, noise for text.
"""

from __future__ import annotations

from pathlib import Path

from config import load_settings


def export_skeleton(target: Path) -> None:
    """Write the packaged model's config and tokenizer (no weights) for ``--random-init``."""
    from transformers import AutoConfig

    from workers.model import load_tokenizer

    settings = load_settings()
    tokens = load_tokenizer(settings)
    target.mkdir(parents=True, exist_ok=True)
    tokens._tokenizer.save_pretrained(target)
    from workers.model import _cache_folder, resolve_source

    source = resolve_source(settings.llm.name)
    cached = _cache_folder(source, settings.models_dir) if source.gguf_file else None
    config = AutoConfig.from_pretrained(cached or source.location)
    config.save_pretrained(target)
    size = sum(p.stat().st_size for p in target.iterdir()) / 1e6
    print(f"wrote {target} ({size:.1f} MB): carry it and pass --model {target} --random-init")


def random_init(skeleton: Path, out: Path, dtype: str) -> Path:
    """The skeleton's architecture with random weights, saved where load_model can load it."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    config = AutoConfig.from_pretrained(skeleton)
    model = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, dtype))
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(skeleton).save_pretrained(out)
    return out
