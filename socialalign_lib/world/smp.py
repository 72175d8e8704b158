"""SMPD-like photo posts with popularity scores (MultiSmpLLM) and multimodal features (NARRATOR).

Popularity model (log-views, like SMPD's label), for post p of photo-user u::

    pop = base_u + effect[category] + 0.08 * min(n_tags, 10)
          + 2.0 * align_p                       # hashtag ↔ image alignment, below
          + 0.5 * [a face aged 18-35] + 0.2 * min(n_faces, 3) - 0.4 * [a face aged 60+]
          + 0.4 * [positive hashtag] - 0.3 * [negative hashtag]
          + 0.25 * sin(2π * month / 12) + Normal(0, 0.35)

    align_p = max over the post's concept-naming hashtags h of
                1    if h names the photo's subject (the concept of its main region)
                0.5  if h names a concept shown in a background region
                0.25 if h names another concept of the subject's subcategory (#狗# on a cat photo)
                0    otherwise;   0 for a post without concept-naming hashtags

The image is ``N_REGIONS`` region vectors: the subject ``theme[concept] + Normal(0, 0.12)`` and backgrounds
``0.8 · theme[other] + Normal(0, 0.15)`` (half of them from the subject's category: a beach photo shows a sunset
more often than a keyboard), shuffled. ``theme`` is a random unit vector per concept: what a region showing it
looks like to a vision backbone. A hashtag is about the subject (45%), a background concept (25%), a sibling
concept (10%) or a random one (20%), and its template then names that concept or nothing: generic hashtags
("随手拍", "今日份快乐") name no concept, so they can neither match nor contradict the image; they still carry
sentiment.

``base_u`` (the user's audience, visible with noise as ``user_avgview`` like TPIC's USER_META) dominates, which is
why the cold-start task gives the model the user's earlier posts and their scores. The alignment is a function
of *which concepts* the hashtags name and the regions show — learnable from hashtag characters and region
vectors — and only shows when hashtags are read *against* the image regions (or the text that names the
subject), which is what NARRATOR's hashtag-guided attention is for. Faces are fields (age, gender) a face model
would output; they are not in the region vectors.
"""

from __future__ import annotations

import datetime as dt

import numpy as np

from . import lexicon as lx

REGION_DIM = 16
N_REGIONS = 4
# Hashtag templates per sentiment. A template either names a concept (it has a theme: what it claims the photo
# shows) or is generic ("随手拍": no theme, so it can neither match nor contradict the image).
HASHTAG_SENTIMENT = {
    "positive": ["{concept}太美了", "治愈系{concept}", "今日份快乐"],
    "neutral": ["{concept}摄影", "随手拍", "{concept}日记"],
    "negative": ["{concept}踩雷", "失望的{concept}", "再也不去了"],
}


def _concepts() -> list[tuple[str, str, str]]:
    return [(c, s, k) for c, spec in lx.SMP_CATEGORIES.items() for s, ks in spec["sub"].items() for k in ks]  # type: ignore[union-attr]


def concept_themes(seed: int) -> dict[str, np.ndarray]:
    """A unit vector per concept: what an image region showing that concept looks like to a vision backbone."""
    rng = np.random.default_rng([seed, 99])
    out = {}
    for _, _, k in _concepts():
        v = rng.normal(size=REGION_DIM)
        out[k] = v / np.linalg.norm(v)
    return out


def hashtag_alignment(
    hashtag_concept: str, subject: str, background: list[str], sub_of: dict[str, str]
) -> float:
    """How well a photo shows what a concept-naming hashtag claims (the module docstring's ``align`` levels)."""
    if hashtag_concept == subject:
        return 1.0
    if hashtag_concept in background:
        return 0.5
    if sub_of[hashtag_concept] == sub_of[subject]:
        return 0.25
    return 0.0


def sample_smp_user_posts(
    seed: int, index: int, n_posts: tuple[int, int], themes: dict[str, np.ndarray]
) -> list[dict]:
    rng = np.random.default_rng([seed, 7, index])
    concepts = _concepts()
    sub_of = {k: s for _, s, k in concepts}
    base = float(rng.normal(5.0, 1.2))
    # what a platform shows about the user (TPIC's USER_META avgview): the audience size, measured with noise
    avgview = round(base + float(rng.normal(0, 0.3)), 4)
    uid = f"{int(rng.integers(10000, 99999))}@N{index % 100:02d}"
    start = dt.datetime(2023, 1, 1) + dt.timedelta(days=int(rng.integers(0, 200)))
    fav_cats = rng.choice(list(lx.SMP_CATEGORIES), size=2, replace=False)
    n = int(rng.integers(n_posts[0], n_posts[1] + 1))
    posts = []
    t = start
    for j in range(n):
        t = t + dt.timedelta(days=int(rng.integers(1, 30)), minutes=int(rng.integers(0, 1440)))
        cat = str(rng.choice(fav_cats)) if rng.random() < 0.7 else str(rng.choice(list(lx.SMP_CATEGORIES)))
        options = [(s, k) for c, s, k in concepts if c == cat]
        sub, concept = options[int(rng.integers(len(options)))]
        spec = lx.SMP_CATEGORIES[cat]
        place = str(rng.choice(lx.CITIES))
        title = str(rng.choice(lx.SMP_TITLE)).format(
            concept=concept, time=rng.choice(lx.SMP_TIMES), place=place
        )
        scene = str(rng.choice(lx.SMP_SCENES))
        caption = str(rng.choice(lx.SMP_CAPTION)).format(
            concept=concept, scene=scene, light=rng.choice(lx.SMP_LIGHT)
        )
        extra_tags = [
            str(x)
            for x in rng.choice([k for _, _, k in concepts], size=int(rng.integers(0, 8)), replace=False)
        ]
        tags = list(dict.fromkeys([concept, sub, str(spec["zh"]), place, *extra_tags]))
        # image regions: the concept itself plus background regions (half from the subject's category)
        regions = [themes[concept] + rng.normal(0, 0.12, REGION_DIM)]
        background = []
        for _ in range(N_REGIONS - 1):
            pool = (
                [k for c, _, k in concepts if c == cat] if rng.random() < 0.5 else [k for _, _, k in concepts]
            )
            other = pool[int(rng.integers(len(pool)))]
            background.append(other)
            regions.append(0.8 * themes[other] + rng.normal(0, 0.15, REGION_DIM))
        regions_arr = np.stack(regions)[rng.permutation(N_REGIONS)]
        hashtags, hashtag_sents = [], []
        for _ in range(int(rng.choice([0, 1, 2, 3], p=[0.3, 0.35, 0.25, 0.1]))):
            # users tag the subject, something in the background, a related concept, or something unrelated
            kind = rng.choice(4, p=[0.45, 0.25, 0.1, 0.2])
            siblings = [k for _, s_, k in concepts if s_ == sub and k != concept]
            h_concept = (
                concept
                if kind == 0
                else background[int(rng.integers(len(background)))]
                if kind == 1
                else siblings[int(rng.integers(len(siblings)))]
                if kind == 2
                else concepts[int(rng.integers(len(concepts)))][2]
            )
            h_sent = str(rng.choice(list(HASHTAG_SENTIMENT), p=[0.5, 0.35, 0.15]))
            template = str(rng.choice(HASHTAG_SENTIMENT[h_sent]))
            hashtags.append(
                (template.format(concept=h_concept), h_concept if "{concept}" in template else None)
            )
            hashtag_sents.append(h_sent)
        faces = [
            {"age": int(rng.integers(3, 80)), "gender": str(rng.choice(["male", "female"]))}
            for _ in range(int(rng.choice([0, 1, 2, 3], p=[0.45, 0.3, 0.15, 0.1])))
        ]
        align = max(
            (hashtag_alignment(hc, concept, background, sub_of) for _, hc in hashtags if hc is not None),
            default=0.0,
        )
        pop = (
            base
            + float(spec["effect"])
            + 0.08 * min(len(tags), 10)
            + 2.0 * align
            + 0.5 * any(18 <= f["age"] <= 35 for f in faces)
            + 0.2 * min(len(faces), 3)
            - 0.4 * any(f["age"] >= 60 for f in faces)
            + 0.4 * ("positive" in hashtag_sents)
            - 0.3 * ("negative" in hashtag_sents)
            + 0.25 * np.sin(2 * np.pi * t.month / 12)
            + rng.normal(0, 0.35)
        )
        posts.append(
            {
                "uid": uid,
                "user_avgview": avgview,
                "pid": f"{index:05d}{j:02d}",
                "title": title,
                "category": str(spec["zh"]),
                "subcategory": sub,
                "concept": concept,
                "tags": tags,
                "image_caption": caption,
                "postdate": int(t.replace(tzinfo=dt.timezone.utc).timestamp()),
                "hashtags": [h for h, _ in hashtags],
                "hashtag_sentiments": hashtag_sents,
                "image_regions": np.round(regions_arr, 4).tolist(),
                "faces": faces,
                "popularity": round(float(pop), 4),
                "truth": {"user_base": round(base, 4), "align": round(align, 4)},
            }
        )
    return posts
