"""opsconsole.record.frozen side by side with @dataclass(frozen=True): the same objects, the same errors."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar

import pytest

from opsconsole.record import field, frozen


def pair(body: Callable[[Callable[[type], type]], type]) -> tuple[type, type]:
    """The same class made by dataclasses and by record."""
    return body(dataclasses.dataclass(frozen=True)), body(frozen)


def spec(decorate: Callable[[type], type]) -> type:
    class Spec:
        kind: ClassVar[str] = "spec"
        name: str
        port: int | None = None
        tags: tuple[str, ...] = ()
        extra: dict[str, int] = field(default_factory=dict)

        @property
        def label(self) -> str:
            return f"{self.name}:{self.port}"

    return decorate(Spec)


def empty(decorate: Callable[[type], type]) -> type:
    class Empty:
        pass

    return decorate(Empty)


CALLS: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
    (("web",), {}),
    (("web", 22), {}),
    (("web", 22, ("a",), {"x": 1}), {}),
    ((), {"name": "web", "tags": ("b",)}),
    (("web",), {"extra": {"y": 2}, "port": 8}),
    ((), {}),  # missing name
    (("web", 1, (), {}, "too many"), {}),
    (("web",), {"name": "again"}),
    (("web",), {"colour": "red"}),
]


@pytest.mark.parametrize(("args", "kwargs"), CALLS)
def test_construction_repr_equality_hash_and_errors_match_dataclasses(
    args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    theirs_cls, ours_cls = pair(spec)

    def make(cls: type) -> Any:
        try:
            return cls(*args, **kwargs)
        except TypeError as exc:
            return exc

    theirs, ours = make(theirs_cls), make(ours_cls)
    if isinstance(theirs, TypeError):
        assert isinstance(ours, TypeError) and str(ours) == str(theirs)
        return
    assert repr(ours) == repr(theirs)
    assert ours.label == theirs.label and ours.kind == "spec"
    assert ours == ours_cls(*args, **kwargs) and ours != theirs  # another class is never equal
    assert ours != ours_cls("other")
    try:
        expected: int | TypeError = hash(theirs)
    except TypeError as exc:  # a dict field: unhashable, for both
        expected = exc
    try:
        assert hash(ours) == expected
    except TypeError as exc:
        assert str(exc) == str(expected)
    with pytest.raises(dataclasses.FrozenInstanceError):
        ours.name = "changed"
    with pytest.raises(dataclasses.FrozenInstanceError):
        del ours.port


def test_defaults_factories_match_args_and_empty_records() -> None:
    theirs_cls, ours_cls = pair(spec)  # typed as plain classes: what they hold is checked at run time
    theirs: Any = theirs_cls
    ours: Any = ours_cls
    one, two = ours("a"), ours("b")
    assert one.extra == {} and one.extra is not two.extra  # a fresh value from the factory each time
    assert ours.port is None and "extra" not in vars(ours)  # as dataclasses leaves them
    assert ours.__match_args__ == theirs.__match_args__ == ("name", "port", "tags", "extra")
    match ours("web", 22):
        case ours_cls(name, port):  # type: ignore[misc]
            assert (name, port) == ("web", 22)
        case _:
            pytest.fail("no match")
    theirs_empty, ours_empty = pair(empty)
    assert repr(ours_empty()) == repr(theirs_empty()).replace(
        theirs_empty.__qualname__, ours_empty.__qualname__
    )
    assert ours_empty() == ours_empty() and hash(ours_empty()) == hash(())


def test_field_order_and_unsupported_field_options_are_refused() -> None:
    with pytest.raises(TypeError, match="non-default argument 'b' follows default argument"):

        @frozen
        class Bad:
            a: int = 1
            b: int  # type: ignore[misc]

    with pytest.raises(TypeError, match="only a default or default_factory"):

        @frozen
        class Hidden:
            a: int = field(default=1, repr=False)


def test_the_profile_model_is_made_of_records() -> None:
    from pathlib import Path

    from opsconsole.profiles.model import Defaults, HostSpec, Profile

    profile = Profile(name="p", path=Path("p.toml"), project_name="shop")
    assert profile.defaults == Defaults() and profile.environments == {}
    assert repr(HostSpec("web", "web")) == "HostSpec(raw='web', hostname='web', user=None, port=None)"
    assert {HostSpec("web", "web"), HostSpec("web", "web")} == {HostSpec("web", "web")}
    with pytest.raises(dataclasses.FrozenInstanceError):
        profile.defaults.timeout = 1  # type: ignore[misc]
