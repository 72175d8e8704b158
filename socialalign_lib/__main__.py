"""``python -m socialalign_lib …``: the ``socialalign`` command line (see :mod:`socialalign_lib.cli`)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
