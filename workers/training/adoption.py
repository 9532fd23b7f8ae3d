"""Did the answers move toward the corrections? Greedy answers to held-out prompts, checked.

The log-probability figures (:mod:`.evaluate`) say whether the model now *prefers* what
people wrote; people see only what it *says*. For every held-out correction this module
answers the held-out prompt greedily, before and after training, and checks whether the
answer shows what the correction changed:

- the **edit** of a correction is the set of its words that the corrected answer lacked
  (``/feedback bad Ahoy! The meeting is on Tuesday`` on "The meeting is on Monday" adds
  {"ahoy", "tuesday"}), lower-cased, without the commonest function words;
- an answer **adopts** the correction when it carries at least half of the edit's words.

The adoption rate is the share of held-out corrections whose greedy answer adopts them; the
gate (:mod:`.gate`) asks it to rise, so that a run whose answers did not visibly change is
not promoted as a gain. Answers are cut at ``max_new_tokens``, which is enough to see an
opening or a fact, and decoded with the serving path's repetition penalty.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from workers.training.dataset import EvalItem

__all__ = ["Adoption", "adopts", "edit_words", "greedy_answers", "measure_adoption"]

_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?")
_COMMON = frozenset((
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "do", "for", "from", "has", "have",
    "i", "if", "in", "is", "it", "its", "me", "my", "of", "on", "or", "so", "that", "the",
    "their", "then", "there", "this", "to", "was", "we", "were", "what", "when", "which",
    "who", "will", "with", "you", "your",
))  # fmt: skip


def _words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _COMMON}


def edit_words(answer: str, correction: str) -> frozenset[str]:
    """The words a correction brought that the answer it corrects did not have."""
    return frozenset(_words(correction) - _words(answer))


def adopts(reply: str, edit: frozenset[str]) -> bool:
    """True when ``reply`` carries at least half of the correction's new words."""
    if not edit:
        return False
    return 2 * len(edit & _words(reply)) >= len(edit)


@dataclass(frozen=True, slots=True)
class Adoption:
    """How many held-out corrections a model's greedy answers adopt, with the answers."""

    adopted: int
    items: int
    answers: tuple[str, ...] = ()

    @property
    def rate(self) -> float | None:
        """The share adopted; ``None`` without held-out corrections."""
        return self.adopted / self.items if self.items else None


def greedy_answers(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[Sequence[dict[str, str]]],
    *,
    max_new_tokens: int,
    batch_size: int,
    repetition_penalty: float = 1.1,
) -> list[str]:
    """Greedy answers of ``model`` (as it is: adapter on or off) to chat ``prompts``."""
    import torch

    from workers.model import stop_token_ids

    tokenizer = copy.copy(tokenizer)
    tokenizer.padding_side = "left"
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    stops = stop_token_ids(tokenizer)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    answers: list[str] = []
    try:
        for first in range(0, len(prompts), batch_size):
            batch = [list(p) for p in prompts[first : first + batch_size]]
            texts = [
                tokenizer.apply_chat_template(p, add_generation_prompt=True, tokenize=False)
                for p in batch
            ]
            inputs = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
            inputs = {k: v.to(device) for k, v in inputs.items()}
            with torch.inference_mode():
                output = model.generate(
                    **inputs,
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    eos_token_id=stops,
                    pad_token_id=pad_id,
                    repetition_penalty=repetition_penalty,
                )
            width = inputs["input_ids"].shape[1]
            answers += [
                tokenizer.decode(row[width:], skip_special_tokens=True).strip() for row in output
            ]
    finally:
        model.train(was_training)
    return answers


def measure_adoption(
    model: Any,
    tokenizer: Any,
    items: Sequence[EvalItem],
    *,
    max_new_tokens: int,
    batch_size: int,
) -> Adoption:
    """Adoption of the held-out corrections in ``items`` by ``model`` as it is."""
    corrections = [i for i in items if i.correction and edit_words(i.corrects, i.completion)]
    if not corrections:
        return Adoption(0, 0)
    answers = greedy_answers(
        model,
        tokenizer,
        [i.prompt for i in corrections],
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
    )
    hits = sum(
        adopts(answer, edit_words(item.corrects, item.completion))
        for answer, item in zip(answers, corrections, strict=True)
    )
    return Adoption(hits, len(corrections), tuple(answers))
