"""Delivery channels for chat and e-mail: Slack and Microsoft Teams incoming webhooks, and SMTP.

Each channel sends one alert (firing or resolved) and raises :class:`~opsmind.core.SourceError` with a one-line
message when delivery failed after its retries. Webhook requests go through the shared HTTP plumbing
(:func:`opsmind.sources.http.send`): a 5xx answer, a connection error or a timeout is retried with exponential
backoff, a 4xx is final. SMTP delivery is retried the same way on connection errors and 4xx SMTP replies
(temporary), not on 5xx replies (permanent: a refused sender or recipient, failed authentication).

Webhook URLs are secrets (whoever has one can post): errors name the channel, never the URL.
"""

from __future__ import annotations

import smtplib
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from opsmind.config import EmailSettings
from opsmind.core.alerts import Alert
from opsmind.core.errors import SourceError
from opsmind.notify.messages import email_message, slack_payload, teams_payload
from opsmind.sources.http import one_line, send

__all__ = ["Channel", "EmailChannel", "Retry", "WebhookChannel", "slack", "teams"]


@dataclass(frozen=True)
class Retry:
    """How a channel retries: ``retries`` more attempts, the first after ``backoff_s`` seconds, doubling; each
    attempt times out after ``timeout_s``; ``sleep`` is what waits (``time.sleep``; tests pass their own)."""

    retries: int = 3
    backoff_s: float = 0.5
    timeout_s: float = 10.0
    sleep: Callable[[float], None] = time.sleep


class Channel(Protocol):
    """A place notifications go to, sent once per new alert and once when it resolves."""

    name: str

    def send(self, alert: Alert, *, resolved: bool, ended_at: float | None = None) -> None:
        """Deliver one message; ``SourceError`` when it could not be delivered."""
        ...


Payload = Callable[..., dict[str, Any]]


class WebhookChannel:
    """An incoming webhook that takes a JSON body (Slack, Teams): ``payload(alert, resolved=, ended_at=)``."""

    def __init__(self, name: str, url: str, payload: Payload, client: httpx.Client, retry: Retry) -> None:
        self.name = name
        self._url = url
        self._payload = payload
        self._client = client
        self._retry = retry

    def send(self, alert: Alert, *, resolved: bool, ended_at: float | None = None) -> None:
        body = self._payload(alert, resolved=resolved, ended_at=ended_at)
        send(self._client, "POST", self._url, retries=self._retry.retries, backoff_s=self._retry.backoff_s,
             sleep=self._retry.sleep, where=f"{self.name} webhook", json=body, timeout=self._retry.timeout_s)


def slack(url: str, client: httpx.Client, retry: Retry) -> WebhookChannel:
    """Slack incoming webhook (Block Kit message)."""
    return WebhookChannel("slack", url, slack_payload, client, retry)


def teams(url: str, client: httpx.Client, retry: Retry) -> WebhookChannel:
    """Microsoft Teams incoming webhook or Workflows webhook (a message with an Adaptive Card)."""
    return WebhookChannel("teams", url, teams_payload, client, retry)


class EmailChannel:
    """SMTP delivery: plain text + HTML, STARTTLS when configured, login when a username is set."""

    name = "email"

    def __init__(self, settings: EmailSettings, retry: Retry) -> None:
        self.settings = settings
        self._retry = retry

    def send(self, alert: Alert, *, resolved: bool, ended_at: float | None = None) -> None:
        s = self.settings
        message = email_message(alert, resolved=resolved, sender=s.sender, recipients=list(s.recipients),
                                ended_at=ended_at)
        where = f"email via {s.host}:{s.port}"
        failure = ""
        for attempt in range(self._retry.retries + 1):
            if attempt:
                self._retry.sleep(self._retry.backoff_s * 2 ** (attempt - 1))
            try:
                self._deliver(message)
                return
            except smtplib.SMTPResponseException as exc:
                text = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else str(exc)
                failure = f"SMTP {exc.smtp_code}: {one_line(text)}"
                if exc.smtp_code >= 500:
                    raise SourceError(f"{where}: {failure}") from None
            except smtplib.SMTPRecipientsRefused as exc:
                refused = ", ".join(f"{r} ({c})" for r, (c, _) in exc.recipients.items())
                raise SourceError(f"{where}: recipients refused: {refused}") from None
            except smtplib.SMTPNotSupportedError as exc:
                raise SourceError(f"{where}: {one_line(str(exc))}") from None
            except (OSError, smtplib.SMTPException) as exc:
                failure = f"{type(exc).__name__}: {one_line(str(exc)) or 'no detail'}"
        raise SourceError(f"{where}: failed after {self._retry.retries + 1} attempts, last: {failure}")

    def _deliver(self, message: Any) -> None:
        s = self.settings
        with smtplib.SMTP(s.host, s.port, timeout=self._retry.timeout_s) as smtp:
            smtp.ehlo()
            if s.starttls:
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
            if s.username:
                password = s.password.get_secret_value() if s.password is not None else ""
                smtp.login(s.username, password)
            smtp.send_message(message)
