"""The evaluation pool (:data:`EVAL`): what held-out probes' profiles and questions are made of.

Nothing of it is ever trained on: it is disjoint from the training pool of
:mod:`workers.training.profile_train_pool` (``tests/test_profile_data.py`` checks it).
"""

from __future__ import annotations

from workers.training.profile_pools import Pools, Topic

__all__ = ["EVAL"]


# fmt: off
_NAMES_EVAL = (
    "Aiyana", "Oluwaseun", "Makoa", "Soraya", "Takeshi", "Xiulan", "Anjali", "Bogdan", "Esperanza",
    "Henrik", "Mariam", "Tupac", "Yerlan", "Anouk", "Ciaran", "Dalia", "Felipe", "Haruto",
    "Iolanthe", "Kalani", "Magnus", "Nadia", "Ottilie", "Rashid", "Saanvi", "Thiago", "Ulla",
    "Wairimu", "Zofia", "Emeka",
)
_PLACES_EVAL = (
    "Reykjavik", "Marrakesh", "Tbilisi", "Ljubljana", "Cusco", "Hobart", "Winnipeg", "Zanzibar",
    "Almaty", "Bergen", "Galway", "Bordeaux", "Kaunas", "Hiroshima", "Dakar", "Asuncion", "Halifax",
    "Trieste", "Chiang Mai", "Windhoek",
)
_JOBS_EVAL = (
    "a midwife", "a marine biologist", "a sound engineer", "a locksmith", "a radiographer",
    "a beekeeper", "an urban planner", "a tailor", "a paramedic", "a glassblower",
)
_PETS_EVAL = (
    ("dog", "Waffles"), ("cat", "Juniper"), ("ferret", "Bandit"), ("dog", "Sprocket"),
    ("cat", "Noodle"), ("lizard", "Ramses"), ("dog", "Tamale"), ("cat", "Quince"),
)
_HOBBIES_EVAL = (
    ("kayaking", "going kayaking", "kayak"), ("pottery", "making pottery", "pottery"),
    ("skateboarding", "going skateboarding", "skateboard"),
    ("astronomy", "stargazing with a telescope", "star"),
    ("salsa dancing", "going salsa dancing", "salsa"),
    ("woodworking", "doing some woodworking", "wood"), ("archery", "trying archery", "archery"),
    ("calligraphy", "practising calligraphy", "calligraph"),
)
_DIETS_EVAL = (
    ("dairy-free", (
        "a coconut curry",
        "a stir-fry with rice noodles",
        "roast vegetables with quinoa",
    ), "dairy"),
    ("kosher", (
        "roast chicken with vegetables",
        "a vegetable soup",
        "baked fish with herbs",
    ), "kosher"),
)
_PARLEY_QUESTIONS_EVAL = (
    "Who am I talking to?", "What are you called?", "Who are you exactly?",
)
_UPSET_EVAL = (
    "I'm so frustrated, my phone won't charge.", "This is terrible, I lost my keys again.",
    "I'm really annoyed, the printer jammed for the fifth time.",
)
_TOPICS_EVAL = (
    Topic(
        "How do I get better at public speaking?",
        "Practise often, start with small audiences, and focus on one clear message.",
        (
            "Record yourself and watch it back.",
            "Slow down and pause between points.",
            "Look at a few friendly faces in the room.",
            "Nerves fade with every talk you give.",
        ),
    ),
    Topic(
        "How should I organise my week?",
        "On Sunday, list your fixed appointments and then block time for your most important "
        "tasks.",
        (
            "Leave some free time for surprises.",
            "Group errands together to save trips.",
            "Plan rest as seriously as work.",
            "Review what worked at the end of the week.",
        ),
    ),
    Topic(
        "How do I make bread at home?",
        "Mix flour, water, yeast and salt, let the dough rise, shape it and bake it in a hot oven.",
        (
            "Kneading for ten minutes builds the structure.",
            "A warm place helps the dough rise faster.",
            "A tray of water in the oven gives a crisp crust.",
            "Let it cool before cutting.",
        ),
    ),
    Topic(
        "How can I drink more water?",
        "Keep a bottle with you and drink a glass with every meal.",
        (
            "Set reminders on your phone.",
            "Add lemon or mint if you find plain water boring.",
            "Eat fruit and vegetables that contain water.",
            "Check the colour of your urine: pale yellow is good.",
        ),
    ),
    Topic(
        "How do I choose a good book to read?",
        "Think about books you loved before and look for similar authors or themes.",
        (
            "Ask friends or a librarian for recommendations.",
            "Read the first few pages before deciding.",
            "Mix genres now and then to discover something new.",
            "It is fine to stop a book you do not enjoy.",
        ),
    ),
    Topic(
        "How do I take care of my back at a desk?",
        "Set your screen at eye level, keep your feet flat and get up to move every half hour.",
        (
            "A chair with lower back support helps.",
            "Keep your keyboard close so your shoulders relax.",
            "Simple stretches during the day ease stiffness.",
            "Walking at lunch is good for your back.",
        ),
    ),
    Topic(
        "How do I plan a birthday party?",
        "Pick a date and place, invite guests two weeks ahead, and plan simple food and one "
        "activity.",
        (
            "Set a budget first.",
            "Ask about allergies when you invite people.",
            "A playlist sets the mood for free.",
            "Ask a friend to help with setup.",
        ),
    ),
    Topic(
        "How can I focus when studying?",
        "Study in short, focused sessions with your phone in another room.",
        (
            "Test yourself instead of just rereading.",
            "Study the hardest subject when you are freshest.",
            "Take a five-minute break every half hour.",
            "A tidy desk helps a tidy mind.",
        ),
    ),
)
# fmt: on

EVAL = Pools(
    _NAMES_EVAL,
    _PLACES_EVAL,
    _JOBS_EVAL,
    _PETS_EVAL,
    _HOBBIES_EVAL,
    _DIETS_EVAL,
    _TOPICS_EVAL,
    _PARLEY_QUESTIONS_EVAL,
    _UPSET_EVAL,
)
"""What held-out probes are made of: disjoint from :data:`TRAIN`."""
