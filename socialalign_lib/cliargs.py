"""Deprecated import path: use socialalign_lib.cli.args (the same module object: every name, private ones included,
and monkeypatching keep working)."""

import sys

from socialalign_lib.cli import args as _m

sys.modules[__name__] = _m
