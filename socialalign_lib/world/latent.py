"""Latent truth of the embedded world: who users are, what topics are, and the documented models.

Sentiment model, for user u replying to topic t of category c about entity x_t, published in city l_t::

    z(u,t)      = rho_u * v_t + stance_u[c] + e_u + a_u[x_t]
    logits(u,t) = ( -kappa_u * z,  beta_t + beta_u - 3 * gamma * interest_u[c] - 0.8 * [loc_u = l_t],  +kappa_u * z )
    p(s|u,t)    = softmax(logits)                                                        # neg, neu, pos

* ``v_t``          topic valence: good news > 0, bad news < 0, informational ~ 0;
* ``rho_u``        +1, or -1 for the few contrarians who take the other side of every story;
* ``stance_u[c]``  per-category stance from the user's values archetype plus noise (warm about tech, angry
about prices);
* ``e_u``          emotional baseline (pessimist / even / optimist);
* ``kappa_u``      expressiveness from personality (emotional users rarely stay neutral);
* ``beta_t``       how informational the topic is (more neutral replies); ``beta_u`` a neutral tendency;
* ``interest_u[c]`` users care, and take sides, about what they follow (gamma = 1; the 3 scales a weight that
                   sums to 1 over 10 categories);
* ``a_u[x]``       fans (+2, ``AFFINITY``) and critics (-2) of a few entities of the categories they follow (most users
                   have none): they praise or attack whatever news names that entity;
* ``loc_u = l_t``  local news: people rarely stay neutral about their own city.

Who replies (crowd self-selection). Topic t's repliers are drawn without replacement with weights::

    w(u,t) = (interest_u[c] + 0.03) * exp(lambda * (2.0 * |a_u[x_t]| + 1.0 * [loc_u = l_t] + 0.8 * |z(u,t)|))

Fans and critics of the entity in the news, locals, and people with a strong opinion on the story reply more,
the way they do on Weibo. So the crowd's *composition* - and with it its sentiment distribution - varies between
topics of the same category and kind, in ways the repliers' histories reveal (histories are drawn with the same
weights at a quarter of the strength and without the opinion term, so a fan's history praises the entity
while its topics still follow the user's interests). ``lambda`` is
``WorldConfig.crowd_selection``, 2 by default: with 1, a paired test over the course's 12 unseen topics told a
perfect persona-aware model from a persona-blind one in 59% of simulated experiments, with 2 in 85%
(``world/headroom.py``; notebook 00 prints the current figures). ``crowd_selection=0`` restores selection by
category interest alone, where a topic's expected crowd is fixed by its news and knowing the repliers cannot
help at the crowd level.

The sentiment of a reply therefore depends on the *interaction* of user and topic: neither the topic alone nor
the persona alone explains it, which is what makes personalised generation worth learning.

Popularity model of a reply (likes), used by PopALM::

    log1p(likes) ~ Normal(mu, 0.6),   mu = heat_t + 0.35*log10(1+followers) + 0.7*[non-neutral]
                                      + 0.6*[humorous] + 0.4*[has emoji] + 0.3*[medium length] - 0.4*[long]
                                      + 0.9*exp(-rank/4)          # early replies collect more likes

The text-visible terms (sentiment strength, humour, emoji, length) are learnable from the reply; followers and
rank are the noise that makes likes a noisy label (PopALM's reason for a curriculum).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from . import lexicon as lx

CATEGORY_KEYS: tuple[str, ...] = tuple(lx.CATEGORIES)
GAMMA_INTEREST = 1.0
AFFINITY = 2.0  # a fan's (+) or critic's (-) extra stance on a named entity
HOT_ENTITIES = 4  # fans and critics gather around the first few entities of each category
LOCAL_NEUTRAL_DROP = 0.8  # local news: fewer neutral replies
#: Self-selection weights of (|entity affinity|, local news, |z|): see the module docstring.
SELECTION_TERMS: tuple[float, float, float] = (2.0, 1.0, 0.8)
#: Histories are drawn with lambda * HISTORY_SELECTION and no opinion term: a fan still posts about the entity
#: ~7x more often than others do, while the topics of a history keep following the user's interests and
#: emotional baseline (stronger pulls made both unreadable from a 10-post history).
HISTORY_SELECTION = 0.25


def softmax(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@dataclass
class LatentUser:
    """Everything the simulator knows about a user; exported as truth beside the data."""

    user_id: str
    screen_name: str
    archetype: str
    personality: str
    emotional_baseline: str
    contrarian: bool
    interests: dict[str, float]  # category -> weight, sums to 1
    stance: dict[str, float]  # category -> stance
    neutral_tendency: float
    length_class: str
    emoji_rate: float
    favourite_emoji: dict[str, str]  # sentiment -> emoji
    end_punct: str
    catch_phrases: list[str]
    catch_rate: float
    hashtag_rate: float
    followers: int
    gender: str
    location: str
    entity_affinity: dict[str, float] = field(
        default_factory=dict
    )  # entity -> +AFFINITY (fan) / -AFFINITY (critic)

    to_dict = asdict

    @property
    def expressiveness(self) -> float:
        return float(lx.PERSONALITIES[self.personality]["expressiveness"])

    @property
    def baseline_value(self) -> float:
        return lx.EMOTIONAL_BASELINES[self.emotional_baseline][0]

    def top_interests(self, k: int = 3) -> list[str]:
        return [c for c, _ in sorted(self.interests.items(), key=lambda kv: (-kv[1], kv[0]))[:k]]

    def true_persona(self) -> dict[str, str]:
        """The paper's five items, rendered from the latent truth (each ≤ 20 characters)."""
        interests = "、".join(str(lx.CATEGORIES[c]["name"]) for c in self.top_interests(3))
        style = [lx.LENGTH_ZH[self.length_class]]
        if self.emoji_rate >= 0.5:
            style.append("爱用表情")
        if self.catch_phrases:
            style.append(f"常说“{self.catch_phrases[0]}”")
        tone = lx.EMOTIONAL_BASELINES[self.emotional_baseline][1]
        values = str(lx.ARCHETYPES[self.archetype]["zh"]) + ("，爱唱反调" if self.contrarian else "")
        fan = [e for e, a in sorted(self.entity_affinity.items()) if a > 0]
        if fan and len(values) + len(fan[0]) + 3 <= 20:
            values += f"，{fan[0]}粉"
        return {
            "interests": interests,
            "language_style": "，".join(style),
            "emotional_tone": tone,
            "personality": str(lx.PERSONALITIES[self.personality]["zh"]),
            "values": values,
        }


@dataclass
class LatentTopic:
    topic_id: str
    category: str
    kind: str  # good / bad / mixed
    valence: float
    neutral_bias: float
    heat: float
    entity: str
    city: str
    num: int
    day: int  # days since the world's epoch

    to_dict = asdict


def sentiment_probs(user: LatentUser, topic: LatentTopic, labels: tuple[str, ...]) -> np.ndarray:
    """p(s | u, t) over ``labels``. 3 labels (neg, neu, pos) is the model above; 2 drops neutral; 5 splits
    the polar classes by strength (strongly negative, negative, neutral, positive, strongly positive)."""
    z = opinion(user, topic)
    k = user.expressiveness
    neu = (
        topic.neutral_bias
        + user.neutral_tendency
        - GAMMA_INTEREST * user.interests.get(topic.category, 0.0) * 3
    )
    neu -= LOCAL_NEUTRAL_DROP * (user.location == topic.city)
    if len(labels) == 3:
        return softmax(np.array([-k * z, neu, k * z]))
    if len(labels) == 2:
        return softmax(np.array([-k * z, k * z]))
    if len(labels) == 5:
        return softmax(np.array([-2 * k * z - 1.0, -k * z, neu, k * z, 2 * k * z - 1.0]))
    raise ValueError(f"the world's sentiment model supports 2, 3 or 5 labels, got {labels!r}")


def opinion(user: LatentUser, topic: LatentTopic) -> float:
    """z(u,t): the signed strength of u's opinion on t (> 0 praise, < 0 criticism)."""
    rho = -1.0 if user.contrarian else 1.0
    return (
        rho * topic.valence
        + user.stance.get(topic.category, 0.0)
        + user.baseline_value
        + user.entity_affinity.get(topic.entity, 0.0)
    )


def reply_weight(
    user: LatentUser, topic: LatentTopic, selection: float, floor: float = 0.03, opinion_term: bool = True
) -> float:
    """w(u,t) of the module docstring: how likely u is among t's repliers (relative to other users).
    ``opinion_term=False`` drops the |z| term: histories are drawn that way, so that what a user posts about
    still follows their interests (a history dominated by whatever they feel strongly about would hide them)."""
    a, loc, op = SELECTION_TERMS
    score = (
        a * abs(user.entity_affinity.get(topic.entity, 0.0))
        + loc * (user.location == topic.city)
        + (op * abs(opinion(user, topic)) if opinion_term else 0.0)
    )
    return (user.interests.get(topic.category, 0.0) + floor) * math.exp(selection * score)


def polarity(label: str, labels: tuple[str, ...]) -> int:
    """-1 / 0 / +1 for a label, by its position in an ordered (negative → positive) label set."""
    i, n = labels.index(label), len(labels)
    mid = (n - 1) / 2
    return int(np.sign(i - mid))


def likes_mu(
    heat: float, followers: int, polar: int, personality: str, has_emoji: bool, length_class: str, rank: int
) -> float:
    return (
        heat
        + 0.35 * np.log10(1 + followers)
        + 0.7 * (polar != 0)
        + 0.6 * (personality == "humorous")
        + 0.4 * has_emoji
        + 0.3 * (length_class == "medium")
        - 0.4 * (length_class == "long")
        + 0.9 * np.exp(-rank / 4)
    )


def sample_user(rng: np.random.Generator, index: int) -> LatentUser:
    arche = str(rng.choice(list(lx.ARCHETYPES)))
    spec = lx.ARCHETYPES[arche]
    # interests: Dirichlet with the archetype's categories boosted
    alpha = np.full(len(CATEGORY_KEYS), 0.3)
    for c in spec["interests"]:  # type: ignore[union-attr]
        alpha[CATEGORY_KEYS.index(c)] += 2.5
    w = rng.dirichlet(alpha)
    interests = {c: round(float(x), 4) for c, x in zip(CATEGORY_KEYS, w)}
    stance = {c: round(float(spec["stance"].get(c, 0.0) + rng.normal(0, 0.3)), 4) for c in CATEGORY_KEYS}  # type: ignore[union-attr]
    personality = str(rng.choice(list(lx.PERSONALITIES)))
    baseline = str(rng.choice(list(lx.EMOTIONAL_BASELINES), p=[0.3, 0.4, 0.3]))
    length_class = str(rng.choice(list(lx.LENGTH_CLASSES), p=[0.35, 0.45, 0.2]))
    fav = {s: str(rng.choice(v)) for s, v in lx.EMOJI.items()}
    name = f"{rng.choice(lx.NAME_PREFIX)}{rng.choice(lx.NAME_CORE)}" + (
        str(rng.integers(10, 2025)) if rng.random() < 0.5 else ""
    )
    user = LatentUser(
        user_id=f"u{index:06d}",
        screen_name=f"{name}_{index}",
        archetype=arche,
        personality=personality,
        emotional_baseline=baseline,
        contrarian=bool(rng.random() < 0.08),
        interests=interests,
        stance=stance,
        neutral_tendency=round(float((1.2 if arche == "neutral_observer" else 0.0) + rng.normal(0, 0.3)), 4),
        length_class=length_class,
        emoji_rate=float(rng.choice([0.0, 0.3, 0.8], p=[0.35, 0.35, 0.3])),
        favourite_emoji=fav,
        end_punct=str(rng.choice(list(lx.END_PUNCT))),
        catch_phrases=[
            str(x) for x in rng.choice(lx.CATCH_PHRASES, size=int(rng.integers(0, 3)), replace=False)
        ],
        catch_rate=float(rng.choice([0.3, 0.7])),
        hashtag_rate=float(rng.choice([0.0, 0.2, 0.6], p=[0.5, 0.3, 0.2])),
        followers=int(np.exp(rng.normal(5.0, 1.6))),
        gender=str(rng.choice(["男", "女"])),
        location=str(rng.choice(lx.CITIES)),
    )
    # drawn last, so every attribute above is the same as in worlds without entity affinities
    for _ in range(int(rng.choice([0, 1, 2, 3], p=[0.2, 0.35, 0.3, 0.15]))):
        category = user.top_interests(3)[int(rng.integers(3))]
        entity = str(rng.choice(lx.CATEGORIES[category]["entities"][:HOT_ENTITIES]))
        user.entity_affinity[entity] = AFFINITY if rng.random() < fan_share(entity) else -AFFINITY
    return user


def fan_share(entity: str) -> float:
    """The share of an entity's followers who are fans rather than critics: a fixed property of the entity
    (some are loved, some divisive, some disliked), in [0.15, 0.85]."""
    digest = int.from_bytes(entity.encode("utf-8"), "little") % 1_000_003
    return 0.15 + 0.7 * (digest % 1000) / 999


def sample_topic(rng: np.random.Generator, index: int, prefix: str = "t") -> LatentTopic:
    category = CATEGORY_KEYS[int(rng.integers(len(CATEGORY_KEYS)))]
    kind = str(rng.choice(["good", "bad", "mixed"], p=[0.38, 0.38, 0.24]))
    valence = {"good": rng.uniform(0.6, 1.6), "bad": -rng.uniform(0.6, 1.6), "mixed": rng.uniform(-0.4, 0.4)}[
        kind
    ]
    spec = lx.CATEGORIES[category]
    return LatentTopic(
        topic_id=f"{prefix}{index:05d}",
        category=category,
        kind=kind,
        valence=round(float(valence), 4),
        neutral_bias=round(float((1.2 if kind == "mixed" else 0.0) + rng.normal(0, 0.4)), 4),
        heat=round(float(rng.uniform(0.5, 2.5)), 4),
        entity=str(rng.choice(spec["entities"])),
        city=str(rng.choice(lx.CITIES)),
        num=int(rng.integers(2, 90)),
        day=int(rng.integers(0, 720)),
    )
