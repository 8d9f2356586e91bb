"""Errors the store raises on purpose. Each message says which record, which tenant and what went wrong.

They extend :class:`opsmind.core.errors.OpsmindError`, so edges (CLI, API) treat them like every other
opsmind error: ``NotFoundError`` is a 404, ``ConflictError`` a 409, ``AuthError`` a 401/403, ``StoreError`` a
503 (the database is down or refused the operation). Bad input values raise :class:`~opsmind.core.errors.DataError`.
"""

from __future__ import annotations

from opsmind.core.errors import OpsmindError

__all__ = ["AuthError", "ConflictError", "NotFoundError", "StoreError"]


class StoreError(OpsmindError):
    """The database failed or refused an operation (unreachable, locked for too long, schema out of date)."""


class NotFoundError(StoreError, LookupError):
    """A record does not exist for this tenant (another tenant's record is reported the same way)."""

    def __init__(self, kind: str, key: object, tenant: str | None = None) -> None:
        self.kind = kind
        self.key = key
        self.tenant = tenant
        where = f" in tenant {tenant!r}" if tenant is not None else ""
        super().__init__(f"{kind} {key!r} not found{where}")


class ConflictError(StoreError):
    """A write clashes with an existing record (a unique key) or a concurrent writer."""


class AuthError(StoreError):
    """An API token is unknown, revoked or expired, or lacks the scope an operation needs."""
