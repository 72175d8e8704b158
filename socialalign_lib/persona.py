"""Deprecated import path: use socialalign_lib.build.persona (split into prompt, backends, statistical, extractor,
recovery).

This name is the package itself (the same module object), so ``from socialalign_lib.persona import X``, private
names and monkeypatching keep working.
"""

import sys

from socialalign_lib.build import persona as _m

sys.modules[__name__] = _m
