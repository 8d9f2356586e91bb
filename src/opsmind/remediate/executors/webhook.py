"""An HTTP webhook (``http.webhook``): one signed request to a configured base URL, with an optional undo request.

Action: ``method`` (default POST), ``path`` (appended to the settings' ``url``; requests go nowhere else),
``body`` (any JSON value), ``headers`` (extra, non-secret), ``undo`` (optional ``{method, path, body, headers}``
sent by :meth:`~Webhook.rollback`). The body is sent as compact JSON with sorted keys; with a secret configured
each request carries ``X-Opsmind-Signature: sha256=<hex HMAC-SHA256 of the raw body>``. Every request carries
``Idempotency-Key: <plan key>`` (``<plan key>-undo`` for the undo), so a receiver can drop duplicates. Timeouts,
5xx answers and connection errors are retried with backoff (:mod:`opsmind.sources.http`); a 4xx fails at once.

Idempotence: nothing on our side can read whether a webhook "happened", so an executor remembers the plans it
has sent successfully and does not send the same plan (same key: kind, target, action with its ``run_id``) twice.
The secret is never logged, put in an outcome or in an error message.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
from collections.abc import Callable, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from opsmind.core.errors import ConfigError
from opsmind.remediate.executors._common import ExecutorBase, Params, RunMemo, plan_key
from opsmind.remediate.executors.base import Outcome, Plan
from opsmind.sources.http import HttpSettings, send

__all__ = ["Webhook", "WebhookRequest", "WebhookSettings", "signature"]

RESPONSE_CHARS = 2000
_RESERVED = {"authorization", "content-type", "content-length", "host"}


class WebhookSettings(HttpSettings):
    """The webhook receiver: base URL, timeout, retries, credentials and the signing secret."""

    url: str = Field(..., description="Base URL; an action's path is appended to it.")
    secret: SecretStr | None = Field(None, description="HMAC-SHA256 signing secret.")
    secret_env: str | None = Field(None, description="Name of the environment variable holding the secret "
                                   "(read when the executor is built).")
    signature_header: str = Field("X-Opsmind-Signature", description="Header carrying sha256=<hex>.")
    idempotency_header: str = Field("Idempotency-Key", description="Header carrying the plan key.")


def signature(secret: bytes, body: bytes) -> str:
    """``sha256=<hex>``: the HMAC-SHA256 of ``body`` under ``secret``.

    >>> signature(b"key", b'{"a":1}')
    'sha256=88a67f24bbcdaed0e6c997404bb79a743baf44c6bab2f4c27328e3009d22e342'
    """
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


class WebhookRequest(BaseModel):
    """One request: method, path under the base URL, JSON body, extra headers."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    method: Literal["POST", "PUT", "PATCH", "DELETE", "GET"] = "POST"
    path: str = Field("", max_length=2000, description="Appended to the base URL; starts with '/' or is empty.")
    body: Any = None
    headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("path")
    @classmethod
    def _path(cls, v: str) -> str:
        if v and (not v.startswith("/") or v.startswith("//") or any(c.isspace() for c in v)):
            raise ValueError("must be empty or start with a single '/' and hold no spaces (no other host)")
        return v

    @field_validator("headers")
    @classmethod
    def _headers(cls, v: dict[str, str]) -> dict[str, str]:
        bad = sorted(h for h in v if h.lower() in _RESERVED or h.lower().startswith("x-opsmind")
                     or h.lower() == "idempotency-key")
        if bad:
            raise ValueError(f"these headers are set by opsmind and cannot be given: {', '.join(bad)}")
        return v

    def raw(self) -> bytes:
        return b"" if self.body is None else json.dumps(self.body, sort_keys=True, separators=(",", ":")).encode()


class WebhookParams(Params, WebhookRequest):
    undo: WebhookRequest | None = Field(None, description="Request that undoes this one (for rollback).")


class Webhook(ExecutorBase[Any]):
    """Send the request; roll back with the ``undo`` request when the action has one."""

    kind = "http.webhook"
    params_model = WebhookParams
    settings_model = WebhookSettings

    def __init__(self, settings: WebhookSettings, *, sleep: Callable[[float], None] = time.sleep,
                 environ: Mapping[str, str] | None = None) -> None:
        self.settings = settings
        self._sleep = sleep
        self._memo = RunMemo()
        secret = settings.secret.get_secret_value() if settings.secret is not None else None
        if secret is None and settings.secret_env:
            env = os.environ if environ is None else environ
            if settings.secret_env not in env:
                raise ConfigError(f"webhook settings.secret_env: environment variable {settings.secret_env} is not "
                                  "set")
            secret = env[settings.secret_env]
        self._secret = secret.encode() if secret is not None else None

    def _url(self, request: WebhookRequest) -> str:
        return self.settings.url.rstrip("/") + request.path

    def _changes(self, target: str, params: Any) -> tuple[str, ...]:
        raw = params.raw()
        digest = hashlib.sha256(raw).hexdigest()[:12]
        line = f"send {params.method} {self._url(params)} ({len(raw)} bytes of JSON, sha256 {digest}"
        return (line + (", signed)" if self._secret is not None else ", unsigned)"),)

    def _reversible(self, params: Any) -> bool:
        return params.undo is not None

    def _send(self, request: WebhookRequest, key: str) -> dict[str, Any]:
        raw = request.raw()
        headers = {**request.headers, self.settings.idempotency_header: key}
        if raw:
            headers["Content-Type"] = "application/json"
        if self._secret is not None:
            headers[self.settings.signature_header] = signature(self._secret, raw)
        with self.settings.client() as client:
            response = send(client, request.method, request.path or "/", retries=self.settings.retries,
                            backoff_s=self.settings.backoff_s, sleep=self._sleep,
                            where=f"webhook {request.method} {self._url(request)}", content=raw, headers=headers)
        return {"status": response.status_code, "body": response.text[:RESPONSE_CHARS]}

    def _execute(self, plan: Plan, params: Any, dry_run: bool) -> Outcome:
        key = plan_key(plan)
        done = self._memo.get(key)
        if done is not None:
            return Outcome(plan, ok=True, dry_run=dry_run, changed=False, before=done.after, after=done.after,
                           message=f"already sent by this executor (plan key {key})", details={"plan_key": key})
        if dry_run:
            return Outcome(plan, ok=True, dry_run=True, changed=True, message=f"would {plan.changes[0]}",
                           details={"plan_key": key})
        answer = self._send(params, key)
        outcome = Outcome(plan, ok=True, dry_run=False, changed=True, before=None, after=answer,
                          message=f"{params.method} {self._url(params)}: HTTP {answer['status']}",
                          details={"plan_key": key})
        self._memo.put(key, outcome)
        return outcome

    def _rollback(self, outcome: Outcome, params: Any, dry_run: bool) -> Outcome:
        undo = params.undo
        if undo is None:
            raise ConfigError("not reversible: the action has no undo request")
        plan = self.rollback_plan(outcome.plan, (f"send {undo.method} {self._url(undo)} (undo)",))
        if dry_run:
            return Outcome(plan, ok=True, dry_run=True, changed=True, message=f"would send {undo.method} "
                           f"{self._url(undo)} (undo)")
        answer = self._send(undo, plan_key(outcome.plan) + "-undo")
        return Outcome(plan, ok=True, dry_run=False, changed=True, before=outcome.after, after=answer,
                       message=f"undo {undo.method} {self._url(undo)}: HTTP {answer['status']}")
