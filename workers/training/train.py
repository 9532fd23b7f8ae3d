"""Training a LoRA adapter on feedback rows with PEFT and TRL.

:func:`prepare_model` deep-copies the base model and wraps the copy with PEFT (a fresh LoRA,
or the parent adapter to continue from), so the served model object is never touched: TRL
patches the forward of the model it trains and PEFT injects layers into it, and in the
embedded deployment the same object is answering people meanwhile. The copy costs one more
model's memory for the length of the run.

:func:`train_adapter` runs the stages that have data, one after another on the same adapter:
KTO on thumbs (``prompt``/``completion``/``label``), then DPO (``prompt``/``chosen``/
``rejected``) or SFT (``prompt``/``completion``) on corrections. Each stage runs exactly
the steps :mod:`.sizing` planned for it (its epochs, at most ``max_steps``), logs
``<stage> step i/n loss x, elapsed, left`` lines (and TRL's tqdm bar), hands a progress
record to ``report`` at most every 30 s, and keeps its loss per step for the report. The
GPU is used when the model is on one (bf16 there), the CPU otherwise (fp32, no gradient
checkpointing: both make TRL's trainers many times slower on a CPU).
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from workers.training.dataset import FeedbackDataset
from workers.training.options import TrainingOptions
from workers.training.sizing import Progress, RunPlan, duration, plan_run, stage_examples

__all__ = [
    "ProgressReport",
    "StageLog",
    "TrainingLog",
    "kto_weights",
    "plan_training",
    "prepare_model",
    "train_adapter",
    "training_stages",
]

ProgressReport = Callable[[dict[str, Any]], None]
"""Takes a progress record (stage, step, steps, done, total, loss, elapsed_s, left_s)."""

log = logging.getLogger(__name__)


@dataclass(slots=True)
class StageLog:
    """One training stage: its loss per step and how much it processed."""

    name: str
    rows: int
    steps: int = 0
    examples: int = 0
    tokens: int = 0
    seconds: float = 0.0
    losses: list[tuple[int, float]] = field(default_factory=list)


@dataclass(slots=True)
class TrainingLog:
    """Every stage of one run, with the totals the report and benchmark print."""

    stages: list[StageLog] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        """Wall time spent in the trainers."""
        return sum(s.seconds for s in self.stages)

    @property
    def examples(self) -> int:
        """Training examples processed (a DPO pair counts once)."""
        return sum(s.examples for s in self.stages)

    @property
    def tokens(self) -> int:
        """Tokens processed, as the trainers count them (padding excluded)."""
        return sum(s.tokens for s in self.stages)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready summary with throughput."""
        seconds = self.seconds
        return {
            "stages": [asdict(s) for s in self.stages],
            "seconds": seconds,
            "examples": self.examples,
            "tokens": self.tokens,
            "examples_per_second": self.examples / seconds if seconds else None,
            "tokens_per_second": self.tokens / seconds if seconds else None,
        }


def prepare_model(base_model: Any, options: TrainingOptions, parent: Path | None) -> Any:
    """A PEFT model over a deep copy of ``base_model``: the parent adapter or a fresh LoRA."""
    from peft import LoraConfig, PeftModel, get_peft_model

    work = copy.deepcopy(base_model)
    if parent is not None:
        log.info("Continuing from the adapter in %s", parent)
        return PeftModel.from_pretrained(work, str(parent), is_trainable=True)
    config = LoraConfig(
        r=options.lora_r,
        lora_alpha=options.lora_alpha,
        lora_dropout=options.lora_dropout,
        target_modules=list(options.lora_targets),
        layers_to_transform=list(options.lora_layers) if options.lora_layers else None,
        task_type="CAUSAL_LM",
    )
    return get_peft_model(work, config)


def _progress_callback(stage: StageLog, progress: Progress, report: ProgressReport | None) -> Any:
    from transformers import TrainerCallback

    class Reporter(TrainerCallback):
        """Keeps each logged loss, logs a progress line and reports the due ones."""

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **_: Any) -> None:
            if logs and "loss" in logs:
                loss = float(logs["loss"])
                step = int(state.global_step)
                stage.losses.append((step, loss))
                record = progress.step(stage.name, step, loss, time.perf_counter())
                log.info(
                    "%s step %d/%d loss %.4f (run step %d/%d, %s elapsed, about %s left)",
                    stage.name,
                    step,
                    state.max_steps,
                    loss,
                    record["done"],
                    record["total"],
                    duration(record["elapsed_s"]),
                    duration(record["left_s"]),
                )
                if report is not None and record.pop("due"):
                    report(record)

    return Reporter()


def _common_args(
    options: TrainingOptions, work_dir: Path, device: str, steps: int
) -> dict[str, Any]:
    import dataclasses

    from transformers import TrainingArguments

    on_gpu = device.startswith("cuda")
    # Newer transformers renamed gradient checkpointing; set both names where both exist.
    renamed = "activation_checkpointing" in {f.name for f in dataclasses.fields(TrainingArguments)}
    return {
        **({"activation_checkpointing": False} if renamed else {}),
        "output_dir": str(work_dir),
        "per_device_train_batch_size": options.batch_size,
        "learning_rate": options.learning_rate,
        "num_train_epochs": options.epochs,
        "max_steps": steps,  # the plan's: the epochs' steps, at most options.max_steps
        "lr_scheduler_type": "constant",
        "warmup_steps": 0,
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": [],
        "push_to_hub": False,
        "bf16": on_gpu,
        "fp16": False,
        "gradient_checkpointing": False,
        "use_cpu": not on_gpu,
        "seed": options.seed,
        "data_seed": options.seed,
        "max_length": options.max_length,
        "dataloader_num_workers": 0,
    }


def _run_stage(
    name: str,
    model: Any,
    tokenizer: Any,
    rows: list[dict[str, Any]],
    columns: tuple[str, ...],
    options: TrainingOptions,
    work_dir: Path,
    device: str,
    *,
    progress: Progress | None = None,
    report: ProgressReport | None = None,
) -> StageLog:
    from datasets import Dataset

    stage = StageLog(name=name, rows=len(rows))
    if progress is None:
        progress = Progress(_plan({name: len(rows)}, options), time.perf_counter())
    [planned] = [s for s in progress.plan.stages if s.name == name]
    dataset = Dataset.from_list([{c: row[c] for c in columns} for row in rows])
    args = _common_args(options, work_dir / name, device, planned.steps)
    callbacks = [_progress_callback(stage, progress, report)]
    trainer: Any
    if name == "kto":
        from trl.trainer.kto_config import KTOConfig
        from trl.trainer.kto_trainer import KTOTrainer

        desirable, undesirable = kto_weights(rows)
        log.info("kto: desirable weight %.2f, undesirable weight %.2f", desirable, undesirable)
        config: Any = KTOConfig(
            **args,
            beta=options.kto_beta,
            desirable_weight=desirable,
            undesirable_weight=undesirable,
        )
        trainer = KTOTrainer(
            model=model,
            args=config,
            train_dataset=dataset,
            processing_class=tokenizer,
            callbacks=callbacks,
        )
    elif name == "dpo":
        from trl.trainer.dpo_config import DPOConfig
        from trl.trainer.dpo_trainer import DPOTrainer

        config = DPOConfig(**args, beta=options.dpo_beta)
        trainer = DPOTrainer(
            model=model,
            args=config,
            train_dataset=dataset,
            processing_class=tokenizer,
            callbacks=callbacks,
        )
    else:
        from trl.trainer.sft_config import SFTConfig
        from trl.trainer.sft_trainer import SFTTrainer

        config = SFTConfig(**args)
        trainer = SFTTrainer(
            model=model,
            args=config,
            train_dataset=dataset,
            processing_class=tokenizer,
            callbacks=callbacks,
        )
    log.info("%s: %d rows, training %d steps", name, len(rows), planned.steps)
    started = time.perf_counter()
    progress.start_stage(name, started)
    trainer.train()
    stage.seconds = time.perf_counter() - started
    stage.steps = int(trainer.state.global_step)
    stage.examples = stage_examples(len(dataset), options.batch_size, stage.steps)
    counted = [e["num_tokens"] for e in trainer.state.log_history if "num_tokens" in e]
    stage.tokens = int(float(counted[-1])) if counted else 0
    # The KTO and DPO trainers add a frozen "ref" copy of the adapter as their reference;
    # it must not be saved with the new adapter nor carried into the next stage.
    if "ref" in model.peft_config:
        model.delete_adapter("ref")
    model.set_adapter("default")
    del trainer
    return stage


def kto_weights(rows: list[dict[str, Any]]) -> tuple[float, float]:
    """The KTO loss weights (desirable, undesirable) that balance 👍 against 👎.

    KTO's authors and TRL ask for ``desirable_weight * #👍 / (undesirable_weight * #👎)``
    between 1 and 4/3; a team likes most answers, and at 1 and 1 the 👍 (the model's own
    answers, pushed up) outweigh the few 👎 that carry the lesson, and sharpen the model away
    from ordinary talk. The side with more rows is weighted down to the top of that range.
    """
    liked = sum(1 for row in rows if row["label"])
    disliked = len(rows) - liked
    if not liked or not disliked:
        return 1.0, 1.0
    if liked > disliked:
        return min(1.0, math.floor(disliked * 4 / 3 / liked * 1000) / 1000), 1.0
    return 1.0, min(1.0, round(liked / disliked, 3))


def training_stages(
    data: FeedbackDataset, options: TrainingOptions
) -> list[tuple[str, list[dict[str, Any]], tuple[str, ...]]]:
    """The stages of a run in training order, with their rows (empty ones included)."""
    stages: list[tuple[str, list[dict[str, Any]], tuple[str, ...]]] = [
        ("kto", data.kto, ("prompt", "completion", "label")),
    ]
    if options.correction_method == "dpo":
        stages.append(("dpo", data.dpo, ("prompt", "chosen", "rejected")))
    else:
        stages.append(("sft", data.sft, ("prompt", "completion")))
    return stages


def _plan(rows: dict[str, int], options: TrainingOptions) -> RunPlan:
    return plan_run(
        rows, batch_size=options.batch_size, epochs=options.epochs, max_steps=options.max_steps
    )


def plan_training(data: FeedbackDataset, options: TrainingOptions) -> RunPlan:
    """How many steps each stage with rows will train (not yet priced in seconds)."""
    return _plan({name: len(rows) for name, rows, _ in training_stages(data, options)}, options)


def train_adapter(
    model: Any,
    tokenizer: Any,
    data: FeedbackDataset,
    options: TrainingOptions,
    work_dir: Path,
    device: str,
    *,
    plan: RunPlan | None = None,
    report: ProgressReport | None = None,
) -> TrainingLog:
    """Train ``model`` (a PEFT model from :func:`prepare_model`) on ``data``, stage by stage,
    each for the steps of ``plan`` (by default :func:`plan_training`'s; a priced plan makes
    the progress lines' "time left" start from its estimate)."""
    training = TrainingLog()
    tokenizer = copy.deepcopy(tokenizer)  # trainers may set padding sides or tokens on it
    progress = Progress(plan or plan_training(data, options), time.perf_counter())
    for name, rows, columns in training_stages(data, options):
        if rows:
            training.stages.append(
                _run_stage(
                    name,
                    model,
                    tokenizer,
                    rows,
                    columns,
                    options,
                    work_dir,
                    device,
                    progress=progress,
                    report=report,
                )
            )
    return training
