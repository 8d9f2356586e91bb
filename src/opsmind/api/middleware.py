"""The ASGI middleware in front of every route: the body size limit, request counting, and clearing the cache of
read answers after every write request (:class:`opsmind.api.views.ReadCache`).

The limit (``settings.api.max_body_bytes``) is enforced while the body is read: a ``Content-Length`` over it is
refused before a byte is read, and a chunked body is refused as soon as it grows past it, so a client cannot make
the server hold more than the limit. The body read is then handed to the app as one message.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from opsmind.api.errors import ErrorBody, ErrorResponse
from opsmind.telemetry import Telemetry

__all__ = ["RequestMiddleware"]


def _too_large(limit: int) -> bytes:
    body = ErrorResponse(error=ErrorBody(code="payload_too_large",
                                         message=f"request body is larger than the limit of {limit} bytes",
                                         field="body"))
    return json.dumps(body.model_dump()).encode()


def _compile(templates: Iterable[str]) -> list[tuple[re.Pattern[str], str]]:
    """Regular expressions of path templates (``/api/v1/series/{series_id}``), fixed paths first."""
    out = []
    for t in sorted(templates, key=lambda t: ("{" in t, t)):
        pattern = re.sub(r"\\\{[^}/]+\\\}", "[^/]+", re.escape(t))
        out.append((re.compile(f"^{pattern}$"), t))
    return out


_READS = frozenset({"GET", "HEAD", "OPTIONS"})


def _clear_read_cache(scope: Scope) -> None:
    """A write request (whatever its answer) clears the app's cache of read answers
    (:class:`~opsmind.api.views.ReadCache`)."""
    state = getattr(getattr(scope.get("app"), "state", None), "opsmind", None)
    reads = getattr(state, "reads", None)
    if reads is not None:
        reads.clear()


class RequestMiddleware:
    """Limits request bodies to ``max_body_bytes`` and counts requests by route and status class."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, telemetry: Telemetry,
                 templates: Callable[[], Iterable[str]] = tuple) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.telemetry = telemetry
        self._templates = templates
        self._routes: list[tuple[re.Pattern[str], str]] | None = None

    def route_of(self, path: str) -> str:
        """The path template the request path matches (``other`` for none: a bounded label set)."""
        if self._routes is None:
            self._routes = _compile(self._templates())
        return next((t for rx, t in self._routes if rx.match(path)), "other")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = [500]

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        try:
            body = await self._read(scope, receive)
            if body is None:
                await self._reject(send)
                status[0] = 413
                return
            replayed = [False]

            async def replay() -> Message:
                if not replayed[0]:
                    replayed[0] = True
                    return {"type": "http.request", "body": body, "more_body": False}
                return await receive()  # after the body: http.disconnect, which streaming routes wait for

            await self.app(scope, replay, counting_send)
        finally:
            if scope.get("method", "GET") not in _READS:
                _clear_read_cache(scope)
            self.telemetry.request(self.route_of(str(scope.get("path", ""))), status[0])

    async def _read(self, scope: Scope, receive: Receive) -> bytes | None:
        """The whole body, or ``None`` when it is (or says it is) larger than the limit."""
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    if int(value) > self.max_body_bytes:
                        return None
                except ValueError:
                    pass
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    async def _reject(self, send: Send) -> None:
        payload = _too_large(self.max_body_bytes)
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(payload)).encode()), (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": payload})
