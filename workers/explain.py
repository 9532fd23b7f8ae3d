"""What in the context drove an answer: captum attributions over prompt segments.

The prompt of a stored answer (:class:`core.types.ContextReport`) is cut into segments: the
instructions, each profile line, each earlier turn and the current message. Captum's
``FeatureAblation`` removes one segment at a time and measures how much the log-probability
of the answer drops, teacher-forced in one forward pass per segment. (Captum's
``LLMAttribution`` wrapper re-runs the prompt once per answer token: seven times slower here.)
Attributing over a handful of segments instead of every token keeps ``/explain`` to a few
seconds on a CPU; the number of segments is capped, keeping the newest turns.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from core.explanation import Explanation
from core.sentiment import SentimentClassifier
from core.types import ContextReport, Role, StoredMessage
from workers.model import LoadedModel

__all__ = [
    "ModelExplainer",
    "RunsLoadedModel",
    "SegmentShare",
    "attribute_segments",
    "segments_heatmap",
]

ABOUT = "\n\nAbout the user:\n"
MAX_SEGMENTS = 10
MAX_ANSWER_TOKENS = 48


@dataclass(frozen=True, slots=True)
class SegmentShare:
    """One prompt segment and its signed share of the attribution (shares' sizes sum to 1)."""

    label: str
    share: float


@dataclass(frozen=True, slots=True)
class _Piece:
    label: str
    text: str


def _pieces(report: ContextReport) -> list[tuple[Role, list[_Piece | str]]]:
    """The prompt's turns, each as literal text and attributable pieces."""
    turns: list[tuple[Role, list[_Piece | str]]] = []
    for i, turn in enumerate(report.turns):
        if i == 0 and turn.role is Role.SYSTEM:
            instructions, _, about = turn.content.partition(ABOUT)
            parts: list[_Piece | str] = [_Piece("instructions", instructions)]
            if about:
                lines = about.split("\n")
                parts.append(ABOUT)
                for line in lines[:-1]:
                    text = line.removeprefix("- ")
                    parts += ["- ", _Piece(f"profile: {_short(text)}", text), "\n"]
                parts.append(lines[-1])
            turns.append((turn.role, parts))
        elif i == len(report.turns) - 1:
            turns.append(
                (turn.role, [_Piece(f"your message: {_short(turn.content)}", turn.content)])
            )
        else:
            who = "your earlier message" if turn.role is Role.USER else "my earlier answer"
            label = f"{who}: {_short(turn.content)}"
            turns.append((turn.role, [_Piece(label, turn.content)]))
    return turns


def _short(text: str, limit: int = 32) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def attribute_segments(
    loaded: LoadedModel, report: ContextReport, answer: str, *, max_segments: int = MAX_SEGMENTS
) -> tuple[list[SegmentShare], float]:
    """Each segment's share in producing ``answer``, biggest first, and the seconds it took."""
    started = time.perf_counter()
    tokenizer = loaded.tokenizer
    turns = _pieces(report)
    pieces = [p for _, parts in turns for p in parts if isinstance(p, _Piece)]
    # Too many segments: the oldest turns stay as fixed text rather than features.
    attributable = set(id(p) for p in pieces[:1] + pieces[-(max_segments - 1) :])
    sentinel = "\x00{}\x00"
    chat: list[dict[str, str]] = []
    values: list[str] = []
    for role, parts in turns:
        content = ""
        for part in parts:
            if isinstance(part, _Piece) and id(part) in attributable:
                content += sentinel.format(len(values))
                values.append(part.text)
            else:
                content += part.text if isinstance(part, _Piece) else part
        chat.append({"role": str(role), "content": content})
    rendered = tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
    template = rendered.replace("{", "{{").replace("}", "}}")
    for index in range(len(values)):
        template = template.replace(sentinel.format(index), "{}")
    labels = [p.label for p in pieces if id(p) in attributable]

    import torch
    from captum.attr import FeatureAblation

    model = loaded.model
    target = torch.tensor(
        tokenizer(answer, add_special_tokens=False)["input_ids"][:MAX_ANSWER_TOKENS]
    )

    def answer_log_prob(present: torch.Tensor) -> torch.Tensor:
        """Log-probability of the answer, teacher-forced, with only the present segments."""
        totals = []
        for row in present:
            shown = [v if keep > 0.5 else "" for v, keep in zip(values, row.tolist(), strict=True)]
            prompt = tokenizer(template.format(*shown), add_special_tokens=False)["input_ids"]
            ids = torch.tensor([prompt + target.tolist()], device=loaded.device)
            with torch.inference_mode():
                logits = model(input_ids=ids).logits[0, len(prompt) - 1 : -1].float()
            log_probs = torch.log_softmax(logits, dim=-1)
            totals.append(log_probs[torch.arange(len(target)), target.to(logits.device)].sum())
        return torch.stack(totals).cpu()

    # Captum's FeatureAblation over a presence vector: one forward pass per segment, each
    # scoring the whole answer at once (its LLMAttribution re-runs the prompt per answer token).
    presence = torch.ones(1, len(values))
    ablation = FeatureAblation(answer_log_prob)
    result = ablation.attribute(presence, baselines=0.0)
    scores = [float(v) for v in result.reshape(-1).tolist()]
    total = sum(abs(v) for v in scores) or 1.0
    shares = sorted(
        (SegmentShare(label, score / total) for label, score in zip(labels, scores, strict=True)),
        key=lambda s: abs(s.share),
        reverse=True,
    )
    return shares, time.perf_counter() - started


def segments_heatmap(shares: list[SegmentShare], title: str = "What drove the answer") -> bytes:
    """A PNG bar chart of segment shares: red pushed toward the answer, blue away from it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ordered = list(reversed(shares))
    height = 0.45 * len(ordered) + 1.2
    figure, axes = plt.subplots(figsize=(7, height), dpi=110)
    colours = ["#c0392b" if s.share >= 0 else "#2e86c1" for s in ordered]
    axes.barh([s.label for s in ordered], [s.share * 100 for s in ordered], color=colours)
    axes.axvline(0, color="#555", linewidth=0.8)
    axes.set_xlabel("share of the attribution (%)")
    axes.set_title(title)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()


@runtime_checkable
class RunsLoadedModel(Protocol):
    """A generator whose model is loaded in this process, for /explain to look into."""

    @property
    def loaded(self) -> LoadedModel:
        """The model and tokenizer it generates with."""
        ...


class ModelExplainer:
    """The real :class:`core.explanation.Explainer`: segment attributions from the model, and
    word attributions from the sentiment classifier for how the person's message read."""

    def __init__(
        self, loaded: LoadedModel, sentiment: SentimentClassifier | None = None, *, top: int = 4
    ) -> None:
        self._loaded = loaded
        self._sentiment = sentiment
        self._top = top

    def explain(self, answer: StoredMessage) -> Explanation:
        """Which context segments drove ``answer``, and why the message read as it did."""
        assert answer.context is not None
        shares, seconds = attribute_segments(self._loaded, answer.context, answer.text)
        lines = [
            f"What drove my last answer most (ablation over {len(shares)} parts, {seconds:.1f} s):"
        ]
        for share in shares[: self._top]:
            direction = "" if share.share >= 0 else " (pulled away from it)"
            lines.append(f"• {share.label} — {abs(share.share):.0%}{direction}")
        pictures = [("explain.png", segments_heatmap(shares))]
        if self._sentiment is not None:
            mood_lines, picture = self._mood(answer.context.turns[-1].content)
            lines += ["", *mood_lines]
            pictures.append(("mood.png", picture))
        return Explanation(tuple(lines), pictures[0][1], tuple(pictures[1:]))

    def _mood(self, text: str) -> tuple[list[str], bytes]:
        """How the message read, and the words that made it read so."""
        from workers.sentiment import attribution_heatmap

        assert self._sentiment is not None
        [reading] = self._sentiment.classify([text])
        words = self._sentiment.explain(text)
        strongest = sorted((w for w in words if w[1] > 0), key=lambda w: w[1], reverse=True)[:3]
        because = ", ".join(f"“{word}” ({score:+.2f})" for word, score in strongest)
        line = f"I read your message as {reading.label} ({reading.confidence:.0%} sure)"
        lines = [line + (f", mostly because of {because}." if because else ".")]
        title = f"Words toward '{reading.label}'"
        return lines, attribution_heatmap(words, title=title)
