"""Deprecated import path: use socialalign_lib.data.persona_text (this name is the same module object)."""

import sys

from socialalign_lib.data import persona_text as _m

sys.modules[__name__] = _m
