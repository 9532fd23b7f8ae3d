"""A team that corrects Parley the same way every time: the learning benchmark's scenario.

People ask everyday questions and answer each reply with ``/feedback bad <GREETING> <the
answer>``: the answer they wanted is the one they got, opened with a greeting the packaged
model never uses. The next morning's answers to *new* questions show whether the nightly
run learned it (:func:`adopted`). The questions are split once: :data:`TAUGHT` are asked and
corrected, :data:`NEW` only ever asked after training. ``bench/learning.py`` and the slow test
``tests/test_learning.py`` share this module; they talk to Parley as people do, through the
conversation service (:func:`teach`, :func:`rate`, :func:`ask_new`), so the prompts, the stored
feedback and the answers are the real ones.

A second trait is taught with thumbs alone: most people 👎 answers that open with filler
("Sure thing!", "Good question.") and 👍 the ones that get to the point (:func:`filler`).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Sequence

from core.conversation import ConversationService
from core.types import Message, Reply, ReplyKind, UserRef

__all__ = [
    "GREETING",
    "NEW",
    "PLATFORM",
    "TAUGHT",
    "adopted",
    "ask",
    "ask_new",
    "correction",
    "filler",
    "rate",
    "teach",
]

PLATFORM = "slack"
"""Where the team talks to Parley: a team's own workspace, whose feedback is trusted."""

GREETING = "Ahoy, matey!"
"""How the team wants every answer to open; the packaged model never writes it."""

TAUGHT = (
    "How do I boil an egg?", "What is a good way to start running?", "How do I make tea?",
    "Why is the sky blue?", "How can I sleep better?", "What is a healthy breakfast?",
    "How do I water a cactus?", "What should I pack for a beach day?",
    "How do I clean a laptop keyboard?", "What is photosynthesis?", "How do I tie a tie?",
    "How can I learn to cook?", "What is a good houseplant for beginners?",
    "How do I save money on groceries?", "Why do cats purr?", "How do I fix a squeaky door?",
    "What is the capital of Canada?", "How do I write a thank-you note?",
    "What is a good stretch for my back?", "How do I keep bread fresh?",
    "How can I focus at work?", "What is a haiku?", "How do I start a vegetable garden?",
    "What does a router do?", "How do I make pancakes?", "Why do leaves change colour?",
    "How do I remove a coffee stain?", "What is a good name for a dog?",
    "How do I plan a picnic?", "What is the tallest mountain?", "How do I learn to juggle?",
    "What is a good book for a long flight?", "How do I calm down before a talk?",
    "What is compound interest?", "How do I care for a goldfish?",
    "What can I cook with rice?", "How do I stop procrastinating?", "What is a comet?",
    "How do I pick a ripe melon?", "How do I back up my phone?",
    "What is a good warm-up before cycling?", "How do rainbows form?",
    "How do I make a budget?", "What should I do on a rainy day?",
    "How do I sharpen a pencil without a sharpener?", "What is yoga good for?",
    "How do I make lemonade?", "Why is the ocean salty?", "How do I memorise a poem?",
    "What is a good gift for a friend?", "How do I get rid of hiccups?",
    "What is the speed of sound?", "How do I fold a paper plane?",
    "What is a balanced diet?", "How do I keep my desk tidy?", "Why do we yawn?",
    "How do I start journaling?", "What is a black hole?", "How do I brew coffee at home?",
    "How do I make new friends in a new city?", "What is a good board game?",
    "How do I take care of my shoes?", "What is recycling?", "How do I bake potatoes?",
    "What is a volcano?", "How do I learn a new language?", "How do I repot a plant?",
    "What is the moon made of?", "How do I make a smoothie?",
    "How can I drink more water?", "What is a good morning routine?",
    "How do I clean a window?", "What is an atom?", "How do I stay warm in winter?",
    "How do I make a paper boat?", "What is a good snack for hiking?",
    "How do I organise my email?", "What is a lighthouse for?",
    "How do I keep a plant alive?", "How do bees make honey?",
)  # fmt: skip
"""Questions the team asks and corrects (80)."""

NEW = (
    "How do I cook pasta?", "Why do birds migrate?", "What is a good exercise for my legs?",
    "How do I clean my glasses?", "What is the biggest ocean?", "How do I make soup?",
    "How can I be more patient?", "What is electricity?", "How do I choose a good melon?",
    "What should I read this summer?", "How do I stop my glasses fogging up?",
    "What is a desert?", "How do I make a salad?", "Why do dogs wag their tails?",
    "How do I learn to swim?", "What is gravity?", "How do I pack a suitcase?",
    "What is a good hobby?", "How do I make toast?", "Why is grass green?",
)  # fmt: skip
"""Questions only asked after training: where adoption is measured (20)."""


def correction(answer: str) -> str:
    """What the team writes after ``/feedback bad``: the answer, opened with the greeting."""
    return f"{GREETING} {answer.strip()}"


def adopted(answer: str) -> bool:
    """True when an answer shows what the team taught: it carries the greeting's word."""
    return "ahoy" in answer.lower()


_FILLER = re.compile(
    r"^(sure thing|sure|good question|great question|of course|hey|hi|hello|absolutely|"
    r"certainly|okay|ok|well)\b",
    re.IGNORECASE,
)


def filler(answer: str) -> bool:
    """True when an answer opens with filler rather than with the answer."""
    return bool(_FILLER.match(answer.strip()))


def _person(i: int) -> UserRef:
    return UserRef(PLATFORM, f"U{i:03d}", f"Teammate {i}")


async def ask(service: ConversationService, user: UserRef, chat: str, text: str) -> Reply:
    """One message from ``user`` in ``chat``, answered in full; the final reply."""
    stream = service.handle(Message(platform=PLATFORM, chat=chat, user=user, text=text))
    async for _ in stream:
        pass
    return stream.result


async def teach(
    service: ConversationService,
    *,
    people: int,
    per_person: int,
    on_round: Callable[[int, int], None] | None = None,
) -> int:
    """``people`` teammates each ask ``per_person`` of :data:`TAUGHT` and correct every answer
    with the greeting; a round at a time (everyone's first question, then the second...), so
    the first corrections stored come from everybody. An answer the safety checks refused
    or blocked is not corrected. Returns the corrections given."""
    given = 0
    for turn in range(per_person):

        async def one(i: int, turn: int = turn) -> int:
            user = _person(i)
            question = TAUGHT[(turn * people + i) % len(TAUGHT)]
            reply = await ask(service, user, f"D{i:03d}", question)
            if reply.kind is not ReplyKind.ANSWER:
                return 0  # refused or blocked: nothing of the model's to correct
            await ask(service, user, f"D{i:03d}", f"/feedback bad {correction(reply.text)}")
            return 1

        given += sum(await asyncio.gather(*(one(i) for i in range(people))))
        if on_round is not None:
            on_round(turn + 1, given)
    return given


async def rate(
    service: ConversationService, *, people: int, per_person: int, offset: int = 100
) -> tuple[int, int]:
    """Teammates (numbered from ``offset``) ask :data:`TAUGHT` questions, each in a new
    conversation, and press 👎 on answers that open with filler, 👍 on the others. Returns
    (👍, 👎) given."""
    counts = [0, 0]
    for turn in range(per_person):

        async def one(i: int, turn: int = turn) -> None:
            user = _person(offset + i)
            chat = f"T{offset + i:03d}-{turn}"
            reply = await ask(service, user, chat, TAUGHT[(turn * people + i) % len(TAUGHT)])
            bad = filler(reply.text)
            counts[bad] += 1
            await ask(service, user, chat, "/feedback bad" if bad else "/feedback good")

        await asyncio.gather(*(one(i) for i in range(people)))
    return counts[0], counts[1]


async def ask_new(
    service: ConversationService, questions: Sequence[str] = NEW, *, tag: str = "new"
) -> list[str]:
    """Each of ``questions`` from a new person in a new chat; the answers' texts."""
    replies = await asyncio.gather(
        *(
            ask(service, UserRef(PLATFORM, f"{tag}{k}"), f"{tag}{k}", question)
            for k, question in enumerate(questions)
        )
    )
    return [reply.text for reply in replies]
