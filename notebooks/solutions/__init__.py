"""Solutions to the exercises at the end of each course notebook, one module per notebook (``NN_solutions.py``).

Each exercise is one function that uses the library and returns its answer; ``tests/test_solutions.py`` runs them
all at the tiny world size and checks the answers. Run one notebook's solutions from the repository root::

    python -m notebooks.solutions.run 05            # tiny size (seconds)
    python -m notebooks.solutions.run 05 --size course

or import one (the names start with a digit, so through importlib)::

    import importlib
    s05 = importlib.import_module("notebooks.solutions.05_solutions")   # from the repository root
    s05.ex2_hashtag_prior(size="tiny")
"""
