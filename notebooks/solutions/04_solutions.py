"""Solutions to the exercises of notebook 04 (generation). The base model (zero-shot) only: no training."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

from socialalign_lib.build.pipeline import course_data
from socialalign_lib.generate.decode import generate_replies
from socialalign_lib.generate.sampling import GenerationConfig
from socialalign_lib.metrics import distinct_n
from socialalign_lib.train.config import socialllm_config
from socialalign_lib.train.socialllm import untrained_socialllm


def _replies(size: str, seed: int, n: int, gens: dict[str, GenerationConfig]) -> dict[str, list[str]]:
    data = course_data(size=size, seed=seed)
    run = untrained_socialllm(replace(socialllm_config("base", size, seed=seed), device="cpu"))
    records = data.split("test_user").shuffle(seed=seed).select(range(n))
    return {
        name: generate_replies(run.model, run.tokenizer, records, gen)["generated"].tolist()
        for name, gen in gens.items()
    }


def ex1_batch_size(size: str = "tiny", seed: int = 0, n: int = 8) -> dict[str, object]:
    """Exercise 1 (predict): sample the same prompts with ``batch_size=1`` and ``batch_size=8``. Do the replies
    change? (No: every row's sampling noise is seeded by (seed, case, step), and left padding shifts each row's
    spans, so a reply does not depend on its batch — the property that lets a crashed run resume mid-way.)"""
    gens = {f"batch {b}": GenerationConfig(seed=seed, max_new_tokens=32, batch_size=b) for b in (1, 8)}
    texts = _replies(size, seed, n, gens)
    return {"identical replies": texts["batch 1"] == texts["batch 8"], "replies": len(texts["batch 1"])}


def my_distinct_n(texts: list[str], n: int) -> float:
    """Exercise 2 (implement): Distinct-n (Li et al. 2016): unique character n-grams / all character n-grams,
    pooled over the texts, whitespace removed, n-grams not crossing texts; 0 when there are none."""
    grams: Counter = Counter()
    for t in texts:
        chars = [c for c in t if not c.isspace()]
        grams.update(tuple(chars[i : i + n]) for i in range(len(chars) - n + 1))
    total = sum(grams.values())
    return len(grams) / total if total else 0.0


def ex2_distinct(size: str = "tiny", seed: int = 0, n: int = 8) -> dict[str, dict[str, float]]:
    """Exercise 2 (predict, then implement): Distinct-1/2 of sampled and greedy replies of the base model, yours
    and the library's (``metrics.distinct_n``), which must agree to the last digit. (Greedy replies are far less
    diverse: a small model's argmax falls into loops that sampling escapes.)"""
    gens = {
        "sampled": GenerationConfig(seed=seed, max_new_tokens=48),
        "greedy": GenerationConfig.greedy(seed=seed, max_new_tokens=48),
    }
    out = {}
    for name, texts in _replies(size, seed, n, gens).items():
        out[name] = {f"distinct-{k} (mine)": my_distinct_n(texts, k) for k in (1, 2)}
        out[name].update({f"distinct-{k} (library)": distinct_n(texts, k) for k in (1, 2)})
    return out
