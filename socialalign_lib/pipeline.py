"""Deprecated import path: use socialalign_lib.build.pipeline.

This name is that module itself (the same module object), so imports and monkeypatching keep working.
"""

import sys

from socialalign_lib.build import pipeline as _m

sys.modules[__name__] = _m
