"""Alertmanager silences through its API v2: create one (``alertmanager.silence``), expire some
(``alertmanager.expire``).

``alertmanager.silence`` action: ``matchers`` (a list of ``{name, value, isRegex, isEqual}`` or a mapping
``{label: value}`` for equality matchers), ``starts_at`` (Unix seconds; default ``at``, the runner's clock), ``ends_at``
or ``duration_s``, ``comment`` (required by Alertmanager), ``created_by`` (default ``opsmind``). It is
idempotent: an active or pending silence with the same matchers, author, comment and end (to the second) is reused
(``changed=False``) instead of a second one being created. Rolling it back expires the silence it created.

``alertmanager.expire`` action: ``silence_id``, or ``matchers`` (expires every active or pending silence with
exactly that matcher set). Expired silences are left alone (``changed=False``). Rolling it back creates each
expired silence again (same matchers, author, comment and end; Alertmanager gives it a new id).

The target is a free label for guardrails and the audit log (for example the service the silence covers).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from opsmind.core.errors import SourceError
from opsmind.remediate.executors._common import ExecutionError, ExecutorBase, Params, plan_key
from opsmind.remediate.executors.base import Outcome, Plan
from opsmind.sources.alertmanager import Alertmanager, AlertmanagerSettings, rfc3339
from opsmind.sources.timeparse import parse_time

__all__ = ["Matcher", "SilenceCreate", "SilenceExpire", "SilenceSettings", "Silences"]

LIVE = ("active", "pending")


class SilenceSettings(AlertmanagerSettings):
    """Where Alertmanager is (URL, credentials, timeout, retries)."""


class Matcher(BaseModel):
    """One silence matcher, as Alertmanager's API v2 spells it."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)
    name: str = Field(..., min_length=1)
    value: str
    is_regex: bool = Field(False, alias="isRegex")
    is_equal: bool = Field(True, alias="isEqual")

    def text(self) -> str:
        op = ("=~" if self.is_regex else "=") if self.is_equal else ("!~" if self.is_regex else "!=")
        return f'{self.name}{op}"{self.value}"'


def _matchers(value: Any) -> Any:
    if isinstance(value, Mapping):
        return [{"name": k, "value": v} for k, v in value.items()]
    return value


def _sorted(matchers: Sequence[Matcher]) -> list[Matcher]:
    return sorted(matchers, key=lambda m: (m.name, m.value, m.is_regex, m.is_equal))


def _key(matchers: Sequence[Any]) -> list[tuple[str, str, bool, bool]]:
    return sorted((str(m["name"]), str(m["value"]), bool(m.get("isRegex", False)), bool(m.get("isEqual", True)))
                  for m in matchers)


class SilenceParams(Params):
    matchers: list[Matcher] = Field(..., min_length=1, description="Matchers, or a mapping label -> value.")
    starts_at: float = Field(..., gt=0, description="Start (Unix seconds); default: `at`.")
    ends_at: float | None = Field(None, gt=0, description="End (Unix seconds); or give duration_s.")
    duration_s: float | None = Field(None, gt=0, description="Length in seconds; or give ends_at.")
    comment: str = Field(..., min_length=1, max_length=2000)
    created_by: str = Field("opsmind", min_length=1, max_length=200)

    @field_validator("matchers", mode="before")
    @classmethod
    def _lists(cls, value: Any) -> Any:
        return _matchers(value)

    @field_validator("matchers", mode="after")
    @classmethod
    def _order(cls, value: list[Matcher]) -> list[Matcher]:
        return _sorted(value)

    @model_validator(mode="before")
    @classmethod
    def _duration(cls, data: Any) -> Any:
        """``starts_at`` defaults to ``at``; ``duration_s`` becomes ``ends_at``, so a plan states the end exactly."""
        if isinstance(data, Mapping) and data.get("starts_at") is None and data.get("at") is not None:
            data = {**data, "starts_at": data["at"]}
        if isinstance(data, Mapping) and data.get("ends_at") is None and data.get("duration_s") is not None:
            try:
                return {**data, "ends_at": float(data["starts_at"]) + float(data["duration_s"]), "duration_s": None}
            except (KeyError, TypeError, ValueError):
                return data
        return data

    @model_validator(mode="after")
    def _end(self) -> SilenceParams:
        if self.ends_at is None or self.duration_s is not None:
            raise ValueError("give exactly one of ends_at and duration_s")
        if self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        return self


class ExpireParams(Params):
    silence_id: str | None = Field(None, min_length=1, description="The silence to expire.")
    matchers: list[Matcher] | None = Field(None, min_length=1, description="Expire the silences with exactly "
                                           "these matchers.")

    @field_validator("matchers", mode="before")
    @classmethod
    def _lists(cls, value: Any) -> Any:
        return _matchers(value)

    @field_validator("matchers", mode="after")
    @classmethod
    def _order(cls, value: list[Matcher] | None) -> list[Matcher] | None:
        return None if value is None else _sorted(value)

    @model_validator(mode="after")
    def _one(self) -> ExpireParams:
        if (self.silence_id is None) == (self.matchers is None):
            raise ValueError("give exactly one of silence_id and matchers")
        return self


class Silences(Alertmanager):
    """Alertmanager's silence API (v2)."""

    def list(self) -> list[dict[str, Any]]:
        body = self._json("GET", "/api/v2/silences")
        if not isinstance(body, list):
            raise SourceError("alertmanager: /api/v2/silences did not answer a list")
        return [s for s in body if isinstance(s, dict)]

    def get(self, silence_id: str) -> dict[str, Any]:
        body = self._json("GET", f"/api/v2/silence/{silence_id}")
        if not isinstance(body, dict):
            raise SourceError(f"alertmanager: /api/v2/silence/{silence_id} did not answer an object")
        return body

    def create(self, silence: Mapping[str, Any]) -> str:
        body = self._json("POST", "/api/v2/silences", json=dict(silence))
        if not isinstance(body, dict) or "silenceID" not in body:
            raise SourceError("alertmanager: POST /api/v2/silences did not answer a silenceID")
        return str(body["silenceID"])

    def expire(self, silence_id: str) -> None:
        self._send("DELETE", f"/api/v2/silence/{silence_id}")


def _state(silence: Mapping[str, Any]) -> str:
    return str((silence.get("status") or {}).get("state", ""))


def _brief(silence: Mapping[str, Any]) -> dict[str, Any]:
    """What the audit log and a rollback need of a silence."""
    return {k: silence.get(k) for k in ("id", "matchers", "startsAt", "endsAt", "createdBy", "comment")} | {
        "state": _state(silence)}


class _SilenceBase(ExecutorBase[Any]):
    settings_model = SilenceSettings

    def __init__(self, settings: SilenceSettings | None = None, *, sleep: Callable[[float], None] = time.sleep
                 ) -> None:
        self.settings = settings or SilenceSettings()
        self._sleep = sleep

    def api(self) -> Silences:
        return Silences(self.settings, sleep=self._sleep)

    def outcome(self, plan: Plan, *, dry_run: bool, changed: bool, before: Mapping[str, Any],
                after: Mapping[str, Any] | None, message: str) -> Outcome:
        return Outcome(plan, ok=True, dry_run=dry_run, changed=changed, before=before,
                       after=None if dry_run else after, message=message, details={"plan_key": plan_key(plan)})


class SilenceCreate(_SilenceBase):
    """Create a silence (``POST /api/v2/silences``); roll back by expiring it."""

    kind = "alertmanager.silence"
    params_model = SilenceParams

    def _changes(self, target: str, params: Any) -> tuple[str, ...]:
        matchers = ", ".join(m.text() for m in params.matchers)
        return (f"create silence {{{matchers}}} from {rfc3339(params.starts_at)} to {rfc3339(params.ends_at)} "
                f"by {params.created_by}: {params.comment}",)

    def _execute(self, plan: Plan, params: Any, dry_run: bool) -> Outcome:
        wire = [m.model_dump(by_alias=True) for m in params.matchers]
        with self.api() as api:
            same = [s for s in api.list() if _state(s) in LIVE and _key(s.get("matchers") or []) == _key(wire)
                    and s.get("createdBy") == params.created_by and s.get("comment") == params.comment
                    and abs(parse_time(str(s.get("endsAt"))) - params.ends_at) < 1.0]
            if same:
                found = _brief(same[0])
                return self.outcome(plan, dry_run=dry_run, changed=False, before={"silence": found},
                                    after={"silence": found}, message=f"reusing active silence {found['id']}")
            if dry_run:
                return self.outcome(plan, dry_run=True, changed=True, before={"silence": None}, after=None,
                                    message="would create a silence")
            silence_id = api.create({"matchers": wire, "startsAt": rfc3339(params.starts_at),
                                     "endsAt": rfc3339(params.ends_at), "createdBy": params.created_by,
                                     "comment": params.comment})
            try:
                created = _brief(api.get(silence_id))
            except SourceError as exc:
                raise ExecutionError(f"created silence {silence_id} but cannot read it back: {exc}",
                                     before={"silence": None}, after={"silence": {"id": silence_id}},
                                     changed=True) from None
        return self.outcome(plan, dry_run=False, changed=True, before={"silence": None}, after={"silence": created},
                            message=f"created silence {silence_id}")

    def _rollback(self, outcome: Outcome, params: Any, dry_run: bool) -> Outcome:
        silence_id = str(((outcome.after or {}).get("silence") or {})["id"])
        plan = self.rollback_plan(outcome.plan, (f"expire silence {silence_id}",))
        with self.api() as api:
            current = _brief(api.get(silence_id))
            if current["state"] not in LIVE:
                return self.outcome(plan, dry_run=dry_run, changed=False, before={"silence": current},
                                    after={"silence": current}, message=f"silence {silence_id} is already expired")
            if not dry_run:
                api.expire(silence_id)
                after = _brief(api.get(silence_id))
            else:
                after = current
        verb = "would expire" if dry_run else "expired"
        return self.outcome(plan, dry_run=dry_run, changed=True, before={"silence": current},
                            after={"silence": after}, message=f"{verb} silence {silence_id}")


class SilenceExpire(_SilenceBase):
    """Expire silences (``DELETE /api/v2/silence/{id}``); roll back by creating them again."""

    kind = "alertmanager.expire"
    params_model = ExpireParams

    def _changes(self, target: str, params: Any) -> tuple[str, ...]:
        if params.silence_id is not None:
            return (f"expire silence {params.silence_id}",)
        return ("expire every active silence {" + ", ".join(m.text() for m in params.matchers) + "}",)

    def _execute(self, plan: Plan, params: Any, dry_run: bool) -> Outcome:
        with self.api() as api:
            if params.silence_id is not None:
                found = [api.get(params.silence_id)]
            else:
                wire = _key([m.model_dump(by_alias=True) for m in params.matchers])
                found = [s for s in api.list() if _key(s.get("matchers") or []) == wire]
            live = [_brief(s) for s in found if _state(s) in LIVE]
            before = {"silences": live}
            if not live:
                return self.outcome(plan, dry_run=dry_run, changed=False, before=before, after=before,
                                    message="no active silence to expire")
            if dry_run:
                return self.outcome(plan, dry_run=True, changed=True, before=before, after=None,
                                    message=f"would expire {len(live)} silence(s)")
            done: list[dict[str, Any]] = []
            for s in live:
                try:
                    api.expire(str(s["id"]))
                except SourceError as exc:
                    raise ExecutionError(str(exc), before=before, after={"silences": done}, changed=bool(done)
                                         ) from None
                done.append(_brief(api.get(str(s["id"]))))
        return self.outcome(plan, dry_run=False, changed=True, before=before, after={"silences": done},
                            message=f"expired {len(done)} silence(s): {', '.join(str(s['id']) for s in done)}")

    def _rollback(self, outcome: Outcome, params: Any, dry_run: bool) -> Outcome:
        expired = list((outcome.before or {}).get("silences") or [])
        plan = self.rollback_plan(outcome.plan, tuple(f"create silence {s['id']} again" for s in expired))
        if dry_run:
            return self.outcome(plan, dry_run=True, changed=True, before={"silences": expired}, after=None,
                                message=f"would create {len(expired)} silence(s) again")
        created: list[dict[str, Any]] = []
        with self.api() as api:
            for s in expired:
                new_id = api.create({k: s[k] for k in ("matchers", "startsAt", "endsAt", "createdBy", "comment")})
                created.append(_brief(api.get(new_id)))
        return self.outcome(plan, dry_run=False, changed=True, before={"silences": expired},
                            after={"silences": created},
                            message=f"created {len(created)} silence(s) again: "
                                    f"{', '.join(str(s['id']) for s in created)}")
