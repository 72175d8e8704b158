"""Deprecated import path: use socialalign_lib.generate.vllm (this name is the same module object)."""

import sys

from socialalign_lib.generate import vllm as _m

sys.modules[__name__] = _m
