"""Who is calling: a token (``Authorization: Bearer <secret>``), the admin token, or nobody.

* A token created with ``opsmind token create`` acts on its own tenant with its scopes.
* ``settings.api.admin_token`` has every scope on every tenant; it picks the tenant with the header
  ``X-Opsmind-Tenant`` (default: ``settings.tenant``).
* Without a header, the request gets ``settings.api.anonymous_scopes`` on ``settings.tenant``.

Scopes nest (admin > write > read). A bad or revoked token is a 401, a missing scope a 403, a token naming
another tenant in ``X-Opsmind-Tenant`` a 403. Records of other tenants are never visible: the store answers a 404.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from opsmind.api.errors import ApiError
from opsmind.api.state import AppState, state_dependency
from opsmind.store import Scope, TokenRecord
from opsmind.store.tenancy import hash_token

__all__ = ["TENANT_HEADER", "Principal", "identify", "require"]

TENANT_HEADER = "X-Opsmind-Tenant"
_IMPLIED: dict[str, frozenset[str]] = {
    "read": frozenset({"read"}), "write": frozenset({"read", "write"}),
    "admin": frozenset({"read", "write", "admin"}),
}
_bearer = HTTPBearer(auto_error=False, description="An API token: `Authorization: Bearer om_...` "
                     "(`opsmind token create`).")


def expand(scopes: Iterable[str]) -> frozenset[str]:
    """The scopes with those they imply."""
    out: set[str] = set()
    for s in scopes:
        out |= _IMPLIED.get(s, frozenset())
    return frozenset(out)


@dataclass(frozen=True)
class Principal:
    """The caller: the tenant it acts on, its scopes (implied ones included) and its name for the audit log."""

    tenant: str
    scopes: frozenset[str]
    actor: str

    def allows(self, scope: Scope) -> bool:
        return scope in self.scopes


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, message, headers={"WWW-Authenticate": "Bearer"})


def identify(state: AppState, authorization: str | None, tenant: str | None) -> Principal:
    """The principal behind an ``Authorization`` header value (``None``: anonymous) and a tenant header."""
    settings = state.settings
    if authorization is None or not authorization.strip():
        if tenant is not None and tenant != settings.tenant:
            raise ApiError(403, f"anonymous requests act on tenant {settings.tenant!r} only; send a token",
                           field=f"header.{TENANT_HEADER}")
        return Principal(settings.tenant, expand(settings.api.anonymous_scopes), "anonymous")
    scheme, _, secret = authorization.strip().partition(" ")
    secret = secret.strip()
    if scheme.lower() != "bearer" or not secret:
        raise _unauthorized("the Authorization header must be 'Bearer <token>'")
    admin = settings.api.admin_token
    if admin is not None and secrets.compare_digest(secret.encode(), admin.get_secret_value().encode()):
        return Principal(tenant or settings.tenant, expand(["admin"]), "admin")
    record = _authenticate(state, secret)
    if tenant is not None and tenant != record.tenant:
        raise ApiError(403, f"token {record.prefix}... belongs to tenant {record.tenant!r}, not {tenant!r}",
                       field=f"header.{TENANT_HEADER}")
    return Principal(record.tenant, expand(record.scopes), f"token:{record.name}")


def cached_identity(state: AppState, authorization: str | None, tenant: str | None) -> Principal | None:
    """:func:`identify` when it needs no database (anonymous, admin, or a remembered token), else ``None``."""
    if authorization is not None and authorization.strip():
        scheme, _, secret = authorization.strip().partition(" ")
        secret = secret.strip()
        admin = state.settings.api.admin_token
        is_admin = admin is not None and secrets.compare_digest(secret.encode(), admin.get_secret_value().encode())
        if scheme.lower() == "bearer" and secret and not is_admin:
            hit = state.auth_cache.get(hash_token(secret))
            if hit is None or time.monotonic() - hit[0] >= state.auth_cache_s:
                return None
    return identify(state, authorization, tenant)


def _authenticate(state: AppState, secret: str) -> TokenRecord:
    """The token's record: from the store (``AuthError`` -> 401), or remembered for ``state.auth_cache_s``."""
    now = time.time()  # token expiry is wall-clock time, whatever clock the data runs on (the demo's is simulated)
    key = hash_token(secret)
    hit = state.auth_cache.get(key)
    mono = time.monotonic()
    if hit is not None and mono - hit[0] < state.auth_cache_s:
        record = hit[1]
        if record.expires_at is None or record.expires_at > now:
            return record
    record = state.store.tokens.authenticate(secret, now=now)
    if state.auth_cache_s > 0:
        if len(state.auth_cache) > 10_000:
            state.auth_cache.clear()
        state.auth_cache[key] = (mono, record)
    return record


def require(scope: Scope) -> Callable[..., Awaitable[Principal]]:
    """A dependency giving the caller, who must hold ``scope`` (401 without credentials, 403 with too few)."""

    async def dependency(
        request: Request,
        state: Annotated[AppState, Depends(state_dependency)],
        _credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
        tenant: Annotated[str | None, Header(alias=TENANT_HEADER, max_length=64,
                                             description="Tenant to act on (admin token only).")] = None,
    ) -> Principal:
        header = request.headers.get("authorization")
        principal = cached_identity(state, header, tenant)  # no thread hop when the token is remembered
        if principal is None:
            principal = await run_in_threadpool(identify, state, header, tenant)
        if not principal.allows(scope):
            if principal.actor == "anonymous":
                raise _unauthorized(f"this request needs the {scope!r} scope: send a token "
                                    "(Authorization: Bearer <token>)")
            raise ApiError(403, f"{principal.actor} lacks the {scope!r} scope "
                           f"(it has {', '.join(sorted(principal.scopes)) or 'none'})")
        return principal

    dependency.__name__ = f"require_{scope}"
    return dependency


ReadPrincipal = Annotated[Principal, Depends(require("read"))]
WritePrincipal = Annotated[Principal, Depends(require("write"))]
