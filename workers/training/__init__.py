"""The nightly fine-tuning core: feedback in, a LoRA adapter and a decision out.

Plain functions, called by the Celery ``train`` task and in-process alike:
:func:`run_fine_tune` (the whole run), with its parts :func:`build_dataset` /
:func:`write_dataset` / :func:`forget_person` (data), :func:`train_adapter` (PEFT + TRL),
:func:`score_model` / :func:`figures` (evaluation) and :func:`decide` (the gate).
Heavy libraries (torch, peft, trl, datasets, matplotlib) are imported inside the functions.
"""

from __future__ import annotations

from workers.training.dataset import (
    DatasetCounts,
    EvalItem,
    FeedbackDataset,
    build_dataset,
    forget_person,
    write_dataset,
)
from workers.training.evaluate import Figures, Scores, figures, score_model
from workers.training.gate import GateDecision, decide
from workers.training.options import TrainingOptions
from workers.training.regression import RegressionItem, regression_set
from workers.training.run import RUN_FILE, RunOutcome, RunStatus, run_fine_tune
from workers.training.train import StageLog, TrainingLog, prepare_model, train_adapter

__all__ = [
    "RUN_FILE",
    "DatasetCounts",
    "EvalItem",
    "FeedbackDataset",
    "Figures",
    "GateDecision",
    "RegressionItem",
    "RunOutcome",
    "RunStatus",
    "Scores",
    "StageLog",
    "TrainingLog",
    "TrainingOptions",
    "build_dataset",
    "decide",
    "figures",
    "forget_person",
    "prepare_model",
    "regression_set",
    "run_fine_tune",
    "score_model",
    "train_adapter",
    "write_dataset",
]
