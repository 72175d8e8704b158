"""``socialalign collect`` and ``socialalign bench``: commands that hand their arguments to another program's
own parser (the crawler's ``python -m socialalign_lib.collect``, ``benchmarks/run.py``)."""

from __future__ import annotations

import sys


def _collect(argv: list[str]) -> int:
    from socialalign_lib.collect.__main__ import main as collect_main

    return collect_main(argv)


def _bench(argv: list[str]) -> int:
    try:
        from benchmarks.run import main as bench_main
    except ImportError:
        from socialalign_lib.paths import ROOT

        if not (ROOT / "benchmarks" / "run.py").exists():
            print("socialalign bench: benchmarks/run.py is not in this checkout", file=sys.stderr)
            return 2
        sys.path.insert(0, str(ROOT))
        from benchmarks.run import main as bench_main
    return int(bench_main(argv) or 0)
