"""A small typed registry: components are named, built from ``{"type": ..., "params": ...}`` and dumped back."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Generic, TypeVar

from opsmind.core.errors import ConfigError

T = TypeVar("T")

__all__ = ["Registry"]


class Registry(Generic[T]):
    """Named constructors of one family of components.

    Examples
    --------
    >>> reg: Registry[object] = Registry("example")
    >>> @reg.register("point")
    ... class Point:
    ...     def __init__(self, x: int = 0) -> None:
    ...         self.x = x
    >>> p = reg.build({"type": "point", "params": {"x": 3}})
    >>> p.x, reg.spec(p)
    (3, {'type': 'point', 'params': {'x': 3}})
    """

    def __init__(self, family: str) -> None:
        self.family = family
        self._items: dict[str, Callable[..., T]] = {}

    def register(self, name: str) -> Callable[[type[T]], type[T]]:
        def deco(cls: type[T]) -> type[T]:
            if name in self._items:
                raise ConfigError(f"{self.family}: {name!r} is registered twice")
            self._items[name] = cls
            cls._registry_name = name  # type: ignore[attr-defined]
            return cls

        return deco

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))

    def __len__(self) -> int:
        return len(self._items)

    def get(self, name: str) -> Callable[..., T]:
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items)) or "none"
            raise ConfigError(f"unknown {self.family} {name!r}; known: {known}") from None

    def build(self, spec: str | Mapping[str, Any]) -> T:
        """Build a component from its name or from ``{"type": name, "params": {...}}``."""
        if isinstance(spec, str):
            return self.get(spec)()
        if not isinstance(spec, Mapping) or "type" not in spec:
            raise ConfigError(f"{self.family} spec must be a name or a mapping with 'type', got {spec!r}")
        params = spec.get("params") or {}
        if not isinstance(params, Mapping):
            raise ConfigError(f"{self.family} {spec['type']!r}: 'params' must be a mapping")
        ctor = self.get(str(spec["type"]))
        try:
            return ctor(**params)
        except TypeError as exc:
            raise ConfigError(f"{self.family} {spec['type']!r}: bad params: {exc}") from None

    def spec(self, obj: T) -> dict[str, Any]:
        """The ``{"type", "params"}`` that rebuilds ``obj`` (constructor arguments stored as attributes)."""
        name = getattr(type(obj), "_registry_name", None)
        if name is None:
            raise ConfigError(f"{type(obj).__name__} is not registered in {self.family}")
        sig = inspect.signature(type(obj).__init__)
        params = {
            p: getattr(obj, p)
            for p in sig.parameters
            if p != "self" and hasattr(obj, p)
        }
        return {"type": name, "params": params}
