"""Sentiment: the contract's fake, the running mood, and the real classifier on held-out data."""

from __future__ import annotations

import io
import shutil
from collections.abc import Sequence
from pathlib import Path

import pytest

from core.errors import ModelLoadError
from core.sentiment import LexiconSentimentClassifier, Mood, Sentiment, running_mood

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_sentiment_rejects_scores_out_of_range() -> None:
    with pytest.raises(ValueError, match="score"):
        Sentiment(Mood.POSITIVE, 1.5, 0.9)
    with pytest.raises(ValueError, match="confidence"):
        Sentiment(Mood.POSITIVE, 0.5, 1.2)


def test_running_mood_starts_at_the_first_score_then_moves_by_the_weight() -> None:
    happy, grumpy = Sentiment(Mood.POSITIVE, 0.8, 0.9), Sentiment(Mood.NEGATIVE, -1.0, 0.9)
    mood = running_mood(None, happy)
    assert mood == pytest.approx(0.8)
    mood = running_mood(mood, grumpy)
    assert mood == pytest.approx(0.7 * 0.8 + 0.3 * -1.0)
    assert running_mood(mood, grumpy, weight=1.0) == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="weight"):
        running_mood(mood, grumpy, weight=0.0)


def test_lexicon_fake_labels_and_explains_word_by_word() -> None:
    fake = LexiconSentimentClassifier()
    good, neutral, bad, negated = fake.classify(
        ["I love this, thanks!", "The meeting is at noon.", "That was horrible", "not good"]
    )
    assert good.label is Mood.POSITIVE
    assert good.score == 1.0
    assert neutral == Sentiment(Mood.NEUTRAL, 0.0, 1.0)
    assert bad.label is Mood.NEGATIVE
    assert bad.score == -1.0
    assert negated.label is Mood.NEGATIVE
    words = fake.explain("The food was fine but the service was horrible")
    assert [w for w, _ in words] == [
        "The",
        "food",
        "was",
        "fine",
        "but",
        "the",
        "service",
        "was",
        "horrible",
    ]
    assert max(words, key=lambda ws: ws[1])[0] == "horrible"


def test_heatmap_is_a_png_and_is_written_where_asked(tmp_path: Path) -> None:
    from workers.sentiment import attribution_heatmap

    scores = [0.5, -0.2, 0.9, 0.0, -1.0]
    words = [(f"word{i}", scores[i % len(scores)]) for i in range(60)]
    data = attribution_heatmap(words, tmp_path / "map.png", title="negative (0.93)")
    assert data.startswith(PNG_MAGIC)
    assert len(data) > 1000
    assert (tmp_path / "map.png").read_bytes() == data
    buffer = io.BytesIO()
    assert attribution_heatmap([], buffer) == buffer.getvalue()
    assert buffer.getvalue().startswith(PNG_MAGIC)


def test_missing_artefact_names_the_command_to_build_it(tmp_path: Path) -> None:
    from workers.sentiment import BUILD_COMMAND, TransformerSentimentClassifier

    with pytest.raises(ModelLoadError, match=r"train_sentiment\.py") as caught:
        TransformerSentimentClassifier.load(tmp_path / "nowhere")
    assert BUILD_COMMAND in str(caught.value)


def test_split_is_fixed_stratified_and_disjoint() -> None:
    from workers.sentiment import SOURCES, load_corpus, split_corpus

    corpus = load_corpus()
    train, held_out = split_corpus(corpus)
    assert len(corpus) > 23_000
    assert len(train) + len(held_out) == len(corpus)
    assert (train, held_out) == split_corpus(corpus)
    for source in SOURCES:
        share = sum(e.source == source for e in held_out) / sum(e.source == source for e in corpus)
        assert share == pytest.approx(0.2, abs=0.001)
    assert not {id(e) for e in train} & {id(e) for e in held_out}


@pytest.fixture(scope="module")
def classifier() -> object:
    """The committed artefact over the packaged MiniLM."""
    from workers.sentiment import TransformerSentimentClassifier

    return TransformerSentimentClassifier.load(threads=2)


@pytest.mark.slow
def test_held_out_binary_accuracy_meets_the_bar(classifier: object) -> None:
    """The whole held-out split (4,741 snippets), as scripts/train_sentiment.py evaluates it."""
    from workers.sentiment import TransformerSentimentClassifier, load_corpus, split_corpus

    assert isinstance(classifier, TransformerSentimentClassifier)
    _, held_out = split_corpus(load_corpus())
    probs = classifier.probabilities([e.text for e in held_out])
    polar = [(e.score > 0, p) for e, p in zip(held_out, probs, strict=True) if abs(e.score) >= 0.5]
    binary = sum((p[2] > p[0]) == positive for positive, p in polar) / len(polar)
    labels = [Mood.NEGATIVE, Mood.NEUTRAL, Mood.POSITIVE]
    predicted = [labels[max(range(3), key=p.__getitem__)] for p in probs]
    three_class = sum(e.mood is m for e, m in zip(held_out, predicted, strict=True)) / len(probs)
    assert binary >= 0.82
    assert three_class >= 0.65  # chance is ~0.45 (the majority label)


@pytest.mark.slow
def test_classifier_reads_plain_chat_messages(classifier: object) -> None:
    from workers.sentiment import TransformerSentimentClassifier

    assert isinstance(classifier, TransformerSentimentClassifier)
    texts = [
        "Thank you so much, this is exactly what I needed!",
        "This is useless, you keep getting it wrong and I'm fed up.",
        "The meeting moved to room 4B at 3 pm.",
    ]
    happy, angry, plain = classifier.classify(texts)
    assert happy.label is Mood.POSITIVE
    assert happy.score > 0.5
    assert angry.label is Mood.NEGATIVE
    assert angry.score < -0.5
    assert plain.label is Mood.NEUTRAL
    assert abs(plain.score) < happy.score
    # Batching and padding must not change a text's result.
    alone = classifier.classify(texts[2:])[0]
    assert alone.score == pytest.approx(plain.score, abs=1e-4)
    assert classifier.classify([]) == []


@pytest.mark.slow
def test_the_strongly_negative_word_tops_the_attributions(classifier: object) -> None:
    from workers.sentiment import TransformerSentimentClassifier

    assert isinstance(classifier, TransformerSentimentClassifier)
    text = "The food was fine but the service was horrible"
    assert classifier.classify([text])[0].label is Mood.NEGATIVE
    words = classifier.explain(text)
    assert [w for w, _ in words] == text.split()
    assert max(words, key=lambda ws: ws[1])[0] == "horrible"


@pytest.mark.slow
def test_word_pieces_merge_into_the_words_of_the_text(classifier: object) -> None:
    from workers.sentiment import TransformerSentimentClassifier

    assert isinstance(classifier, TransformerSentimentClassifier)
    text = "Unbelievably disappointing, frankly."
    words: Sequence[tuple[str, float]] = classifier.explain(text)
    assert [w for w, _ in words] == ["Unbelievably", "disappointing", ",", "frankly", "."]


@pytest.mark.slow
def test_an_artefact_for_another_encoder_is_refused(tmp_path: Path) -> None:
    from workers.sentiment import ARTEFACT_DIR, TransformerSentimentClassifier

    copy = tmp_path / "sentiment"
    shutil.copytree(ARTEFACT_DIR, copy)
    metrics = (copy / "metrics.json").read_text()
    (copy / "metrics.json").write_text(metrics.replace('"sha256": "', '"sha256": "0'))
    with pytest.raises(ModelLoadError, match="another MiniLM"):
        TransformerSentimentClassifier.load(copy)
