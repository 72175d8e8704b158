"""Run every exercise solution of one notebook and print the answers: ``python -m notebooks.solutions.run 05``."""

from __future__ import annotations

import argparse
import importlib
import inspect
import pprint


def run(notebook: str, size: str = "tiny", seed: int = 0) -> dict[str, object]:
    """Call every ``ex*`` function of ``NN_solutions`` with ``size`` and ``seed``; returns {name: answer}."""
    module = importlib.import_module(f"notebooks.solutions.{notebook[:2]}_solutions")
    answers = {}
    for name, fn in sorted(inspect.getmembers(module, inspect.isfunction)):
        if name.startswith("ex") and fn.__module__ == module.__name__:
            answers[name] = fn(size=size, seed=seed)
    return answers


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("notebook", help="notebook id, e.g. 05")
    ap.add_argument("--size", default="tiny")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    for name, answer in run(args.notebook, args.size, args.seed).items():
        print(f"== {name}")
        pprint.pprint(answer, width=110, sort_dicts=False)


if __name__ == "__main__":
    main()
