"""How a module hands out names that live in other modules: one mechanism for the deprecated flat paths and the
lazily loaded stage packages, instead of a hand-written module ``__getattr__`` in each of them.

* :func:`forward_names`: a shim (``socialalign_lib/io.py`` …) or a package that was one module (``build/records``)
  finds any name of the old module, private helpers included, in the modules it moved to.
* :func:`lazy_names`: a package (``train``, ``generate``) whose ``__init__`` imports nothing heavy maps each public
  name to its submodule, imports it on first use and caches it (``import socialalign_lib.generate`` stays cheap for
  the CLI, which needs a replies path, not torch).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from types import ModuleType
from typing import Any


def forward_names(
    owner: str, modules: Sequence[ModuleType | str], own_only: bool = False
) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``owner`` looking ``name`` up in ``modules`` (objects or dotted names, imported
    when first searched), in order. ``own_only``: a module counts only for names in its own namespace (so a name a
    submodule merely imported is not taken from there)."""

    def __getattr__(name: str) -> Any:
        for module in modules:
            mod = importlib.import_module(module) if isinstance(module, str) else module
            if (name in vars(mod)) if own_only else hasattr(mod, name):
                return getattr(mod, name)
        raise AttributeError(f"module {owner!r} has no attribute {name!r}")

    return __getattr__


def lazy_names(
    owner: str, table: Mapping[str, str], namespace: MutableMapping[str, Any]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for package ``owner``: ``table`` maps a public name to the submodule holding it;
    the first access imports ``owner.<submodule>`` and stores the value in ``namespace`` (the package's globals)."""

    def __getattr__(name: str) -> Any:
        module = table.get(name)
        if module is None:
            raise AttributeError(f"module {owner!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{owner}.{module}"), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *table})

    return __getattr__, __dir__
