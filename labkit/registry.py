"""Name -> factory tables shared by the config validator, the CLI, the widgets and search."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Generic, Iterator, TypeVar

from .errors import LabkitError

T = TypeVar("T")


@dataclass
class Entry(Generic[T]):
    """One registered choice: its factory, a one-line description and free-form traits."""

    name: str
    factory: T
    help: str = ""
    traits: dict[str, Any] = field(default_factory=dict)


class Registry(Generic[T]):
    """A named table of factories; unknown names raise an error that lists the valid ones."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}

    def register(self, name: str, help: str = "", **traits: Any) -> Callable[[T], T]:
        """Decorator adding `factory` under `name`."""

        def deco(factory: T) -> T:
            self.add(name, factory, help, **traits)
            return factory

        return deco

    def add(self, name: str, factory: T, help: str = "", **traits: Any) -> None:
        """Add `factory` under `name` (names are unique)."""
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = Entry(name, factory, help, dict(traits))

    def entry(self, name: str) -> Entry[T]:
        """The entry for `name`, or a LabkitError naming every valid choice."""
        try:
            return self._entries[name]
        except KeyError:
            raise LabkitError(
                f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())}"
            ) from None

    def get(self, name: str) -> T:
        """The factory for `name`."""
        return self.entry(name).factory

    def check(self, name: str) -> None:
        """Raise the unknown-name error unless `name` is registered."""
        self.entry(name)

    def names(self) -> list[str]:
        """Registered names, in registration order (the order menus show)."""
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)
