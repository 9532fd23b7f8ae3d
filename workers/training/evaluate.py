"""The figures a run is judged by, from the model's own log-probabilities.

For every held-out completion the policy (the adapter) and the reference (the base model,
adapter disabled) give the summed log-probability of the completion's tokens after its
prompt, formatted with the model's chat template exactly as TRL formats training rows. The
implicit reward of a completion is ``log π(y|x) - log π_ref(y|x)`` (DPO's, without β).

- ``preference_accuracy``: how often a liked held-out completion gets a higher reward than a
  disliked one, over every (liked, disliked) combination (the ROC AUC; ties count half). The
  base model scores exactly 0.5: it is its own reference.
- ``reward_margin``: mean reward of liked minus mean reward of disliked completions.
- ``pair_accuracy``: on prompts that have both a liked and a disliked completion, how often
  the policy alone gives the liked one the higher log-probability.
- ``correction_loss``: per-token negative log-likelihood of held-out corrections.
- ``regression_nll``: per-token negative log-likelihood of the regression set's replies
  (ordinary chitchat); its rise after training is the drift.
- ``adoption``: the share of held-out corrections whose greedy answer shows what the
  correction changed (:mod:`.adoption`), filled in by the run after scoring.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from workers.training.dataset import EvalItem
from workers.training.regression import RegressionItem

__all__ = ["Figures", "Scores", "encode", "figures", "score_model"]

Encoded = tuple[list[int], int]
"""Token ids of prompt + completion, and where the completion starts."""


@dataclass(frozen=True, slots=True)
class Scores:
    """Summed log-probability and token count of each held-out and regression completion."""

    held_out: tuple[tuple[float, int], ...]
    regression: tuple[tuple[float, int], ...]


@dataclass(frozen=True, slots=True)
class Figures:
    """One model's figures on the held-out feedback and the regression set."""

    preference_accuracy: float | None
    reward_margin: float | None
    pair_accuracy: float | None
    pairs: int
    liked: int
    disliked: int
    correction_loss: float | None
    corrections: int
    regression_nll: float
    regression_items: int
    adoption: float | None = None
    adoption_items: int = 0

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready copy."""
        return asdict(self)


def encode(
    tokenizer: Any, prompt: Sequence[dict[str, str]], completion: str, max_length: int
) -> Encoded:
    """Tokenise like TRL does for conversational rows; keep the end when too long."""
    prompt_ids = list(
        tokenizer.apply_chat_template(
            list(prompt), add_generation_prompt=True, tokenize=True, return_dict=False
        )
    )
    full = list(
        tokenizer.apply_chat_template(
            [*prompt, {"role": "assistant", "content": completion}],
            tokenize=True,
            return_dict=False,
        )
    )
    start = 0
    for a, b in zip(prompt_ids, full, strict=False):
        if a != b:
            break
        start += 1
    start = min(start, len(full) - 1)
    if len(full) > max_length:
        cut = len(full) - max_length
        full = full[cut:]
        start = max(1, start - cut)
    return full, max(start, 1)


def _score(
    model: Any, pad_id: int, encoded: Sequence[Encoded], batch_size: int
) -> list[tuple[float, int]]:
    import torch

    device = next(model.parameters()).device
    results: list[tuple[float, int]] = []
    for first in range(0, len(encoded), batch_size):
        batch = encoded[first : first + batch_size]
        width = max(len(ids) for ids, _ in batch)
        ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, (tokens, _) in enumerate(batch):
            ids[row, : len(tokens)] = torch.tensor(tokens)
            mask[row, : len(tokens)] = 1
        with torch.no_grad():
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
        logprobs = torch.log_softmax(logits[:, :-1].float(), dim=-1)
        picked = logprobs.gather(-1, ids[:, 1:].to(device).unsqueeze(-1)).squeeze(-1).cpu()
        for row, (tokens, start) in enumerate(batch):
            # Token t is predicted at position t - 1.
            values = picked[row, start - 1 : len(tokens) - 1]
            results.append((float(values.sum()), int(values.numel())))
    return results


def score_model(
    model: Any,
    tokenizer: Any,
    items: Sequence[EvalItem],
    regression: Sequence[RegressionItem],
    *,
    max_length: int,
    batch_size: int,
    adapter: bool = True,
) -> Scores:
    """Score the held-out and regression completions, with the adapter or without it."""
    import contextlib

    held = [encode(tokenizer, i.prompt, i.completion, max_length) for i in items]
    chat = [encode(tokenizer, r.prompt, r.reply, max_length) for r in regression]
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    switch = contextlib.nullcontext() if adapter else model.disable_adapter()
    was_training = model.training
    model.eval()
    try:
        with switch:
            scores = Scores(
                tuple(_score(model, pad_id, held, batch_size)),
                tuple(_score(model, pad_id, chat, batch_size)),
            )
    finally:
        model.train(was_training)
    return scores


def _auc(liked: Sequence[float], disliked: Sequence[float]) -> float:
    wins = 0.0
    for good in liked:
        for bad in disliked:
            if math.isclose(good, bad, rel_tol=0.0, abs_tol=1e-6):
                wins += 0.5
            elif good > bad:
                wins += 1.0
    return wins / (len(liked) * len(disliked))


def _nll(scores: Sequence[tuple[float, int]]) -> float | None:
    tokens = sum(n for _, n in scores)
    return -sum(lp for lp, _ in scores) / tokens if tokens else None


def figures(items: Sequence[EvalItem], policy: Scores, reference: Scores) -> Figures:
    """The figures of ``policy`` against ``reference`` (see the module docstring)."""
    rewards = [p[0] - r[0] for p, r in zip(policy.held_out, reference.held_out, strict=True)]
    liked = [rw for rw, item in zip(rewards, items, strict=True) if item.liked]
    disliked = [rw for rw, item in zip(rewards, items, strict=True) if not item.liked]
    both = bool(liked and disliked)
    wins = pairs = 0
    groups: dict[str, tuple[list[float], list[float]]] = {}
    for (logp, _), item in zip(policy.held_out, items, strict=True):
        groups.setdefault(item.group, ([], []))[0 if item.liked else 1].append(logp)
    for good_list, bad_list in groups.values():
        for good in good_list:
            for bad in bad_list:
                pairs += 1
                wins += good > bad
    corrections = [s for s, item in zip(policy.held_out, items, strict=True) if item.correction]
    regression_nll = _nll(policy.regression)
    return Figures(
        preference_accuracy=_auc(liked, disliked) if both else None,
        reward_margin=(sum(liked) / len(liked) - sum(disliked) / len(disliked)) if both else None,
        pair_accuracy=wins / pairs if pairs else None,
        pairs=pairs,
        liked=len(liked),
        disliked=len(disliked),
        correction_loss=_nll(corrections),
        corrections=len(corrections),
        regression_nll=regression_nll if regression_nll is not None else float("nan"),
        regression_items=len(policy.regression),
    )
