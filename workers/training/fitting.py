"""Prompts that fit the training length: the system prompt and the last turn always kept.

A stored prompt carries the whole context the model saw: the system prompt (instructions and
what Parley knows about the person) and the conversation so far. Training sequences are cut
at ``max_length`` tokens, and TRL cuts them at the end: a long prompt would lose the very
completion the row teaches. :func:`fit_prompt` drops the oldest turns of the conversation
instead (whole exchanges, never the system prompt nor the last message) until the prompt and
its longest completion fit. :func:`fit_dataset` applies it to every row and held-out item of
a run, so that training, scoring and the data files all see the same prompt.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from workers.training.dataset import FeedbackDataset

__all__ = ["fit_dataset", "fit_prompt"]

Messages = list[dict[str, str]]


def _length(tokenizer: Any, messages: Sequence[dict[str, str]]) -> int:
    ids = tokenizer.apply_chat_template(list(messages), tokenize=True, return_dict=False)
    return len(ids)


def fit_prompt(
    tokenizer: Any, prompt: Sequence[dict[str, str]], completions: Sequence[str], max_length: int
) -> Messages:
    """``prompt`` without its oldest turns, so that it fits with the longest completion.

    Turns go oldest first, after the system prompt, and the last message always stays: a
    prompt that is too long even then is returned as the system prompt and the last message
    (the trainer then cuts what still does not fit).
    """
    messages = [dict(turn) for turn in prompt]
    head = messages[:1] if messages and messages[0]["role"] == "system" else []
    history = messages[len(head) : -1]
    last = messages[-1:]
    longest = max(completions, key=len, default="")
    ending = [{"role": "assistant", "content": longest}]
    while history and _length(tokenizer, [*head, *history, *last, *ending]) > max_length:
        history = history[1:]
        # A kept history starts with a person's message, as a conversation does.
        while history and history[0]["role"] != "user":
            history = history[1:]
    return [*head, *history, *last]


def _completions(row: dict[str, Any]) -> list[str]:
    texts = []
    for column in ("completion", "chosen", "rejected"):
        for message in row.get(column) or ():
            texts.append(message["content"])
    return texts


def fit_dataset(data: FeedbackDataset, tokenizer: Any, max_length: int) -> int:
    """Fit every prompt of ``data`` in place (see :func:`fit_prompt`); return how many changed."""
    changed = 0
    for rows in (data.kto, data.dpo, data.sft):
        for row in rows:
            fitted = fit_prompt(tokenizer, row["prompt"], _completions(row), max_length)
            changed += len(fitted) != len(row["prompt"])
            row["prompt"] = fitted
    by_group: dict[str, list[str]] = {}
    for item in data.eval_items:
        by_group.setdefault(item.group, []).append(item.completion)
    fitted_items = []
    for item in data.eval_items:
        fitted = fit_prompt(tokenizer, item.prompt, by_group[item.group], max_length)
        changed += len(fitted) != len(item.prompt)
        fitted_items.append(replace(item, prompt=tuple(fitted)))
    data.eval_items = fitted_items
    return changed
