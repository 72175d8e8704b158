"""socialalign_lib: the library behind the socialalign-course notebooks."""

__version__ = "0.1.0"
