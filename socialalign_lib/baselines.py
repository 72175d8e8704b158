"""Deprecated import path: use socialalign_lib.crowd.baselines.

The same module object (sys.modules points here to it), so attribute access, monkeypatching and private names
behave as before.
"""

import sys

from .crowd import baselines as _m

sys.modules[__name__] = _m
