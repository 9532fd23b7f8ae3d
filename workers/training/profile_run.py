"""Training the packaged profile-following version: SFT only, with the nightly's own parts.

The nightly run (:mod:`.run`) learns from feedback; this entry learns from the rows of
:mod:`.profile_data` instead, with the same pieces: :func:`.train.prepare_model` (a fresh
LoRA on a copy of the base), :func:`.train.train_adapter` (TRL's SFT stage),
:func:`.evaluate.score_model` / :func:`.evaluate.figures` (held-out loss and the chitchat
regression NLL), :func:`.gate.decide` (the nightly gate and its drift limit) and
:mod:`.report` (``report.json`` and ``report.png``). The adapter is saved in fp16 with its
``parley_run.json``; ``--install`` copies it where the package ships it
(``workers/assets/profile_version/``)::

    PARLEY_MODEL_CACHE_DIR=.cache/models PARLEY_CPU_THREADS=2 \\
        python -m workers.training.profile_run --data data/profile_sft \\
        --out data/profile_run --install workers/assets/profile_version
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import shutil
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from config.settings import Settings
from workers.training.dataset import DatasetCounts, EvalItem, FeedbackDataset
from workers.training.evaluate import figures, score_model
from workers.training.gate import decide
from workers.training.options import TrainingOptions
from workers.training.regression import regression_set
from workers.training.report import write_json, write_picture
from workers.training.run import RUN_FILE
from workers.training.train import prepare_model, train_adapter

__all__ = ["PACKAGED_FILES", "main", "save_fp16"]

log = logging.getLogger(__name__)

PACKAGED_FILES = (
    "adapter_config.json",
    "adapter_model.safetensors",
    RUN_FILE,
    "report.json",
    "report.png",
)
"""What ships in ``workers/assets/profile_version/``."""

ALL_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def _read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def save_fp16(adapter_dir: Path, base_model: str) -> None:
    """Rewrite the adapter's weights in fp16 (half the size; merged at load in any dtype),
    naming its base by the ``PARLEY_MODEL`` setting rather than this machine's cache path."""
    from safetensors.torch import load_file, save_file

    weights = adapter_dir / "adapter_model.safetensors"
    tensors = {k: v.half().contiguous() for k, v in load_file(str(weights)).items()}
    save_file(tensors, str(weights), metadata={"format": "pt"})
    config_file = adapter_dir / "adapter_config.json"
    config = json.loads(config_file.read_text(encoding="utf-8"))
    config["base_model_name_or_path"] = base_model
    config_file.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    """Train, judge and save the profile-following adapter (module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m workers.training.profile_run")
    parser.add_argument("--data", type=Path, default=Path("data/profile_sft"))
    parser.add_argument("--out", type=Path, default=Path("data/profile_run"))
    parser.add_argument("--install", type=Path, default=None, help="copy the shipped files here")
    parser.add_argument("--steps", type=int, default=70)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=288)
    parser.add_argument(
        "--top-layers", type=int, default=16, help="LoRA on this many top layers (0: all)"
    )
    parser.add_argument("--held-out", type=int, default=48, help="held-out rows to score")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--parent", type=Path, default=None, help="continue this adapter (its own LoRA shape)"
    )
    ns = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    from workers.model import load_model

    settings = Settings()
    base = load_model(settings)
    total = int(base.model.config.num_hidden_layers)
    top = ns.top_layers if 0 < ns.top_layers < total else 0
    options = TrainingOptions(
        lora_layers=tuple(range(total - top, total)) if top else None,
        lora_r=ns.rank,
        lora_alpha=2 * ns.rank,
        lora_targets=ALL_PROJECTIONS,
        learning_rate=ns.learning_rate,
        max_steps=ns.steps,
        batch_size=ns.batch_size,
        max_length=ns.max_length,
        correction_method="sft",
        min_new_feedback=1,
        seed=ns.seed,
    )
    started = time.perf_counter()
    rows = _read(ns.data / "train.jsonl")
    held = _read(ns.data / "held_out.jsonl")[: ns.held_out]
    items = [
        EvalItem(tuple(r["prompt"]), r["completion"][0]["content"], True, True, str(i))
        for i, r in enumerate(held)
    ]
    counts = DatasetCounts(
        records=len(rows), used=len(rows), sft_rows=len(rows), held_out_corrections=len(items)
    )
    data = FeedbackDataset(sft=rows, eval_items=items, counts=counts)
    regression = regression_set(options.regression_size, options.regression_seed)
    ns.out.mkdir(parents=True, exist_ok=True)
    model = prepare_model(base.model, options, ns.parent)
    adapter_dir = ns.out / "adapter"
    try:

        def score(peft_model: Any, *, adapter: bool) -> Any:
            return score_model(
                peft_model,
                base.tokenizer,
                items,
                regression,
                max_length=options.max_length,
                batch_size=options.eval_batch_size,
                adapter=adapter,
            )

        reference = score(model, adapter=False)
        policy = score(model, adapter=True) if ns.parent is not None else reference
        before = figures(items, policy, reference)
        log.info("Before: %s", before.as_dict())
        training = train_adapter(model, base.tokenizer, data, options, ns.out / "work", base.device)
        after = figures(items, score(model, adapter=True), reference)
        log.info("After: %s", after.as_dict())
        gate = decide(before, after, options)
        model.save_pretrained(str(adapter_dir))
    finally:
        del model
        gc.collect()
        shutil.rmtree(ns.out / "work", ignore_errors=True)
    save_fp16(adapter_dir, settings.llm.name)
    counts_file = ns.data / "counts.json"
    record = {
        "created_at": datetime.now(UTC).isoformat(),
        "base_model": base.version,
        "parent_adapter": str(ns.parent) if ns.parent is not None else None,
        "purpose": "profile-following: answers that use the person's profile",
        "data": json.loads(counts_file.read_text()) if counts_file.is_file() else {},
        "status": "passed" if gate.passed else "rejected",
        "reason": gate.reason,
        "checks": gate.checks,
        "counts": counts.as_dict(),
        "options": options.as_dict(),
        "before": before.as_dict(),
        "after": after.as_dict(),
        "training": training.as_dict(),
        "regression_keys": [item.key for item in regression],
    }
    write_json(adapter_dir / RUN_FILE, record)
    picture = write_picture(
        ns.out / "report.png",
        training=training,
        before=before,
        after=after,
        status=record["status"],
        reason=gate.reason,
    )
    write_json(ns.out / "report.json", {**record, "seconds": time.perf_counter() - started})
    log.info("Profile version %s: %s", record["status"], gate.reason)
    if ns.install is not None:
        ns.install.mkdir(parents=True, exist_ok=True)
        for name in PACKAGED_FILES:
            source = picture.parent / name if name.startswith("report") else adapter_dir / name
            shutil.copy2(source, ns.install / name)
        log.info("Installed into %s", ns.install)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
