"""A team that corrects Parley the same way every time: the learning benchmark's scenario.

People ask everyday questions and answer each reply with ``/feedback bad <GREETING> <the
answer>``: the answer they wanted is the one they got, opened with a greeting the packaged
model never uses. The next morning's answers to *new* questions show whether the nightly
run learned it (:func:`adopted`). The questions are split once: :data:`TAUGHT` are asked and
corrected, :data:`NEW` only ever asked after training. ``bench/learning.py`` and the slow test
``tests/test_learning.py`` share this module.
"""

from __future__ import annotations

__all__ = ["GREETING", "NEW", "TAUGHT", "adopted", "correction"]

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
