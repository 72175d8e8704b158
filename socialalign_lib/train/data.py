"""How training, generation and the run hash take their records: one list-of-dicts view of any input.

A ``datasets.Dataset``, a pandas frame or an iterable of dicts all become a list of dicts here, so every stage
reads records the same way, and the run hash (``run_folder.dataset_fingerprint``) sees exactly what training sees.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pandas as pd

__all__ = ["as_records", "batched", "select_variant"]


def as_records(data: Any) -> list[dict[str, Any]]:
    """A ``datasets.Dataset``, a pandas frame or an iterable of dicts as a list of dicts."""
    if hasattr(data, "to_list"):
        return data.to_list()
    if isinstance(data, pd.DataFrame):
        return data.to_dict("records")
    return [dict(r) for r in data]


def select_variant(dataset: Any, variant: str) -> Any:
    """The rows of ``dataset`` in prompt ``variant`` (the dataset itself when it holds no other variant)."""
    has_variants = hasattr(dataset, "column_names") and "variant" in dataset.column_names
    if has_variants and set(dataset.unique("variant")) != {variant}:
        return dataset.filter(lambda v: v == variant, input_columns="variant")
    return dataset


def batched(items: list, size: int) -> Iterator[list]:
    """Consecutive slices of ``items`` of ``size`` (the last one shorter)."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
