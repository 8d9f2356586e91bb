"""The executor contract: an action is planned (pure, no I/O) and then executed (dry-run by default).

>>> plan = Plan(kind="shell", target="web-1", action={"command": "true"}, changes=("run `true` on web-1",))
>>> plan.describe()
'shell on web-1: run `true` on web-1'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

__all__ = ["Executor", "Outcome", "Plan"]


@dataclass(frozen=True)
class Plan:
    """Exactly what an action would change. ``kind`` is the executor (``kubernetes.scale``, ``shell``, ...),
    ``target`` what it acts on (``namespace/deployment``, a program name, a URL), ``action`` the validated
    parameters, ``changes`` one human-readable line per change, ``reversible`` whether :meth:`Executor.rollback`
    can undo it."""

    kind: str
    target: str
    action: Mapping[str, Any]
    changes: tuple[str, ...]
    reversible: bool = True

    def describe(self) -> str:
        return f"{self.kind} on {self.target}: " + "; ".join(self.changes)


@dataclass(frozen=True)
class Outcome:
    """What executing a plan did. ``before``/``after`` are the target's state as read from the system (for
    rollback and the audit log); a dry run reads ``before`` when it can and changes nothing (``after`` is None);
    ``changed`` is False when the target was already in the planned state (idempotence)."""

    plan: Plan
    ok: bool
    dry_run: bool
    changed: bool
    before: Mapping[str, Any] | None = None
    after: Mapping[str, Any] | None = None
    message: str = ""
    details: Mapping[str, Any] = field(default_factory=dict)


@runtime_checkable
class Executor(Protocol):
    """One kind of action. ``plan`` does no I/O; ``execute`` is idempotent; ``rollback`` restores ``before``."""

    kind: str

    def plan(self, target: str, action: Mapping[str, Any]) -> Plan: ...

    def execute(self, plan: Plan, dry_run: bool = True) -> Outcome: ...

    def rollback(self, outcome: Outcome, dry_run: bool = True) -> Outcome: ...
