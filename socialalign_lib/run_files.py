"""Deprecated import path: use socialalign_lib.generate.paths (this name is the same module object)."""

import sys

from socialalign_lib.generate import paths as _m

sys.modules[__name__] = _m
