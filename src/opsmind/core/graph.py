"""The service call graph: which service calls which. One type serves incident grouping (distance, who is
upstream), root-cause analysis (propagation along callers and callees) and the engine (built from a topology,
configured dependencies or spans).

>>> g = CallGraph.from_edges([("web", "cart"), ("web", "db"), ("cart", "db"), ("db", "db")])
>>> g.callees("web"), g.callers("db"), len(g)
(('cart', 'db'), ('cart', 'web'), 3)
>>> g.distance("cart", "web", limit=2), sorted(g.upstream(["db"])), sorted(g.entries())
(1, ['cart', 'db', 'web'], ['web'])
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from opsmind.core.errors import ConfigError

__all__ = ["CallGraph", "calls_from_spans"]


@dataclass(frozen=True)
class CallGraph:
    """Directed call edges ``caller -> callee`` between services (self-calls dropped)."""

    edges: frozenset[tuple[str, str]] = frozenset()
    _down: dict[str, tuple[str, ...]] = field(default_factory=dict, init=False, repr=False, compare=False)
    _up: dict[str, tuple[str, ...]] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        down: dict[str, set[str]] = defaultdict(set)
        up: dict[str, set[str]] = defaultdict(set)
        for a, b in self.edges:
            down[a].add(b)
            up[b].add(a)
        object.__setattr__(self, "_down", {k: tuple(sorted(v)) for k, v in down.items()})
        object.__setattr__(self, "_up", {k: tuple(sorted(v)) for k, v in up.items()})

    @classmethod
    def from_edges(cls, edges: Iterable[tuple[str, str]]) -> CallGraph:
        return cls(frozenset((str(a), str(b)) for a, b in edges if str(a) != str(b)))

    @classmethod
    def from_mapping(cls, calls: Mapping[str, Iterable[str]]) -> CallGraph:
        """From ``{caller: [callee, ...]}``, the shape a config file gives."""
        return cls.from_edges((a, b) for a, callees in calls.items() for b in callees)

    @classmethod
    def coerce(cls, topology: object) -> CallGraph:
        """A graph from a :class:`CallGraph`, a simulator ``Topology`` (``.calls``), a ``{caller: [callees]}``
        mapping or ``(caller, callee)`` pairs."""
        if isinstance(topology, CallGraph):
            return topology
        calls = getattr(topology, "calls", None)
        if calls is not None and not isinstance(topology, tuple | list | set | frozenset | Mapping):
            return cls.from_edges((c.caller, c.callee) for c in calls)
        if isinstance(topology, Mapping):
            return cls.from_mapping(topology)
        if isinstance(topology, Iterable):
            return cls.from_edges(topology)
        raise ConfigError(f"topology must be (caller, callee) pairs or have .calls, got {type(topology).__name__}")

    def callees(self, service: str) -> tuple[str, ...]:
        return self._down.get(service, ())

    def callers(self, service: str) -> tuple[str, ...]:
        return self._up.get(service, ())

    @property
    def services(self) -> set[str]:
        return set(self._down) | set(self._up)

    def __len__(self) -> int:
        return len(self.edges)

    def __bool__(self) -> bool:
        return bool(self.edges)

    def union(self, other: CallGraph) -> CallGraph:
        return CallGraph(self.edges | other.edges)

    def distance(self, a: str, b: str, limit: int) -> int | None:
        """Calls between ``a`` and ``b`` in either direction (undirected), if at most ``limit``."""
        if a == b:
            return 0
        seen, frontier = {a}, deque([(a, 0)])
        while frontier:
            node, d = frontier.popleft()
            if d == limit:
                continue
            for nxt in (*self.callees(node), *self.callers(node)):
                if nxt == b:
                    return d + 1
                if nxt not in seen:
                    seen.add(nxt)
                    frontier.append((nxt, d + 1))
        return None

    def upstream(self, services: Iterable[str]) -> set[str]:
        """The services and everything that calls them, directly or not: who feels their failure."""
        out = set(services)
        stack = list(out)
        while stack:
            for caller in self.callers(stack.pop()):
                if caller not in out:
                    out.add(caller)
                    stack.append(caller)
        return out

    def entries(self) -> set[str]:
        """Services nobody calls (the front doors)."""
        return {s for s in self.services if not self.callers(s)}


def calls_from_spans(spans: Sequence[Any]) -> CallGraph:
    """Edges ``parent service -> child service`` for every span whose parent is in another service.

    ``spans`` are :class:`opsmind.core.spans.Span` objects (anything with ``trace_id``, ``span_id``,
    ``parent_id`` and ``service``); spans whose parent is missing are skipped.
    """
    owner: dict[tuple[str, str], str] = {(s.trace_id, s.span_id): s.service for s in spans}
    edges: set[tuple[str, str]] = set()
    for s in spans:
        if s.parent_id is None:
            continue
        parent = owner.get((s.trace_id, s.parent_id))
        if parent is not None and parent != s.service:
            edges.add((parent, s.service))
    return CallGraph(frozenset(edges))
