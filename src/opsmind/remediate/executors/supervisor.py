"""Processes under supervisord, through its XML-RPC interface (``inet_http_server``): restart, start, stop.

=====================  =========================  ===================================================
kind                   target                     what it does
=====================  =========================  ===================================================
``supervisor.restart`` program (``name`` or        ``supervisor.stopProcess`` (when running) then
                       ``group:name``)            ``supervisor.startProcess``, both waiting
``supervisor.start``   program                    ``startProcess`` unless already running
``supervisor.stop``    program                    ``stopProcess`` unless already stopped
=====================  =========================  ===================================================

``before`` and ``after`` hold ``supervisor.getProcessInfo``'s ``statename`` and ``pid`` (a restart changes the
pid). ``start`` and ``stop`` are idempotent by state and roll back to the state before. A restart cannot be
undone (the old process is gone): its rollback brings the program back to the state it was in before (starts it
if it was running and is not). Idempotence of a restart: an executor remembers the plans it restarted, so the same
plan (same key: target and action with its ``run_id``) executed again in the same run does not restart twice;
the runner passes a new ``run_id`` (or uses a new executor) for a new run.
"""

from __future__ import annotations

import base64
import http.client
import xmlrpc.client
from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from opsmind.core.errors import SourceError
from opsmind.remediate.executors._common import ExecutionError, ExecutorBase, Params, RunMemo, plan_key
from opsmind.remediate.executors.base import Outcome, Plan

__all__ = ["SupervisorRestart", "SupervisorSettings", "SupervisorStart", "SupervisorStop"]

RUNNING_STATES = ("RUNNING", "STARTING", "BACKOFF")


class SupervisorSettings(BaseModel):
    """supervisord's XML-RPC endpoint (``inet_http_server``) and its credentials."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    url: str = Field("http://127.0.0.1:9001/RPC2", description="XML-RPC URL of supervisord's inet_http_server.")
    username: str | None = Field(None, description="inet_http_server username.")
    password: SecretStr | None = Field(None, description="inet_http_server password.")
    timeout_s: float = Field(60.0, gt=0, description="Timeout of one call (a waiting stop or start included).")


class _Transport(xmlrpc.client.Transport):
    """HTTP transport with a timeout and basic authentication kept out of the URL."""

    def __init__(self, timeout_s: float, authorization: str | None, secure: bool) -> None:
        super().__init__()
        self._timeout_s = timeout_s
        self._authorization = authorization
        self._secure = secure

    def make_connection(self, host: Any) -> http.client.HTTPConnection:
        cached = self._connection[1] if self._connection and host == self._connection[0] else None
        if cached is not None:
            return cached
        chost, self._extra_headers, _x509 = self.get_host_info(host)
        cls = http.client.HTTPSConnection if self._secure else http.client.HTTPConnection
        connection = cls(chost, timeout=self._timeout_s)
        self._connection = host, connection
        return connection

    def send_headers(self, connection: http.client.HTTPConnection, headers: list[tuple[str, str]]) -> None:
        if self._authorization:
            headers = [*headers, ("Authorization", self._authorization)]
        super().send_headers(connection, headers)


class _Supervisor(ExecutorBase[Any]):
    settings_model = SupervisorSettings
    params_model = Params
    verb: ClassVar[str]

    def __init__(self, settings: SupervisorSettings | None = None) -> None:
        self.settings = settings or SupervisorSettings()
        self._memo = RunMemo()

    def _changes(self, target: str, params: Any) -> tuple[str, ...]:
        return (f"{self.verb} supervisord program {target} at {self.settings.url}",)

    def proxy(self) -> Any:
        auth = None
        if self.settings.username is not None:
            password = self.settings.password.get_secret_value() if self.settings.password else ""
            token = base64.b64encode(f"{self.settings.username}:{password}".encode()).decode()
            auth = f"Basic {token}"
        transport = _Transport(self.settings.timeout_s, auth, self.settings.url.startswith("https:"))
        return xmlrpc.client.ServerProxy(self.settings.url, transport=transport, allow_none=True)

    def call(self, what: str, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except xmlrpc.client.Fault as exc:
            raise SourceError(f"supervisord: {what}: {exc.faultString}") from None
        except xmlrpc.client.ProtocolError as exc:
            raise SourceError(f"supervisord: {what}: HTTP {exc.errcode} {exc.errmsg}") from None
        except (OSError, http.client.HTTPException) as exc:
            raise SourceError(f"supervisord: {what}: cannot reach {self.settings.url}: "
                              f"{type(exc).__name__}: {exc}") from None

    def info(self, proxy: Any, name: str) -> dict[str, Any]:
        raw = self.call(f"getProcessInfo({name})", proxy.supervisor.getProcessInfo, name)
        return {"name": raw.get("name"), "group": raw.get("group"), "statename": raw.get("statename"),
                "pid": int(raw.get("pid") or 0)}

    def start(self, proxy: Any, name: str, before: Mapping[str, Any], changed: bool) -> None:
        try:
            self.call(f"startProcess({name})", proxy.supervisor.startProcess, name, True)
        except SourceError as exc:
            raise ExecutionError(str(exc), before=before, after=self._safe_info(proxy, name), changed=changed
                                 ) from None

    def stop(self, proxy: Any, name: str, before: Mapping[str, Any]) -> None:
        try:
            self.call(f"stopProcess({name})", proxy.supervisor.stopProcess, name, True)
        except SourceError as exc:
            raise ExecutionError(str(exc), before=before, after=self._safe_info(proxy, name)) from None

    def _safe_info(self, proxy: Any, name: str) -> dict[str, Any] | None:
        try:
            return self.info(proxy, name)
        except SourceError:
            return None

    def outcome(self, plan: Plan, *, dry_run: bool, changed: bool, before: Mapping[str, Any],
                after: Mapping[str, Any] | None, message: str) -> Outcome:
        return Outcome(plan, ok=True, dry_run=dry_run, changed=changed, before=before,
                       after=None if dry_run else after, message=message, details={"plan_key": plan_key(plan)})

    def _to_state(self, plan: Plan, name: str, running: bool, dry_run: bool) -> Outcome:
        """Start or stop ``name`` unless it already is in that state (start/stop and their rollbacks)."""
        proxy = self.proxy()
        before = self.info(proxy, name)
        if (before["statename"] in RUNNING_STATES) == running:
            return self.outcome(plan, dry_run=dry_run, changed=False, before=before, after=before,
                                message=f"{name} is already {before['statename']}")
        verb = "start" if running else "stop"
        if dry_run:
            return self.outcome(plan, dry_run=True, changed=True, before=before, after=None,
                                message=f"would {verb} {name} ({before['statename']}, pid {before['pid']})")
        if running:
            self.start(proxy, name, before, changed=False)
        else:
            self.stop(proxy, name, before)
        after = self.info(proxy, name)
        return self.outcome(plan, dry_run=False, changed=True, before=before, after=after,
                            message=f"{verb} {name}: {before['statename']} -> {after['statename']}")


class SupervisorRestart(_Supervisor):
    """Stop (when running) and start a program; the pid changes."""

    kind = "supervisor.restart"
    verb = "restart"

    def _reversible(self, params: Any) -> bool:
        return False

    def _execute(self, plan: Plan, params: Any, dry_run: bool) -> Outcome:
        name, key = plan.target, plan_key(plan)
        proxy = self.proxy()
        before = self.info(proxy, name)
        if self._memo.get(key) is not None:
            return self.outcome(plan, dry_run=dry_run, changed=False, before=before, after=before,
                                message=f"{name} was already restarted by this plan in this run (plan key {key})")
        if dry_run:
            return self.outcome(plan, dry_run=True, changed=True, before=before, after=None,
                                message=f"would restart {name} ({before['statename']}, pid {before['pid']})")
        stopped = before["statename"] in RUNNING_STATES
        if stopped:
            self.stop(proxy, name, before)
        self.start(proxy, name, before, changed=stopped)
        after = self.info(proxy, name)
        outcome = self.outcome(plan, dry_run=False, changed=True, before=before, after=after,
                               message=f"restarted {name}: pid {before['pid']} -> {after['pid']}")
        self._memo.put(key, outcome)
        return outcome

    def _rollback(self, outcome: Outcome, params: Any, dry_run: bool) -> Outcome:
        was_running = (outcome.before or {}).get("statename") in RUNNING_STATES
        plan = self.rollback_plan(outcome.plan, (f"bring {outcome.plan.target} back to "
                                                 f"{'running' if was_running else 'stopped'} (a restart cannot be "
                                                 "undone)",))
        return self._to_state(plan, outcome.plan.target, was_running, dry_run)


class SupervisorStart(_Supervisor):
    """Start a program unless it is running; roll back by stopping it."""

    kind = "supervisor.start"
    verb = "start"

    def _execute(self, plan: Plan, params: Any, dry_run: bool) -> Outcome:
        return self._to_state(plan, plan.target, True, dry_run)

    def _rollback(self, outcome: Outcome, params: Any, dry_run: bool) -> Outcome:
        plan = self.rollback_plan(outcome.plan, (f"stop supervisord program {outcome.plan.target} again",))
        return self._to_state(plan, outcome.plan.target, False, dry_run)


class SupervisorStop(_Supervisor):
    """Stop a program unless it is stopped; roll back by starting it."""

    kind = "supervisor.stop"
    verb = "stop"

    def _execute(self, plan: Plan, params: Any, dry_run: bool) -> Outcome:
        return self._to_state(plan, plan.target, False, dry_run)

    def _rollback(self, outcome: Outcome, params: Any, dry_run: bool) -> Outcome:
        plan = self.rollback_plan(outcome.plan, (f"start supervisord program {outcome.plan.target} again",))
        return self._to_state(plan, outcome.plan.target, True, dry_run)
