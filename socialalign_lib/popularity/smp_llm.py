"""MultiSmpLLM data side: cold-start users, the paper's prompts (1/2/3-shot), number parsing and metrics.

MultiSmpLLM (Journal on Communications 2024, docs/methods.md#multismpllm-prompt) turns
popularity regression into a question an instruction-tuned LLM answers with a number: the user's earlier posts
(title, category, subcategory, concept, tags, image caption) with their scores, then a new post; answer its
score. Why: a cold-start user has 1-3 posts, too few for a per-user regressor, but enough to anchor an LLM
that reads them. This module is everything that does not need a model:

* :func:`posts_frame` / :func:`tpic_variant` - the world's SMPD-like posts (or a ``loaders.load_smpd`` /
  ``load_tpic2017`` DataFrame) in one column set; a TPIC-like variant with other fields for the cross-dataset
  test.
* :func:`select_users` / :func:`split_users` - the paper's sampling (>= 5 posts, keep each user's latest 5)
  and the disjoint alignment sample of §2.4.1.
* :func:`build_examples` - train form (history = first k posts, question = post n-1, answer its score) and
  test form (post n-1 joins the history, question = post n), §2.3; :func:`render_prompt` - Table 2's wording.
* :func:`parse_score` / :func:`score_predictions` - robust parsing with *explicit* failure accounting (the
  paper prints "—" for a model that gives no number and NaN SRC for one that gives the same number every
  time), MAE and Spearman's rank correlation, and :func:`bootstrap_ci` over test users.

The paper gives the prompt only in English; the world's posts are Chinese and the course model's tokenizer
was trained on Chinese text, so ``language="zh"`` (default) is our translation of the same sentences and
``language="en"`` is the paper's wording verbatim.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

# --------------------------------------------------------------------------------------------------------
# Posts
# --------------------------------------------------------------------------------------------------------

POST_COLUMNS: tuple[str, ...] = (
    "uid",
    "pid",
    "title",
    "category",
    "subcategory",
    "concept",
    "tags",
    "image_caption",
    "postdate",
    "user_avgview",
    "popularity",
)
"""The columns the prompt builder and the baselines read; the first eleven of ``loaders.SMP_COLUMNS`` plus the
world's ``image_caption`` (real SMPD has no caption: the paper made one with GPT-4, so it is optional
here)."""

SMPD_FIELDS: tuple[str, ...] = ("title", "category", "subcategory", "concept", "tags", "image_caption")
"""Fields rendered for SMPD-like posts (Table 2; tags added, as in the issue)."""
TPIC_FIELDS: tuple[str, ...] = ("titlelen", "tagcount", "date", "image_caption")
"""Fields rendered for TPIC2017-like posts (Table 8: title length, number of tags, release date, photo)."""


class SmpDataError(ValueError):
    """A posts frame that cannot make cold-start examples (missing column, too few posts, no label)."""


def posts_frame(posts: Iterable[Mapping[str, Any]] | pd.DataFrame) -> pd.DataFrame:
    """World ``smp_posts`` dicts, or a loader DataFrame, → one frame with :data:`POST_COLUMNS` first.

    Accepts ``loaders.load_smpd`` / ``load_tpic2017`` output as is (extra columns such as ``titlelen`` /
    ``tagcount`` are kept). ``uid`` / ``pid`` become strings, ``tags`` lists, missing text fields "", and rows
    are sorted by (uid, postdate, pid) so "a user's latest posts" is well defined. Raises
    :class:`SmpDataError` when ``uid``, ``pid``, ``postdate`` or ``popularity`` is missing.
    """
    df = posts.copy() if isinstance(posts, pd.DataFrame) else pd.DataFrame(list(posts))
    for col in ("uid", "pid", "postdate", "popularity"):
        if col not in df.columns:
            raise SmpDataError(f"posts frame has no {col!r} column (columns: {sorted(df.columns)})")
    df = df.drop(columns=[c for c in ("image_regions", "truth", "faces") if c in df.columns])
    for col in ("title", "category", "subcategory", "concept", "image_caption"):
        df[col] = df[col].fillna("").astype(str) if col in df.columns else ""
    if "tags" not in df.columns:
        df["tags"] = [[] for _ in range(len(df))]
    df["tags"] = [
        list(t) if isinstance(t, (list, tuple, np.ndarray)) else str(t or "").split() for t in df["tags"]
    ]
    if "user_avgview" not in df.columns:
        df["user_avgview"] = np.nan
    df["uid"] = df["uid"].astype(str)
    df["pid"] = df["pid"].astype(str)
    df["postdate"] = pd.to_numeric(df["postdate"], errors="coerce")
    df["popularity"] = pd.to_numeric(df["popularity"], errors="coerce").astype(float)
    df = df.sort_values(["uid", "postdate", "pid"], kind="stable").reset_index(drop=True)
    return df[list(POST_COLUMNS) + [c for c in df.columns if c not in POST_COLUMNS]]


def extra_world_users(world: Any, n_users: int) -> list[dict]:
    """``n_users`` more photo users from the world's own sampler (``world.smp``), indices after the world's
    last one, so no uid overlaps ``world.smp_posts`` - the users a larger world of the same seed would have.
    The cross-dataset test draws its TPIC-like users here: a new sample, like the paper's TPIC2017 users."""
    from socialalign_lib.world.smp import concept_themes, sample_smp_user_posts

    cfg = world.config
    themes = concept_themes(cfg.seed)
    start = cfg.n_smp_users
    return [
        p
        for i in range(start, start + n_users)
        for p in sample_smp_user_posts(cfg.seed, i, cfg.smp_posts_per_user, themes)
    ]


def tpic_variant(df: pd.DataFrame, keep_caption: bool = True) -> pd.DataFrame:
    """The same posts as TPIC2017 would describe them: no title text, tags, category or concept, but
    ``titlelen`` / ``tagcount`` (TPIC's USER_META) and the post date; the caption stays when ``keep_caption``
    (TPIC has photos, which the paper captions). Used for the cross-dataset test of §3.6 on the world."""
    out = df.copy()
    if "titlelen" not in out.columns:
        out["titlelen"] = [len(str(t)) for t in out["title"]]
    if "tagcount" not in out.columns:
        out["tagcount"] = [len(t) for t in out["tags"]]
    out["title"] = ""
    out["category"] = out["subcategory"] = out["concept"] = ""
    out["tags"] = [[] for _ in range(len(out))]
    if not keep_caption:
        out["image_caption"] = ""
    return out


@dataclass
class SampleConfig:
    """The paper's cold-start sampling (§3.1): users with >= ``min_posts`` posts, ``n_users`` of them drawn at
    random (None = all), each keeping their latest ``keep_last`` posts."""

    min_posts: int = 5
    keep_last: int = 5
    n_users: int | None = None
    seed: int = 0


def select_users(df: pd.DataFrame, cfg: SampleConfig | None = None) -> pd.DataFrame:
    """Apply :class:`SampleConfig` to a :func:`posts_frame`; unlabelled posts are dropped first."""
    cfg = cfg or SampleConfig()
    if cfg.keep_last > cfg.min_posts:
        raise ValueError(f"keep_last ({cfg.keep_last}) must not exceed min_posts ({cfg.min_posts})")
    df = df[df["popularity"].notna()]
    counts = df.groupby("uid").size()
    users = sorted(counts[counts >= cfg.min_posts].index)
    if not users:
        raise SmpDataError(f"no user has >= {cfg.min_posts} labelled posts")
    if cfg.n_users is not None and cfg.n_users < len(users):
        rng = np.random.default_rng(cfg.seed)
        users = sorted(rng.choice(users, size=cfg.n_users, replace=False).tolist())
    kept = df[df["uid"].isin(users)].groupby("uid", sort=True, group_keys=False).tail(cfg.keep_last)
    return kept.reset_index(drop=True)


def split_users(
    df: pd.DataFrame, align_fraction: float = 0.5, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(main, alignment): disjoint user samples. The main users give SFT (train form) and the test set (test
    form); the alignment users give the preference pairs of §2.4.1 ("a sub-dataset of the same size drawn the
    same way, in test form"), so no test answer is ever seen during alignment."""
    users = np.array(sorted(df["uid"].unique()))
    rng = np.random.default_rng([seed, 1])
    n_align = int(round(align_fraction * len(users)))
    if not 0 < n_align < len(users):
        raise SmpDataError(f"cannot split {len(users)} users with align_fraction={align_fraction}")
    align = set(rng.choice(users, size=n_align, replace=False).tolist())
    is_align = df["uid"].isin(align)
    return df[~is_align].reset_index(drop=True), df[is_align].reset_index(drop=True)


# --------------------------------------------------------------------------------------------------------
# Prompts
# --------------------------------------------------------------------------------------------------------

INSTRUCTION = {
    "en": (
        "Input a user's historical posts on social media along with the popularity of these posts, "
        "and provide the popularity score for this new post based on this information. Output a number."
    ),
    "zh": "输入一个用户在社交媒体上的历史帖子以及这些帖子的流行度，请根据这些信息给出这条新帖子的流行度得分。输出一个数字。",  # noqa: E501
}
_TEXT = {
    "en": {
        "user": "The target user ID is {uid}. ",
        "intro": "The information and popularity of the posts published by this user are as follows: ",
        "post": "post {pid}",
        "new": "The target new post is {pid}",
        "first": "The {label} of {post} is {value}",
        "next": ", the {label} is {value}",
        "end": ". ",
        "photo": "The photo in the post shows {caption}. ",
        "new_photo": "The photo in the new post shows {caption}. ",
        "score": "The popularity score of {post} is {score}. ",
        "ask": "Provide the popularity score for this new post.",
        "sep": ", ",
        "index_post": "post {i}",
        "new_index": "The target new post",
    },
    "zh": {
        "user": "目标用户的ID是{uid}。",
        "intro": "该用户发布的帖子信息和流行度如下：",
        "post": "帖子{pid}",
        "new": "目标新帖子是{pid}",
        "first": "{post}的{label}是{value}",
        "next": "，{label}是{value}",
        "end": "。",
        "photo": "帖子中的照片显示{caption}。",
        "new_photo": "新帖子中的照片显示{caption}。",
        "score": "{post}的流行度得分是{score}。",
        "ask": "请给出这条新帖子的流行度得分。",
        "sep": "、",
        "index_post": "帖子{i}",
        "new_index": "目标新帖子",
    },
}
_LABELS = {
    "en": {
        "title": "title",
        "category": "category",
        "subcategory": "subcategory",
        "concept": "concept",
        "tags": "tag list",
        "titlelen": "title length",
        "tagcount": "number of tags",
        "date": "release date",
    },
    "zh": {
        "title": "标题",
        "category": "类别",
        "subcategory": "子类别",
        "concept": "概念",
        "tags": "标签",
        "titlelen": "标题长度",
        "tagcount": "标签数量",
        "date": "发布日期",
    },
}


@dataclass
class PromptConfig:
    """How a cold-start example is written.

    ``layout`` "grouped" (the paper: every history post's information, then every score, each tied to its post
    id - Table 8) or "interleaved" (each post followed by its score). ``post_ids`` "pid" (the paper: the
    dataset's post id) or "index" (帖子1, 帖子2, … 新帖子: fewer digits for a tiny model to confuse with scores).
    ``question`` "penultimate" (§2.3: train question = post n-1, test question = post n, history = first k
    posts, plus post n-1 at test) or "next" (§3.3's wording: the earliest post after the history is the train
    question); the two agree at 3-shot with 5 posts. ``decimals``: scores and answers are rounded to this many
    decimals - short answers, because a small model scores numbers as text.
    """

    language: str = "zh"
    fields: tuple[str, ...] = SMPD_FIELDS
    layout: str = "grouped"
    post_ids: str = "pid"
    include_uid: bool = True
    max_tags: int = 5
    decimals: int = 1
    question: str = "penultimate"

    def __post_init__(self) -> None:
        for name, value, allowed in (
            ("language", self.language, INSTRUCTION),
            ("layout", self.layout, ("grouped", "interleaved")),
            ("post_ids", self.post_ids, ("pid", "index")),
            ("question", self.question, ("penultimate", "next")),
        ):
            if value not in allowed:
                raise ValueError(f"PromptConfig.{name} must be one of {sorted(allowed)}, got {value!r}")
        unknown = set(self.fields) - set(_LABELS["en"]) - {"image_caption"}
        if unknown:
            raise ValueError(f"unknown prompt fields {sorted(unknown)}")


def format_score(value: float, decimals: int = 1) -> str:
    """A score as the model reads and writes it (``decimals`` places, no exponent)."""
    return f"{float(value):.{decimals}f}"


def _field_value(row: Mapping[str, Any], name: str, cfg: PromptConfig) -> str:
    sep = _TEXT[cfg.language]["sep"]
    if name == "tags":
        return sep.join(str(t) for t in list(row.get("tags") or [])[: cfg.max_tags])
    if name == "date":
        ts = row.get("postdate")
        if ts is None or (isinstance(ts, float) and math.isnan(ts)) or ts is pd.NA:
            return ""
        d = dt.datetime.fromtimestamp(int(ts), tz=dt.timezone.utc)
        return f"{d.year}-{d.month}-{d.day}"
    value = row.get(name)
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _describe(row: Mapping[str, Any], post: str, cfg: PromptConfig, lead: str) -> str:
    """One post's information: "{lead}, the title is …, the category is …. The photo shows …." (fields that
    are empty for this row are skipped, so a TPIC row and an SMPD row share one code path)."""
    t, labels = _TEXT[cfg.language], _LABELS[cfg.language]
    parts = [(labels[f], _field_value(row, f, cfg)) for f in cfg.fields if f != "image_caption"]
    parts = [(lab, v) for lab, v in parts if v]
    if lead:
        text = lead + "".join(t["next"].format(label=lab, value=v) for lab, v in parts)
    elif parts:
        text = t["first"].format(label=parts[0][0], post=post, value=parts[0][1])
        text += "".join(t["next"].format(label=lab, value=v) for lab, v in parts[1:])
    else:
        text = ""
    text = text + t["end"] if text else ""
    caption = _field_value(row, "image_caption", cfg) if "image_caption" in cfg.fields else ""
    if caption:
        text += (t["new_photo"] if lead else t["photo"]).format(caption=caption)
    return text


def render_prompt(
    uid: str,
    history: Sequence[Mapping[str, Any]],
    question: Mapping[str, Any],
    cfg: PromptConfig | None = None,
) -> str:
    """The input ``X_in`` of Table 2 for one user: history posts with their scores, then the new post.

    ``history`` rows need the :data:`POST_COLUMNS` (``popularity`` is shown, rounded to ``cfg.decimals``);
    ``question``'s popularity is never read. Returns the text without the instruction (:func:`user_message`
    joins the two).
    """
    cfg = cfg or PromptConfig()
    t = _TEXT[cfg.language]
    names = [
        t["index_post"].format(i=i + 1) if cfg.post_ids == "index" else t["post"].format(pid=r["pid"])
        for i, r in enumerate(history)
    ]
    out = [t["user"].format(uid=uid) if cfg.include_uid else "", t["intro"]]
    scores = [
        t["score"].format(post=n, score=format_score(r["popularity"], cfg.decimals))
        for n, r in zip(names, history)
    ]
    for i, (name, row) in enumerate(zip(names, history)):
        out.append(_describe(row, name, cfg, lead=""))
        if cfg.layout == "interleaved":
            out.append(scores[i])
    if cfg.layout == "grouped":
        out.extend(scores)
    new_lead = t["new"].format(pid=question["pid"]) if cfg.post_ids == "pid" else t["new_index"]
    out.append(_describe(question, "", cfg, lead=new_lead))
    out.append(t["ask"])
    return "".join(out)


def user_message(prompt: str, language: str = "zh") -> str:
    """Instruction ``X_I`` + input ``X_in`` as one user turn (Alpaca's instruction/input, as LLaMA-Factory
    joins them)."""
    return INSTRUCTION[language] + "\n" + prompt


@dataclass
class Example:
    """One cold-start question. ``form`` "train" (answer = post n-1's score) or "test" (answer = post n's).
    ``history_index`` / ``question_index`` are row labels in the frame it came from (the baselines read
    features there); ``target`` is the true score, ``answer`` its text as the model should write it."""

    uid: str
    shots: int
    form: str
    history_index: list[int]
    question_index: int
    history_scores: list[float]
    target: float
    prompt: str
    answer: str
    language: str = "zh"
    meta: dict[str, Any] = field(default_factory=dict)

    def messages(self) -> list[dict[str, str]]:
        """The chat turns the model sees (ChatML through the tokenizer's template)."""
        return [{"role": "user", "content": user_message(self.prompt, self.language)}]


def build_examples(
    df: pd.DataFrame, shots: Sequence[int] = (1, 2, 3), form: str = "train", cfg: PromptConfig | None = None
) -> list[Example]:
    """Cold-start examples from a :func:`select_users` frame, one per (user, k) for k in ``shots``.

    With a user's posts p_1..p_n in time order and ``cfg.question == "penultimate"`` (§2.3):
    train = history p_1..p_k, question p_{n-1}; test = history p_1..p_k and p_{n-1}, question p_n. With
    ``"next"`` (§3.3): train question p_{k+1}, test history p_1..p_{k+1}. A user with fewer than k+2 posts is
    an error (the paper keeps 5 posts, enough for 3-shot).
    """
    cfg = cfg or PromptConfig()
    if form not in ("train", "test"):
        raise ValueError(f"form must be 'train' or 'test', got {form!r}")
    out = []
    for uid, group in df.groupby("uid", sort=True):
        rows = group.sort_values(["postdate", "pid"], kind="stable")
        n = len(rows)
        for k in shots:
            if k < 1 or n < k + 2:
                raise SmpDataError(f"user {uid}: {n} posts cannot make a {k}-shot train and test question")
            q_train = n - 2 if cfg.question == "penultimate" else k
            hist = list(range(k)) + ([q_train] if form == "test" else [])
            q = n - 1 if form == "test" else q_train
            h_rows = [rows.iloc[i] for i in hist]
            q_row = rows.iloc[q]
            if any(pd.isna(r["popularity"]) for r in h_rows) or pd.isna(q_row["popularity"]):
                raise SmpDataError(
                    f"user {uid}: a post of the {k}-shot {form} example has no popularity label"
                )
            out.append(
                Example(
                    uid=str(uid),
                    shots=k,
                    form=form,
                    history_index=[int(rows.index[i]) for i in hist],
                    question_index=int(rows.index[q]),
                    history_scores=[float(r["popularity"]) for r in h_rows],
                    target=float(q_row["popularity"]),
                    prompt=render_prompt(str(uid), h_rows, q_row, cfg),
                    answer=format_score(q_row["popularity"], cfg.decimals),
                    language=cfg.language,
                )
            )
    return out


# --------------------------------------------------------------------------------------------------------
# Parsing and metrics
# --------------------------------------------------------------------------------------------------------

_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d+)?|\.\d+)")


def parse_score(text: str | None) -> float | None:
    """The first number in a model's answer, or ``None`` when there is none (a *failure*, counted, never
    imputed silently). Full-width digits and points (NFKC) are accepted; "7.5分", "得分：7.5" and " 7.5\\n"
    parse to 7.5; "", "高", "nan" and "inf" do not parse."""
    if text is None:
        return None
    m = _NUMBER.search(unicodedata.normalize("NFKC", str(text)))
    if m is None:
        return None
    value = float(m.group())
    return value if math.isfinite(value) else None


def parse_scores(texts: Sequence[str | None]) -> np.ndarray:
    """:func:`parse_score` over many answers; failures are NaN (count them with ``np.isnan``)."""
    return np.array([np.nan if (v := parse_score(t)) is None else v for t in texts], dtype=float)


@dataclass
class PredictionScore:
    """MAE and SRC of one model on one test set, with its failures.

    ``mae`` / ``src`` are computed on the parsed answers only (``n_parsed`` of ``n``); ``failure_rate`` says
    how many gave no number. ``src`` is Spearman's rank correlation (``scipy.stats.spearmanr`` on the values,
    i.e. Pearson on ranks - the paper writes Pearson on raw values, eq. 16, but names Spearman and SMPD's
    official scorer uses spearmanr); it is NaN when every parsed prediction is the same number (``constant``).
    Both are NaN when fewer than ``min_parsed`` answers parsed (the paper's "—").
    """

    mae: float
    src: float
    n: int
    n_parsed: int
    constant: bool

    @property
    def n_failed(self) -> int:
        return self.n - self.n_parsed

    @property
    def failure_rate(self) -> float:
        return self.n_failed / self.n if self.n else float("nan")

    def as_dict(self) -> dict[str, float]:
        return {
            "MAE": self.mae,
            "SRC": self.src,
            "n": self.n,
            "failed": self.n_failed,
            "failure_rate": self.failure_rate,
        }


def mae_src(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[float, float]:
    """MAE and Spearman SRC of two aligned float arrays without NaN; SRC NaN for constant predictions."""
    if len(y_true) == 0:
        return float("nan"), float("nan")
    mae = float(np.mean(np.abs(y_pred - y_true)))
    if len(y_true) < 2 or np.ptp(y_pred) == 0 or np.ptp(y_true) == 0:
        return mae, float("nan")
    return mae, float(stats.spearmanr(y_true, y_pred).statistic)


def score_predictions(
    y_true: Sequence[float], predictions: Sequence[float | str | None], min_parsed: int = 2
) -> PredictionScore:
    """Score answers (texts are parsed with :func:`parse_score`; floats may be NaN = failure)."""
    y = np.asarray(y_true, dtype=float)
    if any(isinstance(p, str) or p is None for p in predictions):
        pred = parse_scores([None if p is None else str(p) for p in predictions])
    else:
        pred = np.asarray(predictions, dtype=float)
    if len(pred) != len(y):
        raise ValueError(f"{len(pred)} predictions for {len(y)} targets")
    ok = ~np.isnan(pred)
    n_parsed = int(ok.sum())
    if n_parsed < min_parsed:
        return PredictionScore(float("nan"), float("nan"), len(y), n_parsed, False)
    mae, src = mae_src(y[ok], pred[ok])
    return PredictionScore(mae, src, len(y), n_parsed, bool(np.ptp(pred[ok]) == 0))


def bootstrap_ci(
    y_true: Sequence[float],
    y_pred: Sequence[float],
    groups: Sequence[Any] | None = None,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap intervals for MAE and SRC, resampling *test users* (``groups``; default: each row
    is its own user, as in one k-shot test set). Failed (NaN) predictions stay failed in every resample, so
    the interval is over the parsed answers, like the point estimate."""
    y = np.asarray(y_true, dtype=float)
    p = np.asarray(y_pred, dtype=float)
    g = np.arange(len(y)) if groups is None else pd.factorize(np.asarray(groups))[0]
    members = [np.flatnonzero(g == i) for i in range(g.max() + 1)] if len(g) else []
    rng = np.random.default_rng(seed)
    maes, srcs = [], []
    for _ in range(n_boot):
        pick = rng.integers(0, len(members), size=len(members))
        idx = np.concatenate([members[i] for i in pick]) if len(members) else np.array([], dtype=int)
        ok = idx[~np.isnan(p[idx])]
        mae, src = mae_src(y[ok], p[ok])
        maes.append(mae)
        srcs.append(src)
    q = [100 * alpha / 2, 100 * (1 - alpha / 2)]

    def interval(values: list[float]) -> tuple[float, float]:
        v = np.asarray(values, dtype=float)
        v = v[~np.isnan(v)]
        return (float("nan"), float("nan")) if len(v) == 0 else tuple(float(x) for x in np.percentile(v, q))

    return {"MAE": interval(maes), "SRC": interval(srcs)}
