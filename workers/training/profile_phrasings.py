"""The phrasings of the profile-following data set: questions people ask and answer templates.

Completions, by kind (``{name}``, ``{place}`` and the like are filled in by
:mod:`workers.training.profile_probe`). Formal answers use no contractions; casual ones open
casually.
"""

from __future__ import annotations

__all__ = [
    "CASUAL_CLOSERS",
    "CASUAL_OPENERS",
    "DINNER_ANSWERS",
    "DINNER_QUESTIONS",
    "FORMAL_OPENERS",
    "GREETINGS",
    "GREETING_ANSWERS",
    "HOBBY_ANSWERS",
    "HOBBY_QUESTIONS",
    "JOB_ANSWERS",
    "JOB_QUESTIONS",
    "NAME_ANSWERS",
    "NAME_QUESTIONS",
    "NO_NAME_ANSWERS",
    "PARLEY_ANSWERS",
    "PET_ANSWERS",
    "PET_QUESTIONS",
    "PLACE_ANSWERS",
    "PLACE_QUESTIONS",
    "PLACE_TRIP_ANSWERS",
    "PLACE_TRIP_QUESTIONS",
    "UPSET_ANSWERS",
    "UPSET_HELP",
]


FORMAL_OPENERS = ("Certainly.", "Of course.", "Certainly, {name}.", "Good question.")
CASUAL_OPENERS = ("Hey {name}!", "Sure thing!", "Oh, easy one!", "Hey!", "Sure!")
CASUAL_CLOSERS = ("Hope that helps!", "You've got this!", "Have fun with it!", "")

NAME_QUESTIONS = (
    "What is my name?",
    "What's my name?",
    "Do you know my name?",
    "Do you remember my name?",
    "Who am I?",
    "Can you tell me my name?",
    "what's my name",
    "Say my name.",
)
NAME_ANSWERS = (
    "Your name is {name}.",
    "You are {name}.",
    "Your name is {name}. How can I help you?",
    "Of course: you are {name}.",
    "You told me your name is {name}.",
    "You're {name}!",
)
NO_NAME_ANSWERS = (
    "I don't know your name yet. You can tell me with /profile name followed by your name.",
    "You haven't told me your name yet. Set it with /profile name and I'll remember it.",
)
GREETINGS = ("Hi!", "Hello", "Hey there", "Good morning!", "hi", "Hello Parley!", "Hey!")
GREETING_ANSWERS = (
    "Hi {name}! How can I help you today?",
    "Hello {name}! What can I do for you?",
    "Hey {name}, good to see you! What's on your mind?",
    "Good to hear from you, {name}. How can I help?",
)
PLACE_QUESTIONS = (
    "Where do I live?",
    "Which city do I live in?",
    "Do you know where I live?",
    "Where's my home town?",
)
PLACE_ANSWERS = (
    "You live in {place}.",
    "You told me you live in {place}.",
    "You live in {place}. How can I help?",
)
JOB_QUESTIONS = ("What do I do for a living?", "What is my job?", "Do you know what I work as?")
JOB_ANSWERS = ("You work as {job}.", "You are {job}.", "You told me you work as {job}.")
PET_QUESTIONS = ("What is my pet's name?", "What's my pet called?", "Do you remember my pet?")
PET_ANSWERS = (
    "Your {kind} is called {pet}.",
    "You have a {kind} named {pet}.",
    "Your pet is {pet}, your {kind}.",
)
HOBBY_QUESTIONS = (
    "What should I do this weekend?",
    "Any ideas for my free time?",
    "I'm bored, what could I do?",
    "What should I do on Saturday?",
)
HOBBY_ANSWERS = (
    "Since you love {hobby}, how about {activity} this weekend? You could invite a friend along.",
    "You enjoy {hobby}, so why not spend some time {activity}? It is a great way to recharge.",
    "How about {activity}? You like {hobby}, and a free day is the perfect time for it.",
)
DINNER_QUESTIONS = (
    "Suggest a dinner for tonight.",
    "What should I cook for dinner?",
    "Any ideas for dinner?",
    "What should I eat tonight?",
)
DINNER_ANSWERS = (
    "Since you are {diet}, how about {dish}? It is simple and filling.",
    "As you are {diet}, {dish} would be a good choice tonight.",
    "Here is a {diet} idea: {dish}. It takes about thirty minutes.",
)
PLACE_TRIP_QUESTIONS = (
    "Any ideas for a day out near me?",
    "What could I do nearby this afternoon?",
)
PLACE_TRIP_ANSWERS = (
    "In {place}, you could visit a museum or take a walk through the old town.",
    "Around {place}, a walk in a park or a visit to a local market would be lovely.",
)
PARLEY_ANSWERS = (
    "I'm {me}, an assistant in this chat. I can answer questions and help with ideas.",
    "My name is {me}. I'm a friendly assistant here to help you.",
    "I'm {me}, your assistant. What can I help you with, {name}?",
    "I'm {me}, not a person but an AI assistant. How can I help?",
)
UPSET_ANSWERS = (
    "I'm sorry, that sounds really frustrating. {help}",
    "That sounds stressful, and I understand why you are upset. {help}",
    "I'm sorry you're dealing with this. {help}",
)
UPSET_HELP = (
    "Let's take it one step at a time: what happened just before it went wrong?",
    "Take a short break if you can, then tell me more and we can sort it out together.",
    "Tell me a bit more and I'll help you find a way forward.",
)
