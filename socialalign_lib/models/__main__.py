"""``python -m socialalign_lib.models --rebuild`` (``make model``): rebuild the embedded base model folder."""

from .build import main

if __name__ == "__main__":
    main()
