"""Benchmark of /explain on this machine: segment attributions for a typical conversation.

Prints the time of one full ``/explain`` (captum ``FeatureAblation`` over the prompt's
segments, one teacher-forced forward pass each, plus the sentiment word attributions and the
two pictures), and, in the same process, the baseline: captum's ``LLMAttribution`` wrapper
over the prompt's turns (fewer segments: the system turn is one), which re-runs the prompt
once per answer token.

Usage (the project installed, e.g. by ``make setup``)::

    python bench/explain.py              # 3 runs (about a minute on 2 cores)
    python bench/explain.py --runs 5 --skip-baseline
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from config import load_settings
from config.wiring import load_sentiment
from core.context import ContextBuilder
from core.types import ContextReport, Fact, Role, StoredMessage, UserProfile
from workers.explain import ModelExplainer
from workers.model import HfTokenCounter, LoadedModel, load_model

HISTORY = [
    StoredMessage(id=1, role=Role.USER, text="Hi! I'm planning a team offsite next month."),
    StoredMessage(id=2, role=Role.ASSISTANT, text="That sounds great! How can I help you plan it?"),
    StoredMessage(id=3, role=Role.USER, text="We are ten people and we like being outdoors."),
    StoredMessage(
        id=4, role=Role.ASSISTANT, text="A guided hike followed by a picnic could work well."
    ),
]
PROFILE = UserProfile(
    display_name="Ada",
    preferences={"length": "short"},
    facts=(Fact("The user lives in Oslo"), Fact("The user is vegetarian")),
)
QUESTION = "The last plan was useless. Suggest somewhere near home for lunch instead."
ANSWER = "How about a vegetarian restaurant in central Oslo, close to the office?"


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def baseline(loaded: LoadedModel, report: ContextReport) -> float:
    """Captum's LLMAttribution with FeatureAblation over the prompt's turns."""
    from captum.attr import FeatureAblation, LLMAttribution, TextTemplateInput

    turns = [t.as_dict() for t in report.turns]
    values = [t["content"] for t in turns]
    sentinel = "\x00{}\x00"
    chat = [{"role": t["role"], "content": sentinel.format(i)} for i, t in enumerate(turns)]
    rendered = loaded.tokenizer.apply_chat_template(
        chat, add_generation_prompt=True, tokenize=False
    )
    template = rendered.replace("{", "{{").replace("}", "}}")
    for i in range(len(values)):
        template = template.replace(sentinel.format(i), "{}")
    started = time.perf_counter()
    attribution = LLMAttribution(FeatureAblation(loaded.model), loaded.tokenizer)
    inputs = TextTemplateInput(template=template, values=values, baselines=[""] * len(values))
    attribution.attribute(inputs, target=ANSWER, skip_tokens=[])
    return time.perf_counter() - started


def main(args: argparse.Namespace) -> None:
    settings = load_settings(temperature=0.0)
    loaded = load_model(settings)  # the explainer reads the served model's weights
    tokens = HfTokenCounter(loaded.tokenizer)
    sentiment = load_sentiment(settings)
    builder = ContextBuilder(tokens, settings.conversation.system_prompt, settings.prompt_budget)
    report = builder.build(history=HISTORY, text=QUESTION, speaker=None, profile=PROFILE)
    answer = StoredMessage(id=5, role=Role.ASSISTANT, text=ANSWER, context=report)
    explainer = ModelExplainer(loaded, sentiment)
    times = []
    for run in range(args.runs):
        log(f"/explain {run + 1}/{args.runs} …")
        started = time.perf_counter()
        explanation = explainer.explain(answer)
        times.append(time.perf_counter() - started)
    segments = len([s for s in report.segments if s.included])
    print(
        f"\nParley /explain benchmark: {loaded.version} on {loaded.device}, "
        f"{settings.llm.cpu_threads} thread(s), {report.prompt_tokens} prompt tokens, "
        f"{segments} segments, {tokens.count_text(ANSWER)} answer tokens"
    )
    print(
        f"{'full /explain (segments + mood + pictures), p50':<52} {statistics.median(times):.2f} s"
        f"  (min {min(times):.2f}, max {max(times):.2f}, {args.runs} runs)"
    )
    print(f"{'pictures attached':<52} {1 + len(explanation.more_pictures)}")
    if not args.skip_baseline:
        log("baseline: captum LLMAttribution, one prompt pass per answer token …")
        slow = baseline(loaded, report)
        ratio = slow / statistics.median(times)
        print(
            f"{'baseline: captum LLMAttribution over the turns':<52} {slow:.2f} s  "
            f"(Parley is {ratio:.1f}x faster)"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--skip-baseline", action="store_true")
    main(parser.parse_args())
