"""One error model for every 4xx and 5xx answer, and the exception handlers that produce it.

Every error is ``{"error": {"code": "<snake_case>", "message": "<one line>", "field": "<path>" | null}}``.
Domain errors map to status codes in one place (:data:`STATUS_CODES` and :func:`install`): a missing record is a
404, a conflicting write a 409, a bad token a 401, a missing scope a 403, malformed JSON a 400, a value of the
wrong type a 422, a body over the limit a 413, a database that is down a 503. Anything else is a bug: a 500 whose
message says so, with the traceback kept in the server's log and never sent to the client.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from opsmind.core.errors import ConfigError, DataError
from opsmind.store.errors import AuthError, ConflictError, NotFoundError, StoreError

__all__ = ["ApiError", "ErrorBody", "ErrorResponse", "error_response", "install", "responses"]

log = logging.getLogger("opsmind.api")

STATUS_CODES: dict[int, str] = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
    406: "not_acceptable", 409: "conflict", 413: "payload_too_large", 415: "unsupported_media_type",
    422: "validation_error", 429: "too_many_requests", 500: "internal_error", 503: "store_unavailable",
}


class ErrorBody(BaseModel):
    code: str = Field(..., description="What went wrong, in snake_case (e.g. `not_found`, `validation_error`).")
    message: str = Field(..., description="One line for a person.")
    field: str | None = Field(None, description="The request field at fault (`query.limit`, `body.series[0]`).")


class ErrorResponse(BaseModel):
    """The body of every error answer."""

    error: ErrorBody


class ApiError(Exception):
    """An error the API raises on purpose, with its status, code, message and field."""

    def __init__(self, status: int, message: str, *, code: str | None = None, field: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code or STATUS_CODES.get(status, "error")
        self.message = message
        self.field = field
        self.headers = headers


def _one_line(text: str, limit: int = 500) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def error_response(status: int, message: str, *, code: str | None = None, field: str | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    body = ErrorResponse(error=ErrorBody(code=code or STATUS_CODES.get(status, "error"), message=_one_line(message),
                                         field=field))
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for error statuses, all with the error model."""
    return {s: {"model": ErrorResponse, "description": STATUS_CODES.get(s, "error").replace("_", " ")}
            for s in statuses}


def _loc(loc: tuple[Any, ...] | list[Any]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _validation(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors: list[dict[str, Any]] = [dict(e) for e in exc.errors()]
    first: dict[str, Any] = errors[0] if errors else {"loc": (), "msg": "invalid request", "type": ""}
    if first.get("type") == "json_invalid":
        why = (first.get("ctx") or {}).get("error", "not JSON")
        return error_response(400, f"request body is not valid JSON: {why} at character {first['loc'][-1]}",
                              code="invalid_json", field="body")
    field = _loc(first.get("loc", ()))
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return error_response(422, f"{field}: {first.get('msg', 'invalid')}{more}", field=field or None)


def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    message = str(exc.detail)
    if exc.status_code == 404 and message == "Not Found":
        message = f"no route {request.method} {request.url.path}"
    elif exc.status_code == 405 and message == "Method Not Allowed":
        message = f"{request.method} is not allowed on {request.url.path}"
    return error_response(exc.status_code, message, headers=getattr(exc, "headers", None))


def _api(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.message, code=exc.code, field=exc.field, headers=exc.headers)


def _not_found(_: Request, exc: Exception) -> JSONResponse:
    return error_response(404, str(exc))


def _conflict(_: Request, exc: Exception) -> JSONResponse:
    return error_response(409, str(exc))


def _auth(_: Request, exc: Exception) -> JSONResponse:
    return error_response(401, str(exc), headers={"WWW-Authenticate": "Bearer"})


def _data(_: Request, exc: Exception) -> JSONResponse:
    column = getattr(exc, "column", None)
    return error_response(400, str(exc), code="invalid_data", field=column)


def _store(request: Request, exc: Exception) -> JSONResponse:
    log.warning("store error on %s %s: %s", request.method, request.url.path, exc)
    return error_response(503, f"the store is unavailable: {exc}")


def _bug(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal error: the server failed on this request (details are in its log)")


def install(app: FastAPI) -> None:
    """Register the handlers on ``app`` (the most specific exception class wins)."""
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(ApiError, _api)
    app.add_exception_handler(NotFoundError, _not_found)
    app.add_exception_handler(ConflictError, _conflict)
    app.add_exception_handler(AuthError, _auth)
    app.add_exception_handler(StoreError, _store)
    app.add_exception_handler(DataError, _data)
    app.add_exception_handler(ConfigError, _data)
    app.add_exception_handler(Exception, _bug)
