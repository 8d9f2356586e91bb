"""HTTP plumbing shared by the API clients (Prometheus, Alertmanager): retries with backoff, one-line errors.

5xx answers, connection errors and timeouts are retried with exponential backoff; a 4xx answer raises
:class:`~opsmind.core.SourceError` at once with the server's own message.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, Self

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from opsmind.core.errors import SourceError

__all__ = ["ApiClient", "BasicAuth", "HttpSettings", "error_text", "one_line", "send"]


class BasicAuth(BaseModel):
    """HTTP basic authentication credentials."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    username: str
    password: SecretStr


class HttpSettings(BaseModel):
    """Where an HTTP API is and how to talk to it: timeout, retries, credentials."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    url: str = Field(..., description="Base URL of the server.")
    timeout_s: float = Field(30.0, gt=0, description="Timeout of one HTTP request, in seconds.")
    retries: int = Field(3, ge=0, le=20, description="Retries after a 5xx answer, a connection error or a timeout.")
    backoff_s: float = Field(0.5, ge=0, description="First retry delay in seconds; it doubles at each retry.")
    bearer_token: SecretStr | None = Field(None, description="Sent as 'Authorization: Bearer <token>'.")
    basic_auth: BasicAuth | None = Field(None, description="HTTP basic authentication.")

    @model_validator(mode="after")
    def _one_auth(self) -> HttpSettings:
        if self.bearer_token is not None and self.basic_auth is not None:
            raise ValueError("set bearer_token or basic_auth, not both")
        return self

    def client(self) -> httpx.Client:
        """An ``httpx.Client`` with the base URL, credentials and timeout."""
        headers = {"Accept": "application/json"}
        if self.bearer_token is not None:
            headers["Authorization"] = f"Bearer {self.bearer_token.get_secret_value()}"
        auth = None
        if self.basic_auth is not None:
            auth = httpx.BasicAuth(self.basic_auth.username, self.basic_auth.password.get_secret_value())
        return httpx.Client(base_url=self.url.rstrip("/"), headers=headers, auth=auth, timeout=self.timeout_s)


def one_line(text: str) -> str:
    return " ".join(text.split())


def error_text(response: httpx.Response) -> str:
    """The server's error message: ``errorType: error`` of a Prometheus-style JSON body, a JSON string body, or the
    start of the body."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return one_line(response.text)[:300] or response.reason_phrase
    if isinstance(body, dict) and "error" in body:
        return one_line(f"{body.get('errorType', 'error')}: {body['error']}")
    if isinstance(body, str):
        return one_line(body)[:300]
    return one_line(response.text)[:300]


def send(
    client: httpx.Client,
    method: str,
    path: str,
    *,
    retries: int,
    backoff_s: float,
    sleep: Callable[[float], None],
    where: str,
    context: str = "",
    **kwargs: Any,
) -> httpx.Response:
    """Send one request with retries; the response of the first answer below 500 that is not a 4xx.

    ``where`` names the server and path in errors; ``context`` (e.g. the query) is appended to them.
    """
    suffix = f" ({context})" if context else ""
    attempts = retries + 1
    failure = ""
    for attempt in range(attempts):
        if attempt:
            sleep(backoff_s * 2 ** (attempt - 1))
        try:
            response = client.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            failure = f"{type(exc).__name__}: {one_line(str(exc)) or 'no detail'}"
            continue
        if response.status_code >= 500:
            failure = f"HTTP {response.status_code}: {error_text(response)}"
            continue
        if response.status_code >= 400:
            raise SourceError(f"{where}: HTTP {response.status_code}: {error_text(response)}{suffix}")
        return response
    raise SourceError(f"{where}: failed after {attempts} attempts, last: {failure}{suffix}")


class ApiClient:
    """Base of the API clients: one ``httpx.Client`` from the settings, a context manager, retried requests.

    ``sleep`` is what waits between retries (``time.sleep``); a test may pass a recorder.
    """

    kind = "api"

    def __init__(self, settings: HttpSettings, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self.settings = settings
        self._sleep = sleep
        self._client = settings.client()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def _where(self, path: str) -> str:
        return f"{self.kind} {self.settings.url}{path}"

    def _send(self, method: str, path: str, *, context: str = "", **kwargs: Any) -> httpx.Response:
        return send(self._client, method, path, retries=self.settings.retries, backoff_s=self.settings.backoff_s,
                    sleep=self._sleep, where=self._where(path), context=context, **kwargs)
