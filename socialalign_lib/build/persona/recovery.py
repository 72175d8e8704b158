"""Persona recovery: how much of the embedded world's latent truth does an extracted persona recover?

Each backend writes free text; :func:`decode_persona` maps it back to the world's latent vocabulary with keyword
dictionaries (synonyms, not exact strings, so a GPT-4 answer reads the same as the statistical backend's), and
:func:`persona_recovery` scores it against the world's latent users next to chance baselines, so a notebook can show
how much of a user each backend really recovers. The world is an argument (its ``latent_users``), never an import.

(Parsing and repairing a model's raw answer into the five items is the one persona parser,
``socialalign_lib.persona_text.parse_persona``.)
"""

from __future__ import annotations

import re
from collections import Counter
from typing import TYPE_CHECKING, Any

import numpy as np

from socialalign_lib.data.schema import Persona

if TYPE_CHECKING:  # for the annotation only: the build stage never imports the simulator
    from socialalign_lib.world import World

CATEGORY_SYNONYMS: dict[str, tuple[str, ...]] = {
    "tech": ("科技", "数码", "互联网", "人工智能", "AI", "芯片"),
    "prices": ("物价", "价格", "房价", "房租", "油价", "消费", "生活成本"),
    "sports": ("体育", "运动", "足球", "篮球", "赛事", "比赛"),
    "entertainment": ("娱乐", "影视", "明星", "综艺", "电影", "音乐", "追星"),
    "education": ("教育", "学校", "升学", "高考", "孩子学习"),
    "health": ("健康", "医疗", "看病", "医保", "养生"),
    "environment": ("环境", "环保", "生态", "空气"),
    "transport": ("交通", "出行", "通勤", "地铁", "高铁"),
    "food": ("美食", "吃", "餐饮", "饮食", "小吃"),
    "society": ("社会", "民生", "社会事件", "公益"),
}
TONE_WORDS: dict[str, tuple[str, ...]] = {
    "optimist": ("积极", "乐观", "正面", "正能量"),
    "pessimist": ("消极", "悲观", "负面", "不满", "愤怒"),
    "even": ("中性", "中立", "平和", "客观", "平稳"),
}
PERSONALITY_WORDS: dict[str, tuple[str, ...]] = {
    "rational": ("理性", "严谨", "冷静", "客观", "务实"),
    "humorous": ("幽默", "风趣", "诙谐", "搞笑", "调侃"),
    "emotional": ("感性", "细腻", "多愁善感", "共情", "敏感"),
    "blunt": ("直率", "敢言", "犀利", "直接", "尖锐", "直爽"),
    "mild": ("温和", "友善", "平和", "包容", "随和"),
}
VALUE_WORDS: dict[str, tuple[str, ...]] = {
    "tech_optimist": ("科技", "进步", "创新"),
    "frugal_worker": ("务实", "节俭", "民生", "生活成本"),
    "sports_patriot": ("运动", "集体荣誉", "爱国", "体育"),
    "fan_culture": ("偶像", "追求快乐", "追星", "粉丝"),
    "anxious_parent": ("教育", "家庭", "孩子", "安全"),
    "eco_activist": ("环保", "可持续", "生态"),
    "foodie": ("美食", "享受生活", "吃"),
    "neutral_observer": ("客观", "中立", "不轻易"),
    "civic_critic": ("公平", "不公", "批评", "正义"),
}
LENGTH_WORDS: dict[str, tuple[str, ...]] = {
    "short": ("简短", "简洁", "短小", "言简意赅", "短"),
    "long": ("长篇", "较长", "详细", "长文", "长"),
    "medium": ("适中", "中等", "一般长度"),
}
_NO_EMOJI = re.compile(r"(不|少|很少|极少|没有|无)(用|使用|爱用)?(表情|emoji)")


def _first_label(text: str, words: dict[str, tuple[str, ...]]) -> str | None:
    """The label whose keyword appears first in ``text`` (longer keywords win ties at one position)."""
    best: tuple[int, int, str] | None = None
    for label, kws in words.items():
        for w in kws:
            i = text.find(w)
            if i >= 0 and (best is None or (i, -len(w)) < (best[0], best[1])):
                best = (i, -len(w), label)
    return best[2] if best else None


def _best_label(text: str, words: dict[str, tuple[str, ...]]) -> str | None:
    """The label with the most keyword hits; ties go to the earliest hit."""
    scores = {k: sum(w in text for w in v) for k, v in words.items()}
    if not any(scores.values()):
        return None
    top = max(scores.values())
    return _first_label(text, {k: v for k, v in words.items() if scores[k] == top})


def interest_categories(text: str) -> list[str]:
    """Category keys named in an interests item, in order of first mention (category names and synonyms)."""
    pos = {}
    for cat, words in CATEGORY_SYNONYMS.items():
        idx = [text.find(w) for w in words if w in text]
        if idx:
            pos[cat] = min(idx)
    return sorted(pos, key=pos.get)  # type: ignore[arg-type]


def decode_persona(persona: Persona) -> dict[str, Any]:
    """Map a persona's free text back to the world's latent vocabulary (None where nothing is recognised).

    Works on any backend's output: keyword dictionaries with synonyms, not exact strings, so a GPT-4 answer
    such as "科技、娱乐新闻" or "情感倾向：通常是积极的" is read the same way as the statistical backend's.
    """
    style = persona.language_style
    quoted = re.findall(r"[“\"「『]([^”\"」』]{1,12})[”\"」』]", style)
    return {
        "interests": interest_categories(persona.interests),
        "emotional_baseline": _first_label(persona.emotional_tone, TONE_WORDS),
        "length_class": _first_label(style, LENGTH_WORDS),
        "emoji": ("表情" in style or "emoji" in style.lower()) and not _NO_EMOJI.search(style),
        "catch_phrase": quoted[0] if quoted else None,
        "personality": _best_label(persona.personality, PERSONALITY_WORDS),
        "archetype": _best_label(persona.values, VALUE_WORDS),
    }


def persona_recovery(extracted: dict[str, Persona], world: World) -> dict[str, float]:
    """Score personas against the world's latent users; every score comes with its chance baseline.

    Metrics (means over the users in ``extracted`` that exist in the world):

    * ``interests_overlap@3`` — |predicted top-3 ∩ true top-3 categories| / 3. ``_chance``: a random 3 of the
      K categories (= 3/K); ``_popular``: always the 3 categories most followed in the world.
    * ``emotional_tone_acc`` (pessimist / even / optimist), ``length_acc`` (short / medium / long),
      ``emoji_acc`` (爱用表情 ⇔ true emoji rate ≥ 0.5), ``catch_phrase_acc`` (the quoted phrase is one of the
      user's catch-phrases, or none quoted when the user has none), ``personality_acc`` (5 classes),
      ``values_acc`` (the 9 value archetypes). ``_chance`` for these: always predicting the most frequent
      true class among the scored users (a stronger baseline than uniform guessing).

    ``coverage`` is the share of world users with a persona; ``n_users`` how many were scored.
    """
    cats = list(CATEGORY_SYNONYMS)
    users = [uid for uid in extracted if uid in world.latent_users]
    out: dict[str, float] = {
        "n_users": float(len(users)),
        "coverage": len(users) / max(1, len(world.latent_users)),
    }
    if not users:
        return out
    truth = [world.latent_users[u] for u in users]
    pred = [decode_persona(extracted[u]) for u in users]
    popular = [
        c
        for c, _ in sorted(
            ((c, sum(lu.interests.get(c, 0.0) for lu in world.latent_users.values())) for c in cats),
            key=lambda kv: -kv[1],
        )[:3]
    ]
    out["interests_overlap@3"] = float(
        np.mean(
            [
                len(set(p["interests"][:3]) & set(t.top_interests(3))) / 3
                for p, t in zip(pred, truth, strict=True)
            ]
        )
    )
    out["interests_overlap@3_chance"] = 3 / len(cats)
    out["interests_overlap@3_popular"] = float(
        np.mean([len(set(popular) & set(t.top_interests(3))) / 3 for t in truth])
    )

    def acc(name: str, y_pred: list[Any], y_true: list[Any]) -> None:
        out[name] = float(np.mean([a == b for a, b in zip(y_pred, y_true, strict=True)]))
        out[name + "_chance"] = Counter(y_true).most_common(1)[0][1] / len(y_true)

    acc("emotional_tone_acc", [p["emotional_baseline"] for p in pred], [t.emotional_baseline for t in truth])
    acc("length_acc", [p["length_class"] for p in pred], [t.length_class for t in truth])
    acc("emoji_acc", [p["emoji"] for p in pred], [t.emoji_rate >= 0.5 for t in truth])
    catch_ok = [
        (p["catch_phrase"] in t.catch_phrases) if t.catch_phrases else p["catch_phrase"] is None
        for p, t in zip(pred, truth, strict=True)
    ]
    out["catch_phrase_acc"] = float(np.mean(catch_ok))
    out["catch_phrase_acc_chance"] = float(np.mean([not t.catch_phrases for t in truth]))  # "never quote one"
    acc("personality_acc", [p["personality"] for p in pred], [t.personality for t in truth])
    acc("values_acc", [p["archetype"] for p in pred], [t.archetype for t in truth])
    return out


def recovery_table(report: dict[str, float]):
    """``persona_recovery``'s dict as a tidy table (metric, score, chance) for notebooks."""
    import pandas as pd

    rows = [
        {"metric": k, "score": v, "chance": report.get(k + "_chance", float("nan"))}
        for k, v in report.items()
        if not k.endswith(("_chance", "_popular")) and k not in ("n_users", "coverage")
    ]
    return pd.DataFrame(rows)
