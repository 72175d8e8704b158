"""socialalign_lib: the library behind the socialalign-course notebooks."""

from . import runtime as _runtime

_runtime.configure()  # before anything imports torch: OpenMP's wait policy, quiet optional-kernel warnings

__version__ = "0.1.0"
