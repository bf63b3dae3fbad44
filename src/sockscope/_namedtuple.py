"""``NamedTuple`` for the record classes, without importing ``typing`` at run time.

Every ``sockscope`` command starts by defining some fifteen record classes. With
``typing.NamedTuple`` that costs ~3 ms to import ``typing`` plus ~2 ms to turn each
string annotation into a compiled ``ForwardRef``: a quarter of the start-up of a short
listing. The class syntax is the same; type checkers see ``typing.NamedTuple`` itself.

At run time a class written ``class Owner(NamedTuple): pid: int ...`` becomes the class
``collections.namedtuple`` makes from its annotated fields, with the class body's
defaults, methods, properties and docstring on it, as ``typing.NamedTuple`` does.
"""

from __future__ import annotations

from collections import namedtuple

__all__ = ["NamedTuple"]

TYPE_CHECKING = False  # mypy treats any name TYPE_CHECKING as true
if TYPE_CHECKING:
    from typing import NamedTuple
else:
    # Class-body names that describe the class rather than belong on it.
    _SKIP = frozenset({"__module__", "__qualname__", "__annotations__"})

    class _NamedTupleMeta(type):
        def __new__(cls, name: str, bases: tuple[type, ...], ns: dict[str, object]) -> type:
            annotations = ns.get("__annotations__", {})
            fields = list(annotations)
            defaults = [ns[f] for f in fields if f in ns]
            if any(f in ns for f in fields[: len(fields) - len(defaults)]):
                raise TypeError(f"{name}: a field without a default follows one with a default")
            record = namedtuple(name, fields, defaults=defaults, module=ns["__module__"])
            for key, value in ns.items():
                if key not in _SKIP and key not in annotations:
                    setattr(record, key, value)
            record.__qualname__ = ns.get("__qualname__", name)
            record.__annotations__ = dict(annotations)
            return record

    NamedTuple = type.__new__(_NamedTupleMeta, "NamedTuple", (), {})
