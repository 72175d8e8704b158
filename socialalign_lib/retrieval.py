"""Deprecated import path: use socialalign_lib.build.retrieval.

This name is that module itself (the same module object), so imports, private names and monkeypatching keep
working.
"""

import sys

from socialalign_lib.build import retrieval as _m

sys.modules[__name__] = _m
