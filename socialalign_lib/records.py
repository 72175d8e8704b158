"""Deprecated import path: use socialalign_lib.build.records (split into template, chat, dataset).

This name is the package itself (the same module object), so ``from socialalign_lib.records import X``, private
names and monkeypatching keep working.
"""

import sys

from socialalign_lib.build import records as _m

sys.modules[__name__] = _m
