"""The training pool (:data:`TRAIN`): what training rows' profiles and questions are made of.

Disjoint from the evaluation pool of :mod:`workers.training.profile_eval_pool`
(``tests/test_profile_data.py`` checks it).
"""

from __future__ import annotations

from workers.training.profile_pools import Pools, Topic

__all__ = ["TRAIN"]


# fmt: off
_NAMES_TRAIN = (
    "Amara", "Kofi", "Chidi", "Zanele", "Thabo", "Fatima", "Omar", "Layla", "Yusuf", "Noor",
    "Hiroshi", "Yuki", "Sakura", "Kenji", "Mei", "Wei", "Jia", "Hao", "Minjun", "Seoyeon", "Ji-woo",
    "Priya", "Arjun", "Ananya", "Rohan", "Kavya", "Deepa", "Sanjay", "Lakshmi", "Olga", "Dmitri",
    "Natasha", "Ivan", "Agnieszka", "Tomasz", "Katarzyna", "Jakub", "Sofia", "Mateo", "Valentina",
    "Diego", "Camila", "Santiago", "Lucia", "Joao", "Beatriz", "Giulia", "Marco", "Francesca",
    "Luca", "Chiara", "Elodie", "Julien", "Camille", "Lucas", "Ingrid", "Lars", "Astrid", "Bjorn",
    "Freya", "Sven", "Aoife", "Cian", "Siobhan", "Niamh", "Emma", "Oliver", "Charlotte", "James",
    "Harper", "Ethan", "Grace", "Henry", "Chloe", "Tariq", "Aylin", "Emre", "Zeynep", "Mehmet",
    "Nguyen", "Linh", "Minh", "Somchai", "Malee", "Kaveh", "Shirin", "Dariush", "Eitan", "Noa",
    "Talia", "Kwame", "Ama", "Nia", "Tendai", "Aroha", "Tane", "Leilani", "Keoni", "Sipho", "Ngozi",
    "Bao", "Rafael", "Ines",
)
_PLACES_TRAIN = (
    "Lisbon", "Nairobi", "Osaka", "Toronto", "Lagos", "Krakow", "Bogota", "Hanoi", "Dublin",
    "Melbourne", "Accra", "Seoul", "Mumbai", "Chennai", "Cairo", "Istanbul", "Lyon", "Munich",
    "Oslo", "Gothenburg", "Porto", "Valencia", "Seville", "Naples", "Turin", "Prague", "Budapest",
    "Vilnius", "Tallinn", "Edinburgh", "Cardiff", "Bristol", "Leeds", "Montreal", "Vancouver",
    "Denver", "Austin", "Chicago", "Seattle", "Boston", "Lima", "Quito", "Santiago de Chile",
    "Montevideo", "Kyoto", "Sapporo", "Taipei", "Manila", "Jakarta", "Auckland", "Wellington",
    "Cape Town", "Durban", "Kampala", "Kigali", "Tunis", "Amman",
)
_JOBS_TRAIN = (
    "a nurse", "a software engineer", "a teacher", "an architect", "a chef", "a pharmacist",
    "a graphic designer", "an accountant", "a firefighter", "a journalist", "a dentist",
    "an electrician", "a librarian", "a physiotherapist", "a lawyer", "a data analyst",
    "a carpenter", "a pilot", "a translator", "a veterinarian", "a photographer", "a mechanic",
    "a social worker", "an economist", "a baker", "a civil engineer",
)
_PETS_TRAIN = (
    ("dog", "Biscuit"), ("cat", "Miso"), ("dog", "Rex"), ("cat", "Luna"), ("rabbit", "Clover"),
    ("parrot", "Kiwi"), ("dog", "Pepper"), ("cat", "Simba"), ("hamster", "Nugget"),
    ("dog", "Bruno"), ("cat", "Tofu"), ("tortoise", "Sheldon"), ("dog", "Maple"), ("cat", "Pixel"),
    ("goldfish", "Bubbles"), ("dog", "Coco"), ("cat", "Shadow"), ("guinea pig", "Peanut"),
    ("dog", "Ziggy"), ("cat", "Mango"),
)
_HOBBIES_TRAIN = (
    ("rock climbing", "going rock climbing", "climbing"),
    ("running", "going for a long run", "run"), ("painting", "painting", "paint"),
    ("chess", "playing chess", "chess"), ("gardening", "working in the garden", "garden"),
    ("cycling", "going for a bike ride", "bike"), ("baking", "baking something new", "bak"),
    ("hiking", "going on a hike", "hik"), ("photography", "taking photos", "photo"),
    ("playing the guitar", "playing your guitar", "guitar"),
    ("swimming", "going for a swim", "swim"), ("yoga", "doing a yoga class", "yoga"),
    ("board games", "hosting a board game night", "board game"),
    ("fishing", "going fishing", "fish"), ("knitting", "knitting", "knit"),
    ("birdwatching", "going birdwatching", "bird"), ("surfing", "going surfing", "surf"),
    ("reading science fiction", "reading a science fiction novel", "science fiction"),
)
_DIETS_TRAIN = (
    ("vegetarian", (
        "a chickpea curry with rice",
        "a mushroom risotto",
        "veggie tacos with black beans",
    ), "vegetarian"),
    ("vegan", (
        "a lentil stew",
        "a tofu stir-fry with vegetables",
        "a chickpea and spinach curry",
    ), "vegan"),
    ("gluten-free", (
        "grilled salmon with roast potatoes",
        "a rice bowl with vegetables",
        "a corn tortilla taco plate",
    ), "gluten"),
    ("pescatarian", (
        "baked cod with lemon",
        "a prawn stir-fry",
        "a tuna salad",
    ), "pescatarian"),
    ("halal", (
        "a chicken tagine",
        "lamb kofta with salad",
        "a vegetable biryani",
    ), "halal"),
)
_PARLEY_QUESTIONS_TRAIN = (
    "Who are you?", "What's your name?", "What is your name?", "Introduce yourself.",
    "Are you a person?", "Tell me about yourself.", "What should I call you?",
)
_UPSET_TRAIN = (
    "This is so annoying, nothing works today.", "I'm really frustrated, my laptop crashed again.",
    "Ugh, I missed my train and now I'm late.", "I'm so fed up with this project.",
    "Everything is going wrong this week.", "I'm upset, my code keeps failing the tests.",
)
_TOPICS_TRAIN = (
    Topic(
        "How do I make a good cup of tea?",
        "Boil fresh water, pour it over the tea and let it steep for three to five minutes.",
        (
            "Warm the pot or cup first so the water stays hot.",
            "Black tea likes water just off the boil, while green tea is better at around eighty "
            "degrees.",
            "Steeping too long makes it bitter, so set a timer.",
            "Add milk or lemon after steeping, not before.",
        ),
    ),
    Topic(
        "How can I sleep better?",
        "Keep a regular bedtime and avoid screens for the last hour before sleep.",
        (
            "A cool, dark and quiet bedroom helps a lot.",
            "Caffeine can stay in your body for hours, so skip it after lunch.",
            "A short wind-down routine, such as reading, tells your body it is time to rest.",
            "If you cannot sleep after twenty minutes, get up and do something calm until you feel "
            "sleepy.",
        ),
    ),
    Topic(
        "How do I start learning to code?",
        "Pick one beginner-friendly language such as Python and build small projects with it.",
        (
            "Free interactive courses are a good first step.",
            "Write a little code every day rather than a lot once a week.",
            "Small projects, like a to-do list or a quiz, teach more than reading alone.",
            "When you get stuck, read the error message carefully and search for it.",
        ),
    ),
    Topic(
        "Can you give me tips for a job interview?",
        "Research the company, prepare a few examples of your work, and arrive a little early.",
        (
            "Practise answering common questions out loud.",
            "Use short stories that show a problem, what you did and the result.",
            "Prepare two or three questions to ask the interviewer.",
            "Send a short thank-you note afterwards.",
        ),
    ),
    Topic(
        "How do I keep my houseplants alive?",
        "Give them the right amount of light and water only when the top of the soil is dry.",
        (
            "Most plants die from too much water, not too little.",
            "Pots need drainage holes so the roots do not rot.",
            "Turn the plants now and then so they grow evenly.",
            "Feed them a little fertiliser in spring and summer.",
        ),
    ),
    Topic(
        "How can I save money each month?",
        "Track what you spend for a month and set a small amount aside as soon as you are paid.",
        (
            "Automatic transfers make saving effortless.",
            "Cancel subscriptions you no longer use.",
            "Plan meals for the week to cut food waste.",
            "Compare prices before any big purchase.",
        ),
    ),
    Topic(
        "What is a good way to learn a new language?",
        "Practise a little every day and speak with real people as early as you can.",
        (
            "Language apps are great for vocabulary.",
            "Listening to podcasts or music helps your ear.",
            "Language exchange partners let you practise speaking for free.",
            "Do not fear mistakes: they are how you learn.",
        ),
    ),
    Topic(
        "How do I prepare for a long flight?",
        "Drink plenty of water, wear comfortable clothes, and stand up to stretch every couple of "
        "hours.",
        (
            "Bring a neck pillow and earplugs for sleeping.",
            "Download films or podcasts before you leave.",
            "Pack snacks in case the meals come late.",
            "Adjust to the new time zone as soon as you board.",
        ),
    ),
    Topic(
        "How do I make a simple pasta sauce?",
        "Soften garlic in olive oil, add a tin of chopped tomatoes and simmer for fifteen minutes.",
        (
            "A pinch of salt and sugar balances the acidity.",
            "Fresh basil at the end adds a lot of flavour.",
            "Stir in a spoon of pasta water to make it silky.",
            "It keeps in the fridge for three days.",
        ),
    ),
    Topic(
        "How can I be more productive at work?",
        "Plan your three most important tasks each morning and do them before checking messages.",
        (
            "Work in focused blocks of about fifty minutes with short breaks.",
            "Turn off notifications you do not need.",
            "Group small tasks such as e-mails together.",
            "Review the day briefly before you stop.",
        ),
    ),
    Topic(
        "How do I clean a cast iron pan?",
        "Rinse it with hot water, scrub off food with a brush, and dry it right away.",
        (
            "Avoid soaking it, because it will rust.",
            "Rub a thin layer of oil on it while it is still warm.",
            "A little coarse salt works as a gentle scrub.",
            "Mild soap is fine now and then.",
        ),
    ),
    Topic(
        "How do I start running?",
        "Begin with short runs mixed with walking, three times a week, and increase slowly.",
        (
            "Good running shoes prevent many injuries.",
            "Run at a pace where you can still talk.",
            "Add no more than about ten percent distance per week.",
            "Rest days matter as much as running days.",
        ),
    ),
    Topic(
        "How do I write a good e-mail?",
        "Put the main point in the first sentence and keep it short and clear.",
        (
            "Use a subject line that says what the e-mail is about.",
            "One e-mail should cover one topic.",
            "Say clearly what you need from the reader and by when.",
            "Read it once before sending.",
        ),
    ),
    Topic(
        "How can I reduce stress?",
        "Take short breaks, move your body every day, and talk to someone you trust.",
        (
            "Slow breathing for a minute calms the nervous system.",
            "Write down what worries you and the next small step for each item.",
            "Sleep and regular meals make a big difference.",
            "Limit the news and social media if they make you tense.",
        ),
    ),
    Topic(
        "How do I boil an egg?",
        "Lower the egg into boiling water and cook it for six minutes for a soft yolk or ten for a "
        "hard one.",
        (
            "Start with eggs at room temperature so they do not crack.",
            "Cool them in cold water right after cooking.",
            "Older eggs are easier to peel.",
            "A pinch of salt in the water does no harm.",
        ),
    ),
    Topic(
        "How do I back up my files?",
        "Keep one copy on an external drive and another in a cloud storage service.",
        (
            "Automatic backups are the ones that actually happen.",
            "Test restoring a file now and then.",
            "Keep the external drive away from your computer when not in use.",
            "Important documents deserve a third copy.",
        ),
    ),
    Topic(
        "What makes a good presentation?",
        "A clear message, few words on each slide, and practice out loud beforehand.",
        (
            "Start with why the topic matters to the audience.",
            "Use pictures and simple charts rather than long lists.",
            "Time yourself while practising.",
            "End with one thing you want people to remember.",
        ),
    ),
    Topic(
        "How do I make new friends in a new city?",
        "Join a club or class around something you enjoy and go regularly.",
        (
            "Volunteering is a good way to meet kind people.",
            "Say yes to invitations, even small ones.",
            "Neighbours and colleagues can become friends too.",
            "Friendships take time, so be patient.",
        ),
    ),
)
# fmt: on

TRAIN = Pools(
    _NAMES_TRAIN,
    _PLACES_TRAIN,
    _JOBS_TRAIN,
    _PETS_TRAIN,
    _HOBBIES_TRAIN,
    _DIETS_TRAIN,
    _TOPICS_TRAIN,
    _PARLEY_QUESTIONS_TRAIN,
    _UPSET_TRAIN,
)
"""What training rows are made of."""
