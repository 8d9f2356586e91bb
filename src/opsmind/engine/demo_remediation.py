"""Remediation in ``opsmind demo``: executors that act on the running simulator, a verifier that reads the same
``/metrics`` samples the engine reads, on simulated time, and the demo's playbooks.

- :class:`SimScale` (kind ``sim.scale``) sets a simulated service's replica count; it reads the count before, so
  a rollback puts it back. :class:`SimRestart` (kind ``sim.restart``) restarts a service's replicas one at a time:
  leaked memory is freed and capacity dips for a few seconds; a restart cannot be undone.
- :class:`SimVerifier` evaluates a playbook's verification query against the demo's
  :class:`~opsmind.engine.sources.ScrapeSource` after every simulation step (:meth:`SimVerifier.on_step`), until
  it holds or ``within_s`` *simulated* seconds have passed: the remediation worker waits for the simulation, never
  for the wall clock. Queries are what a scrape can answer (a selector or ``rate(selector[1m])``), optionally
  followed by one arithmetic operation with a number (``... / 0.26``, so a playbook can compare with the value
  that triggered it: ``/ {{ event.value }}``).
- :data:`DEMO_PLAYBOOKS` is the folder of the demo's playbooks (shipped in the package): scale the entry service
  under a traffic surge, restart a service whose memory leaks, and a fix that does not help (scale the entry
  service when its latency comes from a dependency: verification fails and the replica count is put back).

The simulator (:mod:`opsmind.sim`) knows nothing of remediation: these classes call its hooks
(:meth:`~opsmind.sim.System.set_replicas`, :meth:`~opsmind.sim.System.restart`).
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from opsmind.core import ConfigError, OpsmindError
from opsmind.engine.sources import ScrapeSource
from opsmind.remediate.executors import plan_key
from opsmind.remediate.executors.base import Executor, Outcome, Plan
from opsmind.remediate.playbook import EXECUTOR_KINDS, Playbook, Verification, load_playbooks
from opsmind.remediate.verify import Check, VerifyResult, evaluate, resolve
from opsmind.sim import System

__all__ = ["DEMO_KINDS", "DEMO_PLAYBOOKS", "SimRestart", "SimScale", "SimVerifier", "demo_executors",
           "load_demo_playbooks", "query_values"]

DEMO_PLAYBOOKS = Path(__file__).with_name("demo_playbooks")
DEMO_KINDS: tuple[str, ...] = ("sim.scale", "sim.restart")
_ARITH = re.compile(r"^(?P<q>.*[})\]])\s*(?P<op>[-+*/])\s*(?P<num>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$")


def load_demo_playbooks(path: Path | str = DEMO_PLAYBOOKS) -> list[Playbook]:
    """The demo's playbooks (validated with the ``sim.*`` kinds allowed besides the real executors')."""
    return load_playbooks([path], kinds=[*EXECUTOR_KINDS, *DEMO_KINDS])


class _SimExecutor:
    """What both simulator executors share: the system, the simulated clock, validation of the target."""

    kind = ""

    def __init__(self, system: System, clock: Callable[[], float]) -> None:
        self.system = system
        self.clock = clock
        self._done: dict[str, Outcome] = {}  # plan key -> outcome: executing the same plan twice acts once
        self._lock = threading.Lock()

    def _service(self, target: str) -> str:
        try:
            self.system.topology.index(target)
        except ConfigError:
            raise ConfigError(f"{self.kind} on {target}: no simulated service {target!r}; services: "
                              f"{', '.join(self.system.topology.names)}") from None
        return target

    def _checked(self, target: str, action: Mapping[str, Any], allowed: set[str]) -> str:
        """The simulated service ``target``, once ``action`` has no parameter outside ``allowed``."""
        service = self._service(target)
        extra = set(action) - allowed - {"run_id", "at"}
        if extra:
            raise ConfigError(f"{self.kind} on {target}: action.{sorted(extra)[0]}: Extra inputs are not permitted")
        return service

    def _once(self, plan: Plan, act: Callable[[], Outcome]) -> Outcome:
        """``act()``'s outcome, acted on once per plan: executing the same plan again returns the first outcome."""
        key = plan_key(plan)
        with self._lock:
            if key not in self._done:
                self._done[key] = act()
            return self._done[key]

    def _memory(self, target: str) -> float | None:
        snap = self.system.snapshot
        return None if snap is None else float(snap.memory_bytes[snap.names.index(target)])


class SimScale(_SimExecutor):
    """``sim.scale``: set ``replicas`` of a simulated service (reversible: a rollback restores the count read
    before)."""

    kind = "sim.scale"

    def plan(self, target: str, action: Mapping[str, Any]) -> Plan:
        service = self._checked(target, action, {"replicas"})
        n = action.get("replicas")
        if isinstance(n, bool) or not isinstance(n, int | float) or int(n) != n or n < 1:
            raise ConfigError(f"sim.scale on {target}: action.replicas: must be a positive integer, got {n!r}")
        return Plan(kind=self.kind, target=service, action={**dict(action), "replicas": int(n)},
                    changes=(f"set the replicas of simulated service {service} to {int(n)}",))

    def execute(self, plan: Plan, dry_run: bool = True) -> Outcome:
        before = {"replicas": self.system.replicas(plan.target)}
        if dry_run:
            return Outcome(plan, ok=True, dry_run=True, changed=False, before=before, message="dry run")
        want = int(plan.action["replicas"])

        def act() -> Outcome:
            if before["replicas"] == want:
                return Outcome(plan, ok=True, dry_run=False, changed=False, before=before, after=before,
                               message=f"{plan.target} already runs {want} replicas")
            self.system.set_replicas(plan.target, want)
            return Outcome(plan, ok=True, dry_run=False, changed=True, before=before, after={"replicas": want},
                           message=f"{plan.target}: replicas {before['replicas']} -> {want}")

        return self._once(plan, act)

    def rollback(self, outcome: Outcome, dry_run: bool = True) -> Outcome:
        plan = outcome.plan
        if outcome.dry_run or not outcome.changed or outcome.before is None:
            return Outcome(plan, ok=True, dry_run=dry_run, changed=False, message="nothing to undo")
        old = int(outcome.before["replicas"])
        now = {"replicas": self.system.replicas(plan.target)}
        if dry_run:
            return Outcome(plan, ok=True, dry_run=True, changed=False, before=now,
                           message=f"would set {plan.target} back to {old} replicas")
        self.system.set_replicas(plan.target, old)
        return Outcome(plan, ok=True, dry_run=False, changed=now["replicas"] != old, before=now,
                       after={"replicas": old}, message=f"{plan.target}: replicas {now['replicas']} -> {old}")


class SimRestart(_SimExecutor):
    """``sim.restart``: restart a simulated service (frees leaked memory; one replica is down for
    ``restart_s`` seconds). Not reversible."""

    kind = "sim.restart"

    def plan(self, target: str, action: Mapping[str, Any]) -> Plan:
        service = self._checked(target, action, {"restart_s"})
        restart_s = action.get("restart_s", 30.0)
        if isinstance(restart_s, bool) or not isinstance(restart_s, int | float) or not 0 <= restart_s <= 3600:
            raise ConfigError(f"sim.restart on {target}: action.restart_s: must be 0-3600 seconds, got {restart_s!r}")
        return Plan(kind=self.kind, target=service, action={**dict(action), "restart_s": float(restart_s)},
                    changes=(f"restart the replicas of simulated service {service} one at a time "
                             f"({float(restart_s):g} s with one replica down)",), reversible=False)

    def execute(self, plan: Plan, dry_run: bool = True) -> Outcome:
        before = {"restarted_at": self.system.restarted_at(plan.target), "memory_bytes": self._memory(plan.target)}
        if dry_run:
            return Outcome(plan, ok=True, dry_run=True, changed=False, before=before, message="dry run")
        def act() -> Outcome:
            at = float(self.clock())
            self.system.restart(plan.target, at, float(plan.action.get("restart_s", 30.0)))
            return Outcome(plan, ok=True, dry_run=False, changed=True, before=before, after={"restarted_at": at},
                           message=f"{plan.target} restarted")

        return self._once(plan, act)

    def rollback(self, outcome: Outcome, dry_run: bool = True) -> Outcome:
        if outcome.dry_run or not outcome.changed:
            return Outcome(outcome.plan, ok=True, dry_run=dry_run, changed=False, message="nothing to undo")
        return Outcome(outcome.plan, ok=False, dry_run=dry_run, changed=False, message="a restart cannot be undone")


def demo_executors(system: System, clock: Callable[[], float]) -> dict[str, Executor]:
    """``{"sim.scale": ..., "sim.restart": ...}`` acting on ``system`` at the simulated time ``clock()``."""
    return {"sim.scale": SimScale(system, clock), "sim.restart": SimRestart(system, clock)}


def query_values(source: ScrapeSource, query: str, t: float, lookback_s: float = 60.0) -> list[float]:
    """The latest value (within ``lookback_s`` before ``t``) of each series ``query`` returns from ``source``;
    ``query`` may end with one operation with a number (``selector / 2``)."""
    op, num = None, 0.0
    m = _ARITH.match(query.strip())
    if m is not None:
        query, op, num = m["q"], m["op"], float(m["num"])
    frame = source.fetch(query, t - lookback_s, t)
    out: list[float] = []
    for j in range(len(frame.columns)):
        col = frame.values[:, j]
        ok = np.flatnonzero(np.isfinite(col))
        if ok.shape[0] == 0:
            continue
        v = float(col[ok[-1]])
        if op == "/":
            v = v / num if num != 0 else math.nan
        elif op == "*":
            v *= num
        elif op == "+":
            v += num
        elif op == "-":
            v -= num
        out.append(v)
    return out


@dataclass
class _Pending:
    check: Verification
    start: float
    done: threading.Event = field(default_factory=threading.Event)
    checks: int = 0
    last: Check = field(default_factory=lambda: Check(False, None, "not checked yet"))
    result: VerifyResult | None = None


class SimVerifier:
    """A :class:`~opsmind.remediate.verify.Verifier` on simulated time (see the module docstring).

    :meth:`verify` (called by the remediation worker) waits until :meth:`on_step` (called by the simulation after
    each step) has decided it. ``wall_timeout_s`` only guards against a simulation that stopped stepping.
    """

    def __init__(self, source: ScrapeSource, *, services: Any = (), wall_timeout_s: float = 120.0) -> None:
        self.source = source
        self.services = services
        self.wall_timeout_s = wall_timeout_s
        self._lock = threading.Lock()
        self._pending: list[_Pending] = []
        self._closed = False

    def verify(self, check: Verification, context: Mapping[str, Any], start: float) -> VerifyResult:
        concrete = resolve(check, context, self.services)
        item = _Pending(concrete, float(start))
        with self._lock:
            if self._closed:
                return VerifyResult(False, None, "the simulation stopped", 0, start, start)
            self._pending.append(item)
        deadline = time.monotonic() + self.wall_timeout_s
        while not item.done.wait(timeout=0.5):
            if time.monotonic() > deadline:
                with self._lock:
                    if item in self._pending:
                        self._pending.remove(item)
                return VerifyResult(False, item.last.value, "the simulation stopped stepping", item.checks,
                                    start, start)
        assert item.result is not None
        return item.result

    def waiting(self) -> int:
        """How many verifications wait for the simulation."""
        with self._lock:
            return len(self._pending)

    def on_step(self, t: float) -> int:
        """Check every waiting verification at simulated time ``t``; returns how many were decided."""
        with self._lock:
            items = list(self._pending)
        decided = 0
        for item in items:
            c = item.check
            assert c.query is not None
            if t < item.start:
                continue
            item.checks += 1
            try:
                item.last = evaluate(c, query_values(self.source, c.query, t))
            except OpsmindError as exc:
                item.last = Check(False, None, f"query failed: {exc}")
            if item.last.ok:
                item.result = VerifyResult(True, item.last.value, item.last.detail, item.checks, item.start, t)
            elif t - item.start >= c.within_s:
                item.result = VerifyResult(False, item.last.value, f"not recovered within {c.within_s:g} s: "
                                           f"{item.last.detail}", item.checks, item.start, t)
            else:
                continue
            with self._lock:
                self._pending.remove(item)
            item.done.set()
            decided += 1
        return decided

    def close(self) -> None:
        """Fail every waiting verification (the simulation stops)."""
        with self._lock:
            self._closed = True
            items, self._pending = self._pending, []
        for item in items:
            item.result = VerifyResult(False, item.last.value, "the simulation stopped", item.checks, item.start,
                                       item.start)
            item.done.set()
