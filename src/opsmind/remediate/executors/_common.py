"""What every executor shares: parameter validation, the plan key, the never-raise wrapper, the run memo.

An executor subclasses :class:`ExecutorBase`, names its ``kind``, its ``params_model`` (the pydantic model of a plan's
``action``) and its ``Settings``, and implements ``_changes`` (pure), ``_execute`` and ``_rollback``. The base
class turns every exception out of those into ``Outcome(ok=False, message=<one line>)`` and makes a rollback of a
dry run or of an outcome that changed nothing a no-op.

>>> class Echo(ExecutorBase[Params]):
...     kind = "echo"
...     params_model = Params
...     def _changes(self, target: str, params: Params) -> tuple[str, ...]:
...         return (f"say hello to {target}",)
>>> plan = Echo().plan("world", {"run_id": "r1"})
>>> plan.describe(), plan_key(plan) == plan_key(Echo().plan("world", {"run_id": "r1"}))
('echo on world: say hello to world', True)
>>> Echo().plan("world", {"colour": "red"})
Traceback (most recent call last):
...
opsmind.core.errors.ConfigError: echo on world: action.colour: Extra inputs are not permitted
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Mapping
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from opsmind.core.errors import ConfigError, OpsmindError
from opsmind.remediate.executors.base import Outcome, Plan

__all__ = ["ExecutionError", "ExecutorBase", "Params", "RunMemo", "failure_text", "plan_key", "validation_text"]

MESSAGE_CHARS = 400


class Params(BaseModel):
    """Parameters every action accepts."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    run_id: str | None = Field(None, max_length=200, description="Tells two runs of the same action apart: it is "
                               "part of the plan key, so an action repeated with a new run id runs again.")
    at: float | None = Field(None, ge=0, description="When the action is planned (Unix seconds, the runner's clock): "
                             "kubernetes.restart writes it to restartedAt, alertmanager.silence starts there.")


P = TypeVar("P", bound=Params)


class ExecutionError(OpsmindError):
    """A failure after the executor read or changed something: carries ``before`` and whether it changed."""

    def __init__(self, message: str, *, before: Mapping[str, Any] | None = None,
                 after: Mapping[str, Any] | None = None, changed: bool = False) -> None:
        super().__init__(message)
        self.before = before
        self.after = after
        self.changed = changed


def plan_key(plan: Plan) -> str:
    """A stable 16-hex-digit key of a plan: its kind, target and action (which holds ``run_id``)."""
    text = json.dumps({"kind": plan.kind, "target": plan.target, "action": plan.action}, sort_keys=True,
                      separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def one_line(text: str) -> str:
    return " ".join(text.split())


def validation_text(exc: ValidationError, root: str = "action") -> str:
    """``<root>.<field path>: <message>`` of each pydantic error (the first five), joined by ``; ``."""
    parts = []
    for err in exc.errors()[:5]:
        loc = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"])
        parts.append(f"{root}{loc}: {err['msg']}".lstrip("."))
    return "; ".join(parts)


def failure_text(kind: str, target: str, exc: BaseException) -> str:
    """One line naming the action, the target and what went wrong (at most ``MESSAGE_CHARS`` characters)."""
    detail = str(exc) if isinstance(exc, OpsmindError) else f"{type(exc).__name__}: {exc}"
    text = one_line(f"{kind} on {target}: {detail or type(exc).__name__}")
    return text if len(text) <= MESSAGE_CHARS else text[: MESSAGE_CHARS - 3] + "..."


class RunMemo:
    """The outcomes of plans executed (for real, successfully) by one executor, by plan key; thread-safe.

    Used where the system holds no state that shows the action was done (a restart, a webhook, a command).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._done: dict[str, Outcome] = {}

    def get(self, key: str) -> Outcome | None:
        with self._lock:
            return self._done.get(key)

    def put(self, key: str, outcome: Outcome) -> None:
        with self._lock:
            self._done[key] = outcome


class ExecutorBase(Generic[P]):
    """Plan, execute and roll back one kind of action; see the module docstring."""

    kind: str
    params_model: ClassVar[type[Params]]
    settings_model: ClassVar[type[BaseModel]]

    # ---- planning (pure) ----------------------------------------------------------------------------------
    def plan(self, target: str, action: Mapping[str, Any]) -> Plan:
        """Validate ``action`` for ``target`` and say exactly what would change; no I/O.

        Raises :class:`~opsmind.core.ConfigError` naming the field when the action is invalid or not allowed.
        """
        target = self._target(target)
        params = self._params(target, action)
        return Plan(kind=self.kind, target=target, action=params.model_dump(mode="json"),
                    changes=self._changes(target, params), reversible=self._reversible(params))

    def _target(self, target: str) -> str:
        if not isinstance(target, str) or not target.strip():
            raise ConfigError(f"{self.kind}: the target must be a non-empty string, got {target!r}")
        return target.strip()

    def _params(self, target: str, action: Mapping[str, Any]) -> P:
        if not isinstance(action, Mapping):
            raise ConfigError(f"{self.kind} on {target}: action must be a mapping, got {type(action).__name__}")
        try:
            params = self.params_model.model_validate(dict(action))
        except ValidationError as exc:
            raise ConfigError(f"{self.kind} on {target}: {validation_text(exc)}") from None
        self._check(target, params)  # type: ignore[arg-type]
        return params  # type: ignore[return-value]

    def _check(self, target: str, params: P) -> None:
        """Refuse a valid-looking action that the settings do not allow (raise ``ConfigError``)."""

    def _changes(self, target: str, params: P) -> tuple[str, ...]:
        raise NotImplementedError

    def _reversible(self, params: P) -> bool:
        return True

    # ---- execution (never raises) -------------------------------------------------------------------------
    def execute(self, plan: Plan, dry_run: bool = True) -> Outcome:
        """Carry out ``plan`` (only read, with ``dry_run``, the default). Failures become ``ok=False``."""
        try:
            params = self._replan(plan)
            return self._execute(plan, params, dry_run)
        except Exception as exc:  # the contract: nothing raw leaves execute
            return self._failed(plan, dry_run, exc)

    def rollback(self, outcome: Outcome, dry_run: bool = True) -> Outcome:
        """Restore ``outcome.before``; a no-op for a dry run or an outcome that changed nothing."""
        plan = outcome.plan
        if outcome.dry_run or not outcome.changed:
            why = "it was a dry run" if outcome.dry_run else "the action changed nothing"
            return Outcome(self.rollback_plan(plan, (f"nothing to roll back: {why}",)), ok=True, dry_run=dry_run,
                           changed=False, before=outcome.after, after=outcome.after,
                           message=f"nothing to roll back: {why}")
        try:
            params = self._replan(plan)
            return self._rollback(outcome, params, dry_run)
        except Exception as exc:
            return self._failed(self.rollback_plan(plan, ("restore the state before the action",)), dry_run, exc)

    def rollback_plan(self, plan: Plan, changes: tuple[str, ...]) -> Plan:
        """The plan a rollback outcome carries: same kind and target, ``action`` names the plan undone."""
        return Plan(kind=plan.kind, target=plan.target, action={"rollback_of": plan_key(plan)}, changes=changes,
                    reversible=False)

    def _replan(self, plan: Plan) -> P:
        """Validate a plan again (it may come from storage or another process): kind, target and action."""
        if plan.kind != self.kind:
            raise ConfigError(f"this executor runs {self.kind!r} plans, not {plan.kind!r}")
        return self._params(self._target(plan.target), plan.action)

    def _failed(self, plan: Plan, dry_run: bool, exc: BaseException) -> Outcome:
        before = after = None
        changed = False
        if isinstance(exc, ExecutionError):
            before, after, changed = exc.before, exc.after, exc.changed
        return Outcome(plan, ok=False, dry_run=dry_run, changed=changed, before=before, after=after,
                       message=failure_text(plan.kind, plan.target, exc),
                       details={"error": type(exc).__name__, "plan_key": plan_key(plan)})

    def _execute(self, plan: Plan, params: P, dry_run: bool) -> Outcome:
        raise NotImplementedError

    def _rollback(self, outcome: Outcome, params: P, dry_run: bool) -> Outcome:
        raise ConfigError(f"{self.kind} cannot be rolled back")
