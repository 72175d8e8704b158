"""The embedded Weibo world: a seeded simulator with known ground truth (docs/design.md#the-embedded-world).

>>> from socialalign_lib.world import generate_world
>>> world = generate_world(size="tiny", seed=0)
>>> len(world.cases()) > 0
True
"""

from .generate import SIZES, World, WorldConfig, generate_world, iter_world, write_world
from .latent import CATEGORY_KEYS, LatentTopic, LatentUser, sentiment_probs

__all__ = [
    "SIZES",
    "CATEGORY_KEYS",
    "LatentTopic",
    "LatentUser",
    "World",
    "WorldConfig",
    "generate_world",
    "iter_world",
    "sentiment_probs",
    "write_world",
]
