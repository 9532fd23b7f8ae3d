"""Every message gets a sentiment; a frustrated person gets acknowledgement and shorter answers."""

from __future__ import annotations

from core.conversation import FEEDBACK_OFFER, SHORT_ANSWER_TOKENS, UPSET_GUIDANCE, is_upset, mood_of
from core.sentiment import LexiconSentimentClassifier, Mood, Sentiment
from core.types import Role, StoredMessage
from tests.factories import make_message, make_service, make_user

LEXICON = LexiconSentimentClassifier()


async def test_each_message_is_stored_with_its_sentiment() -> None:
    service, store, _ = make_service(sentiment=LEXICON)
    await service.handle(make_message("I love this, thanks!")).collect()
    [asked, _answer] = store.history(make_message("x").key, 10)
    assert asked.sentiment is not None
    assert asked.sentiment.label is Mood.POSITIVE


async def test_an_upset_person_gets_acknowledgement_a_short_answer_and_a_feedback_offer() -> None:
    service, _, generator = make_service(sentiment=LEXICON, max_new_tokens=400)
    stream = service.handle(make_message("This is horrible, nothing works and I hate it."))
    shown = "".join([d async for d in stream])
    request = generator.requests[-1]
    assert UPSET_GUIDANCE in request.turns[0].content
    assert request.max_new_tokens == SHORT_ANSWER_TOKENS
    assert shown.endswith(FEEDBACK_OFFER)
    assert stream.result.text == shown


async def test_a_happy_person_gets_the_normal_tone() -> None:
    service, _, generator = make_service(sentiment=LEXICON, max_new_tokens=400)
    reply = await service.handle(make_message("Great, I love it. Tell me more!")).collect()
    request = generator.requests[-1]
    assert UPSET_GUIDANCE not in request.turns[0].content
    assert request.max_new_tokens == 400
    assert "/feedback" not in reply.text


async def test_one_grumpy_line_after_a_good_mood_does_not_swing_the_tone() -> None:
    service, _, generator = make_service(sentiment=LEXICON)
    for text in ("Great, thanks!", "Awesome, I love it.", "Wonderful, thank you."):
        await service.handle(make_message(text)).collect()
    await service.handle(make_message("Hmm, that part was bad.")).collect()
    assert UPSET_GUIDANCE not in generator.requests[-1].turns[0].content


async def test_a_broken_classifier_costs_nothing_but_the_reading() -> None:
    class Broken(LexiconSentimentClassifier):
        def classify(self, texts: object) -> list[Sentiment]:  # type: ignore[override]
            raise RuntimeError("out of memory")

    service, store, _ = make_service(sentiment=Broken())
    reply = await service.handle(make_message("hello")).collect()
    assert reply.text == "You said: hello"
    assert store.history(make_message("x").key, 1)[0].role is Role.ASSISTANT


def test_mood_follows_only_the_person_and_is_an_average() -> None:
    ann, bob = make_user("ann"), make_user("bob")
    sad = Sentiment(Mood.NEGATIVE, -0.9, 0.9)
    glad = Sentiment(Mood.POSITIVE, 0.9, 0.9)
    history = [
        StoredMessage(id=1, role=Role.USER, text="x", user=bob, sentiment=sad),
        StoredMessage(id=2, role=Role.USER, text="y", user=ann, sentiment=glad),
    ]
    mood = mood_of(history, ann, sad)
    assert mood is not None
    assert 0 < mood < 0.9  # ann's good mood, pulled down a little; bob's does not count
    assert not is_upset(mood)
    assert is_upset(mood_of([], ann, sad))
    assert mood_of([], ann, None) is None
