"""``python -m socialalign_lib.cli …``: the same command line as ``socialalign`` and ``python -m socialalign_lib``."""

import sys

from . import main

if __name__ == "__main__":
    sys.exit(main())
