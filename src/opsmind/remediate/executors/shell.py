"""A command from an explicit allow-list (``shell``): an argv list, never a shell, with a timeout.

Settings: ``allow``, a list of ``{executable, args}`` where ``executable`` is an absolute path and ``args`` one
regular expression per argument (each must match the whole argument, and the count must be equal). Action:
``argv`` (``[executable, arg, ...]``), optional ``undo`` (an argv run by :meth:`~Shell.rollback`, checked against
the same list) and ``timeout_s`` (at most the settings' timeout). A command that is not on the list is refused by
:meth:`~Shell.plan` with a :class:`~opsmind.core.ConfigError` naming the argument at fault, and checked again by
``execute`` (a plan may come from elsewhere).

The command runs in a new session (its own process group) with a fixed environment (``settings.env``) and stdin
closed; on timeout the whole process group is killed with SIGKILL. stdout and stderr are captured through
temporary files and cut to ``max_output_bytes`` each. A non-zero exit or a timeout is ``ok=False`` (``changed``
stays True: the command ran). Idempotence: an executor does not run the same plan (same key) twice after it
succeeded; pass a new ``run_id`` to run it again.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from opsmind.core.errors import ConfigError
from opsmind.remediate.executors._common import ExecutorBase, Params, RunMemo, one_line, plan_key
from opsmind.remediate.executors.base import Outcome, Plan

__all__ = ["AllowedCommand", "Shell", "ShellSettings"]


class AllowedCommand(BaseModel):
    """One allowed command: an absolute executable path and one full-match pattern per argument."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    executable: str = Field(..., description="Absolute path of the program.")
    args: list[str] = Field(default_factory=list, description="One regular expression per argument (full match).")
    description: str = ""

    @field_validator("executable")
    @classmethod
    def _absolute(cls, v: str) -> str:
        if not Path(v).is_absolute() or os.path.normpath(v) != v:
            raise ValueError(f"must be a normalised absolute path, got {v!r}")
        return v

    @field_validator("args")
    @classmethod
    def _patterns(cls, v: list[str]) -> list[str]:
        for i, pattern in enumerate(v):
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"args[{i}] is not a regular expression: {exc}") from None
        return v

    def refusal(self, argv: Sequence[str]) -> str | None:
        """Why ``argv`` does not match this entry, or None when it does."""
        if argv[0] != self.executable:
            return f"executable {argv[0]!r} is not {self.executable!r}"
        if len(argv) - 1 != len(self.args):
            return f"{self.executable} takes {len(self.args)} argument(s), got {len(argv) - 1}"
        for i, (arg, pattern) in enumerate(zip(argv[1:], self.args, strict=True)):
            if not re.fullmatch(pattern, arg):
                return f"argument {i + 1} {arg!r} does not match {pattern!r}"
        return None

    def text(self) -> str:
        return " ".join([self.executable, *(f"<{p}>" for p in self.args)])


class ShellSettings(BaseModel):
    """The allow-list and how commands run."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    allow: list[AllowedCommand] = Field(default_factory=list, description="Commands that may run.")
    timeout_s: float = Field(30.0, gt=0, description="Longest a command may run; then its process group is killed.")
    max_output_bytes: int = Field(65536, ge=0, description="stdout and stderr are each cut to this many bytes.")
    cwd: str | None = Field(None, description="Working directory of commands.")
    env: dict[str, str] = Field(default_factory=lambda: {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"},
                                description="The whole environment commands get.")


class ShellParams(Params):
    argv: list[str] = Field(..., min_length=1, description="[executable, argument, ...]")
    undo: list[str] | None = Field(None, min_length=1, description="argv that undoes this command (rollback).")
    timeout_s: float | None = Field(None, gt=0, description="Timeout of this command (at most the settings').")


def _read(file: IO[bytes], limit: int) -> tuple[str, bool]:
    file.seek(0)
    data = file.read(limit + 1)
    return data[:limit].decode(errors="replace"), len(data) > limit


class Shell(ExecutorBase[Any]):
    """Run an allowed command; roll back with its ``undo`` command."""

    kind = "shell"
    params_model = ShellParams
    settings_model = ShellSettings

    def __init__(self, settings: ShellSettings | None = None) -> None:
        self.settings = settings or ShellSettings()
        self._memo = RunMemo()

    def _refusal(self, argv: Sequence[str]) -> str | None:
        if not self.settings.allow:
            return "the allow-list is empty"
        reasons = [entry.refusal(argv) for entry in self.settings.allow]
        if None in reasons:
            return None
        same = [r for e, r in zip(self.settings.allow, reasons, strict=True) if e.executable == argv[0]]
        return (same or [f"{argv[0]!r} is not on the allow-list"])[0]

    def _check(self, target: str, params: Any) -> None:
        for field, argv in (("argv", params.argv), ("undo", params.undo)):
            if argv is not None and (why := self._refusal(argv)) is not None:
                raise ConfigError(f"shell on {target}: action.{field}: {shlex.join(argv)} is refused: {why} "
                                  f"(allowed: {'; '.join(e.text() for e in self.settings.allow) or 'nothing'})")
        if params.timeout_s is not None and params.timeout_s > self.settings.timeout_s:
            raise ConfigError(f"shell on {target}: action.timeout_s: {params.timeout_s} exceeds the settings' "
                              f"{self.settings.timeout_s} s")

    def _changes(self, target: str, params: Any) -> tuple[str, ...]:
        timeout = params.timeout_s or self.settings.timeout_s
        return (f"run {shlex.join(params.argv)} on {target} (timeout {timeout:g} s)",)

    def _reversible(self, params: Any) -> bool:
        return params.undo is not None

    def run(self, argv: Sequence[str], timeout_s: float) -> dict[str, Any]:
        """Run ``argv`` in its own process group; kill the group on timeout. Returns exit code and output."""
        limit = self.settings.max_output_bytes
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=out, stderr=err, shell=False,
                                    cwd=self.settings.cwd, env=dict(self.settings.env), start_new_session=True)
            timed_out = False
            try:
                code = proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                timed_out = True
                with contextlib.suppress(ProcessLookupError):  # already gone
                    os.killpg(proc.pid, signal.SIGKILL)
                code = proc.wait()
            stdout, cut_out = _read(out, limit)
            stderr, cut_err = _read(err, limit)
        return {"argv": list(argv), "returncode": code, "timed_out": timed_out, "stdout": stdout,
                "stderr": stderr, "truncated": cut_out or cut_err}

    def _result(self, plan: Plan, argv: Sequence[str], timeout_s: float, before: Any) -> Outcome:
        result = self.run(argv, timeout_s)
        key = plan_key(plan)
        if result["timed_out"]:
            message = f"timed out after {timeout_s:g} s; process group killed"
        elif result["returncode"] != 0:
            last = one_line((result["stderr"].strip().splitlines() or [""])[-1])[:200]
            message = f"exit {result['returncode']}" + (f": {last}" if last else "")
        else:
            message = f"{shlex.join(argv)}: exit 0"
        ok = not result["timed_out"] and result["returncode"] == 0
        return Outcome(plan, ok=ok, dry_run=False, changed=True, before=before, after=result,
                       message=message if ok else f"shell on {plan.target}: {message}", details={"plan_key": key})

    def _execute(self, plan: Plan, params: Any, dry_run: bool) -> Outcome:
        key = plan_key(plan)
        done = self._memo.get(key)
        if done is not None:
            return Outcome(plan, ok=True, dry_run=dry_run, changed=False, before=done.after, after=done.after,
                           message=f"already ran in this executor (plan key {key})", details={"plan_key": key})
        if not os.access(params.argv[0], os.X_OK):
            raise ConfigError(f"{params.argv[0]} does not exist or is not executable")
        if dry_run:
            return Outcome(plan, ok=True, dry_run=True, changed=True, message=f"would {plan.changes[0]}",
                           details={"plan_key": key})
        outcome = self._result(plan, params.argv, params.timeout_s or self.settings.timeout_s, None)
        if outcome.ok:
            self._memo.put(key, outcome)
        return outcome

    def _rollback(self, outcome: Outcome, params: Any, dry_run: bool) -> Outcome:
        if params.undo is None:
            raise ConfigError("not reversible: the action has no undo command")
        plan = self.rollback_plan(outcome.plan, (f"run {shlex.join(params.undo)} (undo)",))
        if dry_run:
            return Outcome(plan, ok=True, dry_run=True, changed=True, message=f"would {plan.changes[0]}")
        return self._result(plan, params.undo, params.timeout_s or self.settings.timeout_s, outcome.after)
