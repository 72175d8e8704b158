"""Deprecated import path: use socialalign_lib.data.schema (this name is the same module object)."""

import sys

from socialalign_lib.data import schema as _m

sys.modules[__name__] = _m
