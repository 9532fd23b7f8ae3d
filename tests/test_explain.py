"""/explain: segment attributions with the real model, and the picture."""

from __future__ import annotations

import pytest

from core.context import ContextBuilder
from core.memory import MemoryStore
from core.sentiment import LexiconSentimentClassifier
from core.types import Fact, Role, StoredMessage, UserProfile
from tests.factories import make_message, make_service
from workers.batching import BatchedGenerator
from workers.explain import ModelExplainer, SegmentShare, attribute_segments, segments_heatmap

PNG = b"\x89PNG\r\n\x1a\n"
HISTORY = [
    StoredMessage(id=1, role=Role.USER, text="I need help planning a trip."),
    StoredMessage(id=2, role=Role.ASSISTANT, text="Sure! Where would you like to go?"),
    StoredMessage(id=3, role=Role.USER, text="Somewhere warm in winter."),
    StoredMessage(id=4, role=Role.ASSISTANT, text="The Canary Islands are warm in winter."),
]
PROFILE = UserProfile(
    display_name="Ada",
    facts=(Fact("The user's favourite colour is teal"), Fact("The user lives in Oslo")),
)


def test_heatmap_is_a_png() -> None:
    picture = segments_heatmap(
        [SegmentShare("profile: x", 0.6), SegmentShare("instructions", -0.4)]
    )
    assert picture.startswith(PNG)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("answer", "expected_top"),
    [
        ("Your favourite colour is teal.", "profile: The user's favourite"),
        ("You live in Oslo, so pack warm clothes.", "profile: The user lives in Oslo"),
    ],
)
def test_an_answer_that_repeats_a_profile_fact_is_attributed_to_it(
    generator: BatchedGenerator, answer: str, expected_top: str
) -> None:
    builder = ContextBuilder(generator.tokens, "You are a helpful assistant.", 1500)
    report = builder.build(
        history=HISTORY, text="What is my favourite colour?", speaker=None, profile=PROFILE
    )
    shares, seconds = attribute_segments(generator.loaded, report, answer)
    assert shares[0].label.startswith(expected_top)
    assert shares[0].share > 0
    assert abs(sum(abs(s.share) for s in shares) - 1) < 1e-6
    assert len(shares) == 1 + 3 + 4 + 1  # instructions, profile lines, turns, the message
    assert seconds > 0


@pytest.mark.slow
async def test_explain_command_with_the_model_explainer(generator: BatchedGenerator) -> None:
    store = MemoryStore()
    # The echo generator answers instantly; the real model explains that answer.
    explainer = ModelExplainer(generator.loaded, LexiconSentimentClassifier())
    service, _, _ = make_service(
        store=store, tokens=generator.tokens, prompt_budget=1500, explainer=explainer
    )
    await service.handle(
        make_message("/profile fact The user's favourite colour is teal")
    ).collect()
    await service.handle(
        make_message("What is my favourite colour? The last answer was horrible.")
    ).collect()
    reply = await service.handle(make_message("/explain")).collect()
    assert "What drove my last answer most" in reply.text
    assert "prompt tokens" in reply.text
    assert "I read your message as negative" in reply.text
    assert "“horrible”" in reply.text
    assert [name for name, _ in reply.attachments] == ["explain.png", "mood.png"]
    assert all(picture.startswith(PNG) for _, picture in reply.attachments)
