"""Feature pipeline for NARRATOR, behind small interfaces so real data can plug in.

A post becomes: its text (title, image caption, user tags) and its hashtags through a **text encoder**, image
region features through an **image source**, face demographics through a **demographics source**, hashtag
sentiment through a **sentiment callable**, and a context (user prior, posting month, hashtag and tag counts).
Every source is a callable or a small class, so a user with real images can swap the world's precomputed regions
for a torchvision backbone, the world's face fields for a detector, or the char encoder for a Hugging Face model.

Text encoders (both have ``kind``, ``dim``, ``encode_texts``, ``encode_tags``, ``tokens``):

* :class:`CharTextEncoder` (default) — character ids; the model learns char embeddings and a small convolution.
  Chinese hashtags and titles are short, so characters are the natural unit and nothing must be downloaded.
* :class:`HFTextEncoder` — any ``transformers`` ``AutoModel`` (hub name or local folder), frozen: its last hidden
  states are computed once, here, and the model only learns a projection. Text: token states; hashtags: the
  masked mean of their token states.

Shapes of one encoded batch (``B`` posts, ``H`` hashtags, ``R`` regions)::

    text [B, Lt] long | [B, Lt, D] float     text_mask [B, Lt]
    tags [B, H, Lh] long | [B, H, D] float   tag_mask [B, H]
    image [B, R, Di]  image_mask [B, R]      demo [B, 6]   sent [B, 3]   context [B, 6]   y [B]

``context`` = :data:`CONTEXT_FEATURES`: the user prior (TPIC's ``avgview``; the world's ``user_avgview``), a flag
for a missing prior, sin / cos of the posting month, the hashtag count / H and the user-tag count / 10 (TPIC's
``tagcount``; the text is truncated, so the count is not always visible in it). A post without hashtags has an
all-False ``tag_mask`` row; without an image, an all-False ``image_mask`` row; the model handles both. SMPD / TPIC
DataFrames from ``socialalign_lib.loaders`` go through :func:`prepare_posts` first.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd
import torch

PAD, UNK = 0, 1
DEMO_FEATURES: tuple[str, ...] = ("n_faces", "mean_age", "young_adult", "senior", "female_share", "has_face")
CONTEXT_FEATURES: tuple[str, ...] = (
    "user_prior",
    "user_prior_missing",
    "month_sin",
    "month_cos",
    "n_hashtags",
    "n_tags",
)
SENTIMENT_ORDER: tuple[str, ...] = ("negative", "neutral", "positive")

Row = Mapping[str, Any]


# ------------------------------------------------------------------------------------------------ text encoders
class CharVocab:
    """Character vocabulary built on training text only (unknown characters map to UNK)."""

    def __init__(self, texts: Sequence[str], min_count: int = 1):
        counts: dict[str, int] = {}
        for t in texts:
            for ch in t:
                counts[ch] = counts.get(ch, 0) + 1
        chars = sorted(c for c, n in counts.items() if n >= min_count)
        self.index = {c: i + 2 for i, c in enumerate(chars)}

    def __len__(self) -> int:
        return len(self.index) + 2

    def encode(self, text: str, length: int) -> list[int]:
        ids = [self.index.get(ch, UNK) for ch in text[:length]]
        return ids + [PAD] * (length - len(ids))


class TextEncoder(Protocol):
    """What :func:`encode_posts` needs from a text encoder."""

    kind: str  # "chars" (ids for the model's own char encoder) or "states" (precomputed float vectors)
    dim: int  # vocabulary size for "chars", hidden size for "states"

    def encode_texts(self, texts: Sequence[str], length: int) -> tuple[torch.Tensor, torch.Tensor]: ...

    def encode_tags(self, tags: Sequence[Sequence[str]], max_tags: int, length: int) -> torch.Tensor: ...

    def tokens(self, text: str, length: int) -> list[str]: ...


class CharTextEncoder:
    """Character ids over a :class:`CharVocab` (build it from training posts with :meth:`fit`)."""

    kind = "chars"

    def __init__(self, vocab: CharVocab):
        self.vocab = vocab

    @classmethod
    def fit(cls, df: pd.DataFrame, min_count: int = 1) -> CharTextEncoder:
        """Vocabulary from the training posts' text and hashtags (so validation/test characters may be UNK)."""
        rows = _rows(df)
        texts = [post_text(r) for r in rows] + [h for r in rows for h in _list(r.get("hashtags"))]
        return cls(CharVocab(texts, min_count))

    @property
    def dim(self) -> int:
        return len(self.vocab)

    def encode_texts(self, texts: Sequence[str], length: int) -> tuple[torch.Tensor, torch.Tensor]:
        ids = torch.tensor([self.vocab.encode(t, length) for t in texts], dtype=torch.long).view(
            len(texts), length
        )
        return ids, ids != PAD

    def encode_tags(self, tags: Sequence[Sequence[str]], max_tags: int, length: int) -> torch.Tensor:
        out = torch.zeros(len(tags), max_tags, length, dtype=torch.long)
        for i, ts in enumerate(tags):
            for j, t in enumerate(ts[:max_tags]):
                out[i, j] = torch.tensor(self.vocab.encode(t, length))
        return out

    def tokens(self, text: str, length: int) -> list[str]:
        return list(text[:length])


class HFTextEncoder:
    """A frozen ``transformers`` encoder: ``AutoModel.from_pretrained(name_or_path)`` last hidden states.

    The states are computed once in :func:`encode_posts` (no gradient), so training costs the same as with the
    char encoder; memory is ``n_posts × text_len × hidden`` floats (stored as ``dtype``). Local folders work
    offline; hub names need the model in the local cache (``HF_HUB_OFFLINE=1`` is respected).
    """

    kind = "states"

    def __init__(
        self, name_or_path: str, batch_size: int = 64, device: str = "cpu", dtype: torch.dtype = torch.float32
    ):
        from transformers import AutoModel, AutoTokenizer  # noqa: PLC0415 - optional, heavy import

        self.tokenizer = AutoTokenizer.from_pretrained(name_or_path)
        self.model = AutoModel.from_pretrained(name_or_path).to(device).eval()
        self.batch_size, self.device, self.dtype = batch_size, device, dtype

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    @torch.no_grad()
    def _states(self, texts: Sequence[str], length: int) -> tuple[torch.Tensor, torch.Tensor]:
        states, masks = [], []
        for s in range(0, len(texts), self.batch_size):
            enc = self.tokenizer(
                list(texts[s : s + self.batch_size]),
                padding="max_length",
                truncation=True,
                max_length=length,
                return_tensors="pt",
            ).to(self.device)
            out = self.model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])
            states.append(out.last_hidden_state.to("cpu", self.dtype))
            masks.append(enc["attention_mask"].bool().cpu())
        if not states:
            return torch.zeros(0, length, self.dim, dtype=self.dtype), torch.zeros(
                0, length, dtype=torch.bool
            )
        return torch.cat(states), torch.cat(masks)

    def encode_texts(self, texts: Sequence[str], length: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self._states(texts, length)

    def encode_tags(self, tags: Sequence[Sequence[str]], max_tags: int, length: int) -> torch.Tensor:
        flat = [t for ts in tags for t in ts[:max_tags]]
        out = torch.zeros(len(tags), max_tags, self.dim, dtype=self.dtype)
        if not flat:
            return out
        states, mask = self._states(flat, length)
        m = mask.unsqueeze(-1).to(states.dtype)
        pooled = (states * m).sum(1) / m.sum(1).clamp(min=1)
        k = 0
        for i, ts in enumerate(tags):
            n = len(ts[:max_tags])
            out[i, :n] = pooled[k : k + n]
            k += n
        return out

    def tokens(self, text: str, length: int) -> list[str]:
        ids = self.tokenizer(text, truncation=True, max_length=length)["input_ids"]
        return list(self.tokenizer.convert_ids_to_tokens(ids))


# ------------------------------------------------------------------------------------------------ row readers
def _rows(df: pd.DataFrame) -> list[dict[str, Any]]:
    return df.to_dict("records")


def _list(value: Any) -> list:
    return list(value) if isinstance(value, (list, tuple, np.ndarray)) else []


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def post_text(row: Row) -> str:
    """Title, image caption and user tags: what a reader sees of the post besides hashtags and the image."""
    tags = row.get("tags")
    tags = (
        " ".join(map(str, tags))
        if isinstance(tags, (list, tuple, np.ndarray))
        else ("" if _missing(tags) else str(tags))
    )
    parts = [row.get("title"), row.get("image_caption"), tags]
    return " ".join(str(p) for p in parts if not _missing(p) and str(p)).strip()


# ------------------------------------------------------------------------------------------------ image sources
def precomputed_regions(row: Row) -> np.ndarray | None:
    """Image regions stored with the post (the world's ``image_regions``; SMP users may store CNN features)."""
    regions = row.get("image_regions")
    if _missing(regions) or len(regions) == 0:
        return None
    return np.asarray(regions, dtype=np.float32)


def torchvision_regions(
    weights: str | None = None, grid: int = 2, path_fields: Sequence[str] = ("image_path", "image")
) -> Callable[[Row], np.ndarray | None]:
    """A ResNet-18 feature map pooled to ``grid×grid`` regions (512-d each), for users with images and weights.

    Needs ``torchvision`` (not a course dependency) and a local weights file (nothing is downloaded: without
    ``weights`` the network is random, which only makes sense for testing the plumbing). Rows name a local image
    file in the first present of ``path_fields`` (SMPD's loader calls it ``image``); URLs are skipped (``None``).
    """
    import torchvision  # noqa: PLC0415 - optional dependency

    net = torchvision.models.resnet18()
    if weights:
        net.load_state_dict(torch.load(weights, weights_only=True))
    body = torch.nn.Sequential(*list(net.children())[:-2]).eval()
    tf = torchvision.models.ResNet18_Weights.DEFAULT.transforms()

    def regions(row: Row) -> np.ndarray | None:
        from PIL import Image  # noqa: PLC0415

        path = next((row.get(f) for f in path_fields if not _missing(row.get(f)) and row.get(f)), None)
        if not path or str(path).startswith(("http://", "https://")):
            return None
        with torch.no_grad():
            fmap = body(tf(Image.open(path).convert("RGB")).unsqueeze(0))  # [1, 512, 7, 7]
            pooled = torch.nn.functional.adaptive_avg_pool2d(fmap, grid)  # [1, 512, g, g]
        return pooled.flatten(2).transpose(1, 2)[0].numpy()

    return regions


# ------------------------------------------------------------------------------------------------ demographics
def demographics_vector(faces: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """[6] = :data:`DEMO_FEATURES` from a list of ``{"age": int, "gender": "male" | "female"}`` faces."""
    if not faces:
        return np.zeros(len(DEMO_FEATURES), dtype=np.float32)
    ages = np.array([f["age"] for f in faces], dtype=np.float32)
    female = np.mean([f.get("gender") == "female" for f in faces])
    return np.array(
        [
            min(len(faces), 3) / 3,
            ages.mean() / 80,
            float(((ages >= 18) & (ages <= 35)).any()),
            float((ages >= 60).any()),
            female,
            1.0,
        ],
        dtype=np.float32,
    )


def face_demographics(row: Row) -> np.ndarray:
    """Age/gender of faces from the post's ``faces`` field (the world's, or a detector's output stored there).
    Without faces, TPIC's ``haspeople`` flag (when present) still sets ``has_face``."""
    out = demographics_vector(_list(row.get("faces")))
    people = row.get("haspeople")
    if not out[-1] and not _missing(people):
        out[-1] = float(float(people) > 0)
    return out


def detector_demographics(
    detector: Callable[[str], Sequence[Mapping[str, Any]]],
    path_fields: Sequence[str] = ("image_path", "image"),
) -> Callable[[Row], np.ndarray]:
    """Wrap a face detector + age/gender model, ``detector(image_path) -> [{"age", "gender"}, …]``, as a source.

    Posts without a local image get no faces. Any detector works (InsightFace, DeepFace, a cloud API's cached
    output): the course ships none, because each needs downloaded weights.
    """

    def demographics(row: Row) -> np.ndarray:
        path = next((row.get(f) for f in path_fields if not _missing(row.get(f)) and row.get(f)), None)
        if not path or str(path).startswith(("http://", "https://")):
            return demographics_vector([])
        return demographics_vector(list(detector(str(path))))

    return demographics


# ------------------------------------------------------------------------------------------------ sentiment
def labeller_sentiment(labeller: Any) -> Callable[[list[str]], np.ndarray]:
    """Hashtag sentiment from a project labeller (``labels`` ordered negative → positive, ``predict_proba``).

    Returns ``texts -> [n, 3]`` (negative, neutral, positive): with more than three labels the extremes are
    summed into their side; with two there is no neutral column.
    """
    labels = list(labeller.labels)
    k = len(labels)
    side = np.array([0 if i < (k - 1) / 2 else 2 if i > (k - 1) / 2 else 1 for i in range(k)])

    def sentiment(texts: list[str]) -> np.ndarray:
        proba = np.asarray(labeller.predict_proba(list(texts)), dtype=np.float32)
        out = np.zeros((len(texts), 3), dtype=np.float32)
        for i in range(k):
            out[:, side[i]] += proba[:, i]
        return out

    return sentiment


def truth_sentiment(df: pd.DataFrame) -> Callable[[list[str]], np.ndarray]:
    """The world's true hashtag sentiment (``hashtag_sentiments``), one-hot: the upper bound for a labeller."""
    lut: dict[str, np.ndarray] = {}
    for r in _rows(df):
        for h, s in zip(_list(r.get("hashtags")), _list(r.get("hashtag_sentiments"))):
            lut[h] = np.eye(3, dtype=np.float32)[SENTIMENT_ORDER.index(s)]

    def sentiment(texts: list[str]) -> np.ndarray:
        missing = [t for t in texts if t not in lut]
        if missing:
            raise KeyError(
                f"truth_sentiment: no true sentiment for hashtag(s) {missing[:3]} (not in this DataFrame)"
            )
        return np.stack([lut[t] for t in texts]) if texts else np.zeros((0, 3), np.float32)

    return sentiment


def no_sentiment(texts: list[str]) -> np.ndarray:
    """For data without a labeller: all hashtags neutral."""
    return np.tile(np.array([0, 1, 0], np.float32), (len(texts), 1))


# ------------------------------------------------------------------------------------------------ encoding
def prepare_posts(df: pd.DataFrame, hashtags_from_tags: bool = True) -> pd.DataFrame:
    """A copy of ``df`` ready for :func:`encode_posts`, from the world's posts or a loader's DataFrame.

    SMPD / TPIC have no ``hashtags`` column: on Flickr the user tags *are* the hashtags, so with
    ``hashtags_from_tags`` they become the hashtags (the model still reads them in the text too). Rows without a
    label are kept (their ``y`` is NaN; training skips them).
    """
    out = df.copy()
    if "hashtags" not in out:
        out["hashtags"] = [_list(t) if hashtags_from_tags else [] for t in out.get("tags", [[]] * len(out))]
    out["hashtags"] = [[str(h).strip("#") for h in _list(v)] for v in out["hashtags"]]
    return out.reset_index(drop=True)


@dataclass
class FeatureConfig:
    """Lengths are in characters for the char encoder, in tokens for an HF encoder."""

    text_len: int = 48
    tag_len: int = 10
    max_tags: int = 3
    n_regions: int = 4


def _month(postdate: Any) -> float | None:
    if _missing(postdate):
        return None
    try:
        return float(dt.datetime.fromtimestamp(int(postdate), dt.timezone.utc).month)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def encode_posts(
    df: pd.DataFrame,
    text_encoder: TextEncoder | CharVocab,
    cfg: FeatureConfig | None = None,
    hashtag_sentiment: Callable[[list[str]], np.ndarray] = no_sentiment,
    image_source: Callable[[Row], np.ndarray | None] = precomputed_regions,
    demographics: Callable[[Row], np.ndarray] = face_demographics,
    image_dim: int | None = None,
) -> dict[str, torch.Tensor]:
    """Tensors for every row of ``df`` (the world's ``smp_posts`` or a ``loaders.load_smpd`` / ``load_tpic2017``
    DataFrame). Every column but ``popularity`` is optional: missing hashtags, images, faces, user prior or
    dates give empty masks / zeros (and a "missing" flag for the user prior); a missing label gives NaN.

    ``hashtag_sentiment(texts) -> [n, 3]`` (negative, neutral, positive), e.g. :func:`labeller_sentiment`; a
    post's sentiment feature is the mean over its hashtags (zeros without hashtags). ``image_dim`` fixes the
    region width when no post in ``df`` has an image (pass the training set's).
    """
    cfg = cfg or FeatureConfig()
    enc: TextEncoder = CharTextEncoder(text_encoder) if isinstance(text_encoder, CharVocab) else text_encoder
    rows = _rows(df)
    n = len(rows)
    text, text_mask = enc.encode_texts([post_text(r) for r in rows], cfg.text_len)
    all_tags = [[str(h) for h in _list(r.get("hashtags"))][: cfg.max_tags] for r in rows]
    tags = enc.encode_tags(all_tags, cfg.max_tags, cfg.tag_len)
    tag_mask = torch.zeros(n, cfg.max_tags, dtype=torch.bool)
    sent = torch.zeros(n, 3)
    unique = list(dict.fromkeys(t for ts in all_tags for t in ts))  # hashtags repeat: label each once
    probs = (
        np.asarray(hashtag_sentiment(unique), dtype=np.float32) if unique else np.zeros((0, 3), np.float32)
    )
    if probs.shape != (len(unique), 3):
        raise ValueError(f"hashtag_sentiment returned shape {probs.shape}, expected ({len(unique)}, 3)")
    row_of = {t: i for i, t in enumerate(unique)}
    for i, ts in enumerate(all_tags):
        tag_mask[i, : len(ts)] = True
        if ts:
            sent[i] = torch.from_numpy(probs[[row_of[t] for t in ts]].mean(0))

    regions = [image_source(r) for r in rows]
    dim = image_dim or next((r.shape[1] for r in regions if r is not None), 1)
    image = torch.zeros(n, cfg.n_regions, dim)
    image_mask = torch.zeros(n, cfg.n_regions, dtype=torch.bool)
    for i, reg in enumerate(regions):
        if reg is not None and len(reg):
            if reg.shape[1] != dim:
                raise ValueError(
                    f"post {i} (pid {rows[i].get('pid')!r}): image regions are {reg.shape[1]}-d, "
                    f"expected {dim}"
                )
            m = min(len(reg), cfg.n_regions)
            image[i, :m] = torch.from_numpy(np.asarray(reg[:m], dtype=np.float32))
            image_mask[i, :m] = True

    demo = torch.tensor(
        np.stack([demographics(r) for r in rows]) if rows else np.zeros((0, len(DEMO_FEATURES))),
        dtype=torch.float32,
    )
    context = torch.zeros(n, len(CONTEXT_FEATURES))
    for i, r in enumerate(rows):
        prior = r.get("user_avgview")
        if _missing(prior):
            context[i, 1] = 1.0
        else:
            context[i, 0] = float(prior)
        month = _month(r.get("postdate"))
        if month is not None:
            context[i, 2], context[i, 3] = (
                math.sin(2 * math.pi * month / 12),
                math.cos(2 * math.pi * month / 12),
            )
        context[i, 4] = len(all_tags[i]) / cfg.max_tags
        n_tags = len(_list(r.get("tags")))
        if not n_tags and not _missing(r.get("tagcount")):
            n_tags = int(float(r["tagcount"]))  # TPIC gives the count, not the tags
        context[i, 5] = min(n_tags, 10) / 10
    y = torch.tensor(
        [float("nan") if _missing(r.get("popularity")) else float(r["popularity"]) for r in rows],
        dtype=torch.float32,
    )
    return {
        "text": text,
        "text_mask": text_mask,
        "tags": tags,
        "tag_mask": tag_mask,
        "image": image,
        "image_mask": image_mask,
        "demo": demo,
        "sent": sent,
        "context": context,
        "y": y,
    }
