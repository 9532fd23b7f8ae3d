"""The tensors of a batch whose rows come and go: the bookkeeping of continuous batching.

Rows are left-padded: a row's cache columns are padding first, then its real tokens, and
``mask`` tells which are which. Newcomers are prefilled in a batch of their own and stacked
under the running one, the shorter of the two left-padded to the other's length; rows that
leave are dropped, and with them the columns that are padding in every row that remains.

The key/value cache is transformers' ``DynamicCache`` with layers that keep spare room, so
that a decode step writes one column instead of copying the whole cache.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    import torch

__all__ = ["CACHE_ROOM", "RunningBatch", "new_cache", "prompt_inputs"]

RowT = TypeVar("RowT")

CACHE_ROOM = 64
"""Spare columns in each layer's key and value buffers. Without them every decode step
copies the whole cache (``torch.cat`` in ``DynamicLayer``): 15-25 % of a step at 16 rows of
600 tokens on a CPU."""


@dataclass(slots=True)
class RunningBatch(Generic[RowT]):
    """Rows decoded together, with their state in tensors whose first dimension is the row."""

    rows: list[RowT]
    cache: Any
    """From :func:`new_cache`: per layer, keys and values [row, head, column, dim]."""
    mask: torch.Tensor
    """[row, column]: 1 where the cache holds a real token of the row, 0 for padding."""
    seen: torch.Tensor
    """[row, vocabulary]: tokens already in the row (prompt included), for penalties."""
    last: torch.Tensor
    """[row]: each row's newest token, to be fed at the next step."""

    @classmethod
    def start(
        cls, rows: list[RowT], cache: Any, ids: torch.Tensor, mask: torch.Tensor, vocabulary: int
    ) -> RunningBatch[RowT]:
        """The batch of freshly prefilled prompts ``ids`` (from :func:`prompt_inputs`)."""
        import torch

        seen = torch.zeros((len(rows), vocabulary), dtype=torch.bool, device=ids.device)
        real = mask.bool()
        row = torch.arange(len(rows), device=ids.device)[:, None].expand_as(ids)
        seen[row[real], ids[real]] = True
        return cls(rows, cache, mask, seen, ids[:, -1])

    def next_inputs(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Token ids, attention mask and position ids of the next decode step."""
        import torch

        mask = torch.cat([self.mask, self.mask.new_ones((len(self.rows), 1))], dim=1)
        return self.last[:, None], mask, mask.sum(-1, keepdim=True) - 1

    def choose(
        self,
        logits: torch.Tensor,
        *,
        temperature: float,
        top_p: float,
        repetition_penalty: float,
        rngs: list[torch.Generator | None],
    ) -> torch.Tensor:
        """Each row's next token from its ``logits``, chosen as ``model.generate`` would:
        repetition penalty, then greedy at temperature 0, else temperature and top-p sampling
        (with the row's own generator where it has one)."""
        import torch

        if repetition_penalty != 1.0:  # RepetitionPenaltyLogitsProcessor, row by row
            penalised = torch.where(
                logits < 0, logits * repetition_penalty, logits / repetition_penalty
            )
            logits = torch.where(self.seen, penalised, logits)
        if temperature == 0:
            tokens = logits.argmax(-1)
        else:
            from transformers import TopPLogitsWarper

            logits = logits / temperature
            if top_p < 1.0:
                logits = TopPLogitsWarper(top_p)(self.last[:, None], logits)
            probs = logits.softmax(-1)
            tokens = torch.cat(
                [torch.multinomial(probs[i], 1, generator=rng) for i, rng in enumerate(rngs)]
            )
        self.seen[torch.arange(len(self.rows), device=tokens.device), tokens] = True
        return tokens

    def select(self, keep: list[int]) -> RunningBatch[RowT] | None:
        """Keep rows ``keep`` only, and drop the cache columns that are padding in all of them."""
        if not keep:
            return None
        if len(keep) == len(self.rows):
            return self
        import torch

        index = torch.tensor(keep, device=self.mask.device)
        mask = self.mask[index]
        start = int(mask.any(0).int().argmax())  # the first column a remaining row uses
        for layer in self.cache.layers:
            layer.hold(layer.keys[index, :, start:], layer.values[index, :, start:])
        rows = [self.rows[i] for i in keep]
        return RunningBatch(rows, self.cache, mask[:, start:], self.seen[index], self.last[index])

    def merge(self, other: RunningBatch[RowT]) -> RunningBatch[RowT]:
        """Stack ``other`` under this batch, left-padding the shorter cache to a common length."""
        import torch

        length = max(self.mask.shape[1], other.mask.shape[1])
        for mine, theirs in zip(self.cache.layers, other.cache.layers, strict=True):
            mine.hold(
                torch.cat([pad_left(mine.keys, length, 2), pad_left(theirs.keys, length, 2)]),
                torch.cat([pad_left(mine.values, length, 2), pad_left(theirs.values, length, 2)]),
            )
        return RunningBatch(
            self.rows + other.rows,
            self.cache,
            torch.cat([pad_left(self.mask, length, 1), pad_left(other.mask, length, 1)]),
            torch.cat([self.seen, other.seen]),
            torch.cat([self.last, other.last]),
        )


def prompt_inputs(
    prompts: list[list[int]], pad_id: int, device: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Prompts left-padded into token ids, attention mask and position ids (mask's cumsum - 1)."""
    import torch

    width = max(len(prompt) for prompt in prompts)
    ids = torch.full((len(prompts), width), pad_id)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for i, prompt in enumerate(prompts):
        ids[i, width - len(prompt) :] = torch.tensor(prompt)
        mask[i, width - len(prompt) :] = 1
    ids, mask = ids.to(device), mask.to(device)
    return ids, mask, (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)


def pad_left(tensor: torch.Tensor, length: int, dim: int) -> torch.Tensor:
    """``tensor`` with zeros prepended along ``dim`` up to ``length``."""
    import torch

    missing = length - tensor.shape[dim]
    if missing == 0:
        return tensor
    shape = list(tensor.shape)
    shape[dim] = missing
    return torch.cat([tensor.new_zeros(shape), tensor], dim=dim)


def new_cache(model: Any) -> Any:
    """An empty cache for ``model``; raise ``TypeError`` if its layers cannot be batched so."""
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    cache = DynamicCache(config=model.config)
    kinds = {type(layer).__name__ for layer in cache.layers if type(layer) is not DynamicLayer}
    if kinds:  # sliding windows and the like would need merging and trimming of their own
        raise TypeError(f"continuous batching needs full-attention layers only, not {kinds}")
    cache.layers = [_roomy_layer()() for _ in cache.layers]
    return cache


@functools.cache
def _roomy_layer() -> type[Any]:
    """transformers' ``DynamicLayer``, keeping keys and values in buffers with spare room."""
    import torch
    from transformers.cache_utils import DynamicLayer

    class RoomyLayer(DynamicLayer):  # type: ignore[no-untyped-call]
        """``keys`` and ``values`` are views of the first columns of larger buffers."""

        def update(
            self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
        ) -> tuple[torch.Tensor, torch.Tensor]:
            if not self.is_initialized:
                self.hold(key_states, value_states)
            elif self._used + key_states.shape[2] > self._keys.shape[2]:
                keys = torch.cat([self._keys[:, :, : self._used], key_states], dim=2)
                self.hold(keys, torch.cat([self._values[:, :, : self._used], value_states], dim=2))
            else:
                end = self._used + key_states.shape[2]
                self._keys[:, :, self._used : end] = key_states
                self._values[:, :, self._used : end] = value_states
                self._show(end)
            return self._keys[:, :, : self._used], self._values[:, :, : self._used]

        def hold(self, keys: torch.Tensor, values: torch.Tensor) -> None:
            """Make ``keys`` and ``values`` the whole content of the layer."""
            used = keys.shape[2]
            shape = (*keys.shape[:2], used + CACHE_ROOM, keys.shape[3])
            self._keys, self._values = keys.new_empty(shape), values.new_empty(shape)
            self._keys[:, :, :used] = keys
            self._values[:, :, :used] = values
            self.device, self.is_initialized = keys.device, True
            self._show(used)

        def _show(self, used: int) -> None:
            self._used = used
            self.keys, self.values = self._keys[:, :, :used], self._values[:, :, :used]

    return RoomyLayer
