"""Deprecated import path: use socialalign_lib.experiments (this name is the same module object)."""

import sys

from socialalign_lib import experiments as _m

sys.modules[__name__] = _m
