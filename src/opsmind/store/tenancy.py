"""Tenants, API tokens and the audit log.

API tokens are random secrets (``om_`` + 43 URL-safe characters, 256 bits); the store keeps only their SHA-256
(a fast hash is right for a high-entropy secret: nothing to brute-force) and an 8-character prefix to recognise
them by. Scopes nest: ``admin`` implies ``write``, ``write`` implies ``read``.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from typing import Any

from sqlalchemy import delete, select, update

from opsmind.core.errors import DataError
from opsmind.store._base import Repository, to_record
from opsmind.store.columns import check_int, check_slug, check_text, check_time, to_jsonable
from opsmind.store.errors import AuthError, ConflictError, NotFoundError
from opsmind.store.models import SCOPES, ApiToken, AuditEntry, Sample, Series, Tenant
from opsmind.store.records import AuditRecord, Scope, TenantRecord, TokenRecord

__all__ = ["AuditRepository", "TenantRepository", "TokenRepository", "hash_token"]

TOKEN_PREFIX = "om_"
_TOUCH_EVERY_S = 60.0  # last_used_at is refreshed at most this often, so reads do not all become writes


def hash_token(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


class TenantRepository(Repository):
    """Tenants are the subject here, not the scope: these are administrative operations."""

    def create(self, tenant: str, name: str | None = None) -> TenantRecord:
        """A new tenant (``ConflictError`` when it exists)."""
        t = check_slug(tenant, "tenant")
        label = check_text(name if name is not None else t, "name", max_len=200)
        with self._ctx.write() as s:
            if s.get(Tenant, t) is not None:
                raise ConflictError(f"tenant {t!r} already exists")
            row = Tenant(id=t, name=label, created_at=self._now())
            s.add(row)
            s.flush()
            return to_record(TenantRecord, row)

    def ensure(self, tenant: str, name: str | None = None) -> TenantRecord:
        """The tenant, created when missing (idempotent: what a restarted engine calls)."""
        t = check_slug(tenant, "tenant")
        label = check_text(name if name is not None else t, "name", max_len=200)
        with self._ctx.write() as s:
            stmt = self._ctx.insert(Tenant.__table__).values(id=t, name=label, created_at=self._now())
            s.execute(stmt.on_conflict_do_nothing(index_elements=["id"]))
            row = s.get(Tenant, t)
            assert row is not None
            self._ctx.tenants.add(t)
            return to_record(TenantRecord, row)

    def get(self, tenant: str) -> TenantRecord:
        t = check_slug(tenant, "tenant")
        with self._ctx.read() as s:
            row = s.get(Tenant, t)
            if row is None:
                raise NotFoundError("tenant", t)
            return to_record(TenantRecord, row)

    def list(self) -> list[TenantRecord]:
        with self._ctx.read() as s:
            return [to_record(TenantRecord, r) for r in s.scalars(select(Tenant).order_by(Tenant.id))]

    def delete(self, tenant: str) -> None:
        """Delete the tenant and every record it owns."""
        t = check_slug(tenant, "tenant")
        with self._ctx.write() as s:
            if s.get(Tenant, t) is None:
                raise NotFoundError("tenant", t)
            s.execute(delete(Sample).where(Sample.series_id.in_(select(Series.id).where(Series.tenant_id == t))))
            s.execute(delete(Tenant).where(Tenant.id == t))  # the foreign keys cascade to everything else
        self._ctx.forget()


def _scopes(scopes: Iterable[str] | str) -> str:
    items = [scopes] if isinstance(scopes, str) else list(scopes)
    if not items:
        raise DataError("a token needs at least one scope (read, write, admin)", column="scopes")
    for sc in items:
        if sc not in SCOPES:
            raise DataError(f"unknown scope {sc!r}; scopes are read, write, admin", column="scopes")
    return ",".join(sorted(set(items)))


def _token_record(row: ApiToken) -> TokenRecord:
    return to_record(TokenRecord, row, scopes=frozenset(row.scopes.split(",")))


class TokenRepository(Repository):
    def create(self, tenant: str, name: str, scopes: Iterable[Scope] | Scope = ("read",), *,
               expires_at: float | None = None) -> tuple[TokenRecord, str]:
        """A new token; returns its record and the secret, which is shown this once and never stored."""
        label = check_text(name, "name", max_len=200)
        scope_text = _scopes(scopes)
        expires = None if expires_at is None else check_time(expires_at, "expires_at")
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with self._ctx.write() as s:
            t = self._tenant(s, tenant)
            row = ApiToken(tenant_id=t, name=label, prefix=secret[:8], token_hash=hash_token(secret),
                           scopes=scope_text, created_at=self._now(), expires_at=expires)
            s.add(row)
            s.flush()
            return _token_record(row), secret

    def authenticate(self, secret: str, *, scope: Scope | None = None, now: float | None = None) -> TokenRecord:
        """The token behind ``secret`` (which names its tenant); ``AuthError`` when it is unknown, revoked,
        expired, or lacks ``scope``."""
        if not isinstance(secret, str) or not secret.strip():
            raise AuthError("no API token given")
        at = self._now() if now is None else check_time(now, "now")
        with self._ctx.read() as s:
            row = s.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(secret.strip())))
            if row is None:
                raise AuthError("unknown API token")
            rec = _token_record(row)
        if rec.revoked_at is not None:
            raise AuthError(f"API token {rec.prefix}... ({rec.name}) was revoked")
        if rec.expires_at is not None and rec.expires_at <= at:
            raise AuthError(f"API token {rec.prefix}... ({rec.name}) has expired")
        if scope is not None and not rec.allows(scope):
            raise AuthError(f"API token {rec.prefix}... ({rec.name}) lacks the {scope!r} scope "
                            f"(it has {', '.join(sorted(rec.scopes))})")
        if rec.last_used_at is None or at - rec.last_used_at >= _TOUCH_EVERY_S:
            with self._ctx.write() as s:
                s.execute(update(ApiToken).where(ApiToken.id == rec.id).values(last_used_at=at))
            rec = rec.model_copy(update={"last_used_at": at})
        return rec

    def get(self, tenant: str, token_id: int) -> TokenRecord:
        tid = check_int(token_id, "token_id")
        with self._ctx.read() as s:
            t = self._tenant(s, tenant)
            row = s.scalar(select(ApiToken).where(ApiToken.tenant_id == t, ApiToken.id == tid))
            if row is None:
                raise NotFoundError("API token", tid, t)
            return _token_record(row)

    def list(self, tenant: str) -> list[TokenRecord]:
        with self._ctx.read() as s:
            t = self._tenant(s, tenant)
            rows = s.scalars(select(ApiToken).where(ApiToken.tenant_id == t).order_by(ApiToken.id))
            return [_token_record(r) for r in rows]

    def revoke(self, tenant: str, token_id: int, *, at: float | None = None) -> TokenRecord:
        """Revoke a token (idempotent: revoking twice keeps the first time)."""
        tid = check_int(token_id, "token_id")
        when = self._now() if at is None else check_time(at, "at")
        with self._ctx.write() as s:
            t = self._tenant(s, tenant)
            row = s.scalar(select(ApiToken).where(ApiToken.tenant_id == t, ApiToken.id == tid))
            if row is None:
                raise NotFoundError("API token", tid, t)
            if row.revoked_at is None:
                row.revoked_at = when
            s.flush()
            return _token_record(row)


class AuditRepository(Repository):
    def record(self, tenant: str, actor: str, action: str, *, target: str | None = None, reason: str | None = None,
               result: str = "ok", details: Any = None, at: float | None = None) -> AuditRecord:
        """Append who (``actor``) did what (``action`` on ``target``), why (``reason``), with what ``result``."""
        row_actor = check_text(actor, "actor", max_len=200)
        row_action = check_text(action, "action", max_len=100)
        row_target = None if target is None else check_text(target, "target")
        row_reason = None if reason is None else check_text(reason, "reason", max_len=10_000, allow_empty=True)
        row_result = check_text(result, "result", max_len=32)
        payload = to_jsonable(details if details is not None else {}, "details")
        when = self._now() if at is None else check_time(at, "at")
        with self._ctx.write() as s:
            t = self._tenant(s, tenant)
            row = AuditEntry(tenant_id=t, at=when, actor=row_actor, action=row_action, target=row_target,
                             reason=row_reason, result=row_result, details=payload)
            s.add(row)
            s.flush()
            return to_record(AuditRecord, row)

    def list(self, tenant: str, *, since: float | None = None, until: float | None = None,
             actor: str | None = None, action: str | None = None, limit: int = 100,
             offset: int = 0) -> list[AuditRecord]:
        """Entries newest first."""
        n = self._limit(limit)
        skip = check_int(offset, "offset", minimum=0)
        with self._ctx.read() as s:
            t = self._tenant(s, tenant)
            q = select(AuditEntry).where(AuditEntry.tenant_id == t)
            if since is not None:
                q = q.where(AuditEntry.at >= check_time(since, "since"))
            if until is not None:
                q = q.where(AuditEntry.at <= check_time(until, "until"))
            if actor is not None:
                q = q.where(AuditEntry.actor == check_text(actor, "actor", max_len=200))
            if action is not None:
                q = q.where(AuditEntry.action == check_text(action, "action", max_len=100))
            rows = s.scalars(q.order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).limit(n).offset(skip))
            return [to_record(AuditRecord, r) for r in rows]
