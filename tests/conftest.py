from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """One torch thread for the whole suite: the models here are tiny, so OpenMP threads on 2 shared cores only
    contend (measured 10-50x slower for some tests), and a fixed thread count keeps float results reproducible."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_world():
    """``generate_world(size="tiny", seed=0)``, built once per test session (2 s each time otherwise).

    Shared by every test that asks for it: treat it as read-only. A test that changes a world builds its own."""
    from socialalign_lib.world import generate_world

    return generate_world(size="tiny", seed=0)


@pytest.fixture(scope="session")
def tiny_course():
    """``pipeline.course_data(size="tiny", seed=0)`` (world, personas, datasets), built once per test session (13 s
    each time otherwise). Read-only, like :func:`tiny_world`; its ``world`` is its own copy, equal to that one."""
    from socialalign_lib.build.pipeline import course_data

    return course_data(size="tiny", seed=0)


# Property tests draw the same examples on every run (CI must not flake on a lucky draw); set
# HYPOTHESIS_PROFILE=explore to search with fresh random examples, as when hunting bugs.
from hypothesis import settings  # noqa: E402

settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("explore", derandomize=False, max_examples=1000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
