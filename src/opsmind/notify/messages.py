"""What a notification says: one alert as a Slack message, a Microsoft Teams card and an e-mail (pure functions).

Every format carries the same facts: state (firing or resolved), severity, the summary (or the alert name), the
description, service, tenant, when it started (and ended), the remaining labels, and a link to the dashboard (the
``opsmind_url`` annotation) when there is one.

>>> from opsmind.core.alerts import Alert
>>> a = Alert({"alertname": "OpsmindAnomaly", "service": "checkout", "severity": "high", "tenant": "acme"},
...           starts_at=0.0, annotations={"summary": "checkout latency_p95 anomalous"})
>>> title(a, resolved=False)
'[HIGH] checkout latency_p95 anomalous'
>>> slack_payload(a, resolved=True)["text"]
'Resolved: checkout latency_p95 anomalous'
"""

from __future__ import annotations

import html
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

from opsmind.core.alerts import Alert

__all__ = ["email_message", "facts", "slack_payload", "teams_payload", "title"]

_SHOWN = ("alertname", "service", "severity", "tenant")  # labels with a place of their own
_SLACK_HEADER_MAX = 150  # Slack: header block text limit
_SLACK_TEXT_MAX = 3000  # Slack: section text limit


def _time(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def title(alert: Alert, *, resolved: bool) -> str:
    """``[SEVERITY] summary`` for a firing alert, ``Resolved: summary`` for a resolved one."""
    summary = alert.annotations.get("summary") or alert.name
    if resolved:
        return f"Resolved: {summary}"
    severity = alert.labels.get("severity", "unknown").upper()
    return f"[{severity}] {summary}"


def facts(alert: Alert, *, resolved: bool, ended_at: float | None = None) -> list[tuple[str, str]]:
    """The alert's facts as ``(name, value)`` pairs, in display order."""
    out = [("State", "resolved" if resolved else "firing"),
           ("Severity", alert.labels.get("severity", "unknown")),
           ("Service", alert.labels.get("service", "-")),
           ("Tenant", alert.labels.get("tenant", "-")),
           ("Alert", alert.name),
           ("Started", _time(alert.starts_at))]
    if resolved and ended_at is not None:
        out.append(("Ended", _time(ended_at)))
    extra = ", ".join(f"{k}={v}" for k, v in sorted(alert.labels.items()) if k not in _SHOWN)
    if extra:
        out.append(("Labels", extra))
    return out


def slack_payload(alert: Alert, *, resolved: bool, ended_at: float | None = None) -> dict[str, Any]:
    """A Slack incoming-webhook body: ``text`` (the fallback shown in notifications) and Block Kit ``blocks``."""
    head = title(alert, resolved=resolved)
    pairs = facts(alert, resolved=resolved, ended_at=ended_at)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _clip(head, _SLACK_HEADER_MAX), "emoji": True}},
    ]
    description = alert.annotations.get("description")
    if description:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _clip(description, _SLACK_TEXT_MAX)}})
    blocks.append({"type": "section",
                   "fields": [{"type": "mrkdwn", "text": _clip(f"*{k}*\n{v}", 2000)} for k, v in pairs[:10]]})
    url = alert.annotations.get("opsmind_url")
    if url:
        blocks.append({"type": "actions", "elements": [
            {"type": "button", "text": {"type": "plain_text", "text": "Open in opsmind"}, "url": url[:3000]}]})
    return {"text": head, "blocks": blocks}


def teams_payload(alert: Alert, *, resolved: bool, ended_at: float | None = None) -> dict[str, Any]:
    """A Microsoft Teams incoming-webhook body: a message with one Adaptive Card (version 1.4)."""
    head = title(alert, resolved=resolved)
    body: list[dict[str, Any]] = [
        {"type": "TextBlock", "text": head, "weight": "Bolder", "size": "Medium", "wrap": True,
         "color": "Good" if resolved else "Attention"},
    ]
    description = alert.annotations.get("description")
    if description:
        body.append({"type": "TextBlock", "text": description, "wrap": True})
    body.append({"type": "FactSet", "facts": [{"title": k, "value": v}
                                              for k, v in facts(alert, resolved=resolved, ended_at=ended_at)]})
    card: dict[str, Any] = {"$schema": "http://adaptivecards.io/schemas/adaptive-card.json", "type": "AdaptiveCard",
                            "version": "1.4", "body": body}
    url = alert.annotations.get("opsmind_url")
    if url:
        card["actions"] = [{"type": "Action.OpenUrl", "title": "Open in opsmind", "url": url}]
    return {"type": "message", "summary": head,
            "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None,
                             "content": card}]}


def email_message(alert: Alert, *, resolved: bool, sender: str, recipients: list[str],
                  ended_at: float | None = None) -> EmailMessage:
    """An e-mail with a plain-text body and an HTML alternative."""
    head = title(alert, resolved=resolved)
    pairs = facts(alert, resolved=resolved, ended_at=ended_at)
    description = alert.annotations.get("description", "")
    url = alert.annotations.get("opsmind_url", "")
    msg = EmailMessage()
    msg["Subject"] = f"[opsmind] {head}"
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    width = max(len(k) for k, _ in pairs)
    text = [head, ""] + ([description, ""] if description else [])
    text += [f"{k.ljust(width)}  {v}" for k, v in pairs]
    text += ["", f"Open in opsmind: {url}"] if url else []
    msg.set_content("\n".join(text) + "\n")
    rows = "".join(f"<tr><th align=\"left\">{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in pairs)
    color = "#2e7d32" if resolved else "#c62828"
    parts = [f"<h2 style=\"color:{color}\">{html.escape(head)}</h2>"]
    parts += [f"<p>{html.escape(description)}</p>"] if description else []
    parts.append(f"<table cellpadding=\"4\">{rows}</table>")
    parts += [f"<p><a href=\"{html.escape(url, quote=True)}\">Open in opsmind</a></p>"] if url else []
    msg.add_alternative("<!doctype html><html><body>" + "".join(parts) + "</body></html>\n", subtype="html")
    return msg
