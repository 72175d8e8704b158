"""Turn latent users/topics into Chinese text: news, hashtags, replies, history posts.

A reply is assembled from clauses whose *choice* depends on the topic (category phrase bank, the entity and
city of the news), on the sentiment drawn from ``p(s|u,t)``, and on the user's style (length, catch-phrases,
emoji, end punctuation, personality clause, identity phrase of the values archetype). So a model that sees
the news and the user's history can learn what this user would write; one template would teach nothing.
"""

from __future__ import annotations

import numpy as np

from . import lexicon as lx
from .latent import LatentTopic, LatentUser, polarity

_POLAR_KEY = {-1: "negative", 0: "neutral", 1: "positive"}
_BANK_KEY = {-1: "neg", 0: "neu", 1: "pos"}


def fill(template: str, topic: LatentTopic | None = None, rng: np.random.Generator | None = None) -> str:
    slots = {"thing": lx.DAILY_THINGS[int(rng.integers(len(lx.DAILY_THINGS)))] if rng is not None else "咖啡"}
    if topic is not None:
        slots.update(entity=topic.entity, city=topic.city, num=str(topic.num))
    elif rng is not None:
        slots.update(num=str(int(rng.integers(2, 99))), city=lx.CITIES[int(rng.integers(len(lx.CITIES)))])
    return template.format(**slots)


def hashtag(topic: LatentTopic) -> str:
    """Short and specific, like a trending hashtag: city + entity + the event's gist."""
    gist = {
        "good": ["获点赞", "新进展", "好消息"],
        "bad": ["引争议", "惹众怒", "出问题"],
        "mixed": ["最新消息", "怎么看", "新动向"],
    }
    return f"{topic.city}{topic.entity}{gist[topic.kind][topic.num % 3]}"


def news_text(topic: LatentTopic, rng: np.random.Generator) -> str:
    spec = lx.CATEGORIES[topic.category]
    leads = [str(x) for x in rng.choice(spec[topic.kind], size=2, replace=False)]
    lead = fill(leads[0], topic)
    # a second sentence adds detail; informational topics mix both sides, as real news does
    detail_tpl = (
        str(rng.choice(spec[str(rng.choice(["good", "bad"]))])) if topic.kind == "mixed" else leads[1]
    )
    detail = fill(detail_tpl, topic)
    closing = str(
        rng.choice(
            [
                "相关部门表示将持续关注。",
                f"记者从{topic.city}有关方面获悉，后续细则将陆续公布。",
                "此事在网上引发广泛讨论。",
                f"据统计，相关话题阅读量已超过{topic.num}亿。",
            ]
        )
    )
    return f"{lead}。据悉，{detail}。{closing}"


def _end(text: str, user: LatentUser) -> str:
    return text + lx.END_PUNCT[user.end_punct]


def reply_text(
    user: LatentUser,
    topic: LatentTopic,
    sentiment: str,
    labels: tuple[str, ...],
    rng: np.random.Generator,
    tag: str | None = None,
) -> str:
    """One reply in the user's voice. ``tag`` (the topic hashtag) is included per the user's hashtag habit."""
    pol = polarity(sentiment, labels)
    spec = lx.CATEGORIES[topic.category]
    lo, hi = lx.LENGTH_CLASSES[user.length_class]
    n_clauses = int(rng.integers(lo, hi + 1))
    bank = [fill(str(x), topic) for x in rng.choice(spec[_BANK_KEY[pol]], size=3, replace=False)]
    core = bank[0]
    pool = [
        str(lx.ARCHETYPES[user.archetype]["identity"]) + "，" + bank[1],
        str(rng.choice(lx.GENERIC[_POLAR_KEY[pol]])),
        str(rng.choice(lx.PERSONALITIES[user.personality]["extra"])),  # type: ignore[arg-type]
        bank[2],
    ]
    order = rng.permutation(len(pool))
    clauses = list(dict.fromkeys([core] + [pool[i] for i in order]))[:n_clauses]
    if user.catch_phrases and rng.random() < user.catch_rate:
        clauses.insert(0, str(rng.choice(user.catch_phrases)))
    text = "，".join(clauses)
    if rng.random() < user.emoji_rate:
        emo = (
            user.favourite_emoji[_POLAR_KEY[pol]]
            if rng.random() < 0.7
            else str(rng.choice(lx.EMOJI[_POLAR_KEY[pol]]))
        )
        text = _end(text, user) + emo * int(rng.integers(1, 3))
    else:
        text = _end(text, user)
    if tag is not None and rng.random() < user.hashtag_rate:
        text = f"#{tag}#{text}"
    return text


def daily_post(user: LatentUser, rng: np.random.Generator) -> str:
    text = fill(str(rng.choice(lx.DAILY_LIFE)), None, rng)
    if user.catch_phrases and rng.random() < user.catch_rate:
        text = f"{rng.choice(user.catch_phrases)}，{text}"
    text = _end(text, user)
    if rng.random() < user.emoji_rate:
        text += user.favourite_emoji["positive"]
    return text


def junk_post(rng: np.random.Generator) -> str:
    return fill(str(rng.choice(lx.JUNK_POSTS)), None, rng)
