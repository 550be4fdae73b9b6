"""Package attributes that import their module on first use (PEP 562 ``__getattr__``)."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_attributes(namespace: dict[str, Any], where: Mapping[str, str]) -> tuple[Callable[[str], Any],
                                                                               Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for a package whose names ``where`` maps to their modules.

    A name is imported when first read, then kept in ``namespace`` (the package's globals):
    a command pays only for the modules it uses.
    """
    package = namespace["__name__"]

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(where))

    return __getattr__, __dir__
