"""A base for the plain slotted classes every ``plan`` builds, instead of attrs or dataclasses.

attrs and dataclasses write each class's methods as source text and compile it when the
module is imported: about 0.6 ms (attrs) and 1.2 ms (dataclasses) per class on the 2-core
benchmark machine, plus some 18 ms to import attrs. For the 25 classes a ``plan`` needs
that was a fifth of its 150 ms start-up budget (``bench/cli_bench.py``). The classes on
that path spell their ``__init__`` out instead (as fast to call as a generated one); this
base gives them the field-wise ``==`` and ``repr`` that attrs generated.
"""

from __future__ import annotations

from typing import Any


class Record:
    """Field-wise ``==`` and ``repr`` over ``__slots__`` (a record's fields, in order)."""

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in self.__slots__)

    __hash__ = None  # type: ignore[assignment]  # mutable, like attrs' default

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name, '<unset>')!r}" for name in self.__slots__)
        return f"{type(self).__name__}({fields})"

    def as_dict(self) -> dict[str, Any]:
        """The fields by name, values not copied (``attrs.asdict(..., recurse=False)``)."""
        return {name: getattr(self, name) for name in self.__slots__}
