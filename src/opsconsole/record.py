"""Frozen records: what `@dataclass(frozen=True)` gives, built without generating code.

`dataclasses` writes and compiles six methods for each class (`__init__`, `__repr__`, `__eq__`,
`__hash__`, `__setattr__`, `__delattr__`): ~0.8 ms a class here, ~20 ms of the console's start-up for
the frozen classes it loads before its first frame (the profile model above all). These classes share
one generic method of each instead. Same behaviour: positional or keyword arguments with defaults and
`field(default_factory=...)`, the same `TypeError`s for missing, unexpected or repeated arguments,
`Name(a=1, b='x')` reprs, equality with the same class only, a hash of the fields, and
`dataclasses.FrozenInstanceError` on assignment. Type checkers see a frozen dataclass
(`dataclass_transform`). tests/test_record.py holds it side by side with `dataclasses`.
"""

from __future__ import annotations

from dataclasses import MISSING, Field, FrozenInstanceError, field
from typing import Any, TypeVar, dataclass_transform

__all__ = ["field", "frozen", "is_record"]

T = TypeVar("T", bound=type)

_set = object.__setattr__


@dataclass_transform(frozen_default=True, field_specifiers=(field,))
def frozen(cls: T) -> T:
    """Make `cls` a frozen record of its annotated fields, in order (a base record's come first)."""
    specs: dict[str, tuple[str, Any, Any]] = {}  # a field redefined keeps its place, as in dataclasses
    for base in reversed(cls.__mro__[1:]):
        specs.update((spec[0], spec) for spec in base.__dict__.get("__record_fields__", ()))
    seen_default = False
    for name, annotation in cls.__dict__.get("__annotations__", {}).items():
        if str(annotation).startswith(("ClassVar", "typing.ClassVar")):
            continue
        default: Any = cls.__dict__.get(name, MISSING)
        factory: Any = MISSING
        if isinstance(default, Field):
            if not (
                default.init and default.repr and default.compare in (True, None) and default.hash is None
            ):
                raise TypeError(
                    f"{cls.__name__}.{name}: a record field takes only a default or default_factory"
                )
            default, factory = default.default, default.default_factory
            if default is MISSING:
                delattr(cls, name)
            else:
                setattr(cls, name, default)
        if default is MISSING and factory is MISSING:
            if seen_default:
                raise TypeError(f"non-default argument '{name}' follows default argument")
        else:
            seen_default = True
        specs[name] = (name, default, factory)
    setattr(cls, "__record_fields__", tuple(specs.values()))  # noqa: B010 - set on a class that does not declare it
    setattr(cls, "__match_args__", tuple(specs))  # noqa: B010
    for method in (_init, _repr, _eq, _hash, _setattr, _delattr):
        setattr(cls, f"__{method.__name__[1:]}__", method)
    return cls


def is_record(value: object) -> bool:
    """Whether `value` is a record (an instance, not the class)."""
    return not isinstance(value, type) and hasattr(type(value), "__record_fields__")


def _init(self: Any, *args: Any, **kwargs: Any) -> None:
    specs = type(self).__record_fields__
    if len(args) > len(specs):
        required = sum(1 for _, default, factory in specs if default is MISSING and factory is MISSING)
        takes = f"{len(specs) + 1}" if required == len(specs) else f"from {required + 1} to {len(specs) + 1}"
        raise TypeError(
            f"{type(self).__qualname__}.__init__() takes {takes} positional arguments but {len(args) + 1} were given"
        )
    for index, (name, default, factory) in enumerate(specs):
        if index < len(args):
            if name in kwargs:
                raise TypeError(
                    f"{type(self).__qualname__}.__init__() got multiple values for argument '{name}'"
                )
            value = args[index]
        elif name in kwargs:
            value = kwargs.pop(name)
        elif default is not MISSING:
            value = default
        elif factory is not MISSING:
            value = factory()
        else:
            raise TypeError(
                f"{type(self).__qualname__}.__init__() missing 1 required positional argument: '{name}'"
            )
        _set(self, name, value)
    if kwargs:
        raise TypeError(
            f"{type(self).__qualname__}.__init__() got an unexpected keyword argument '{next(iter(kwargs))}'"
        )


def _values(self: Any) -> tuple[Any, ...]:
    return tuple(getattr(self, name) for name, _, _ in type(self).__record_fields__)


def _repr(self: Any) -> str:
    fields = ", ".join(f"{name}={getattr(self, name)!r}" for name, _, _ in type(self).__record_fields__)
    return f"{type(self).__qualname__}({fields})"


def _eq(self: Any, other: object) -> Any:
    if other.__class__ is self.__class__:
        return _values(self) == _values(other)
    return NotImplemented


def _hash(self: Any) -> int:
    return hash(_values(self))


def _setattr(self: Any, name: str, value: Any) -> None:
    raise FrozenInstanceError(f"cannot assign to field '{name}'")


def _delattr(self: Any, name: str) -> None:
    raise FrozenInstanceError(f"cannot delete field '{name}'")
