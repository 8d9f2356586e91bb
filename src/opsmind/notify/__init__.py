"""Notifications out: opsmind's alerts to Alertmanager (API v2), Slack, Microsoft Teams and e-mail.

The engine calls :meth:`Dispatcher.sync` once per cycle with the alerts firing now; the dispatcher works out what
is new, still firing and resolved, and what each channel has already been told (kept in the audit log).
"""

from __future__ import annotations

from opsmind.notify.channels import Channel, EmailChannel, Retry, WebhookChannel
from opsmind.notify.dispatcher import Dispatcher, SyncReport

__all__ = ["Channel", "Dispatcher", "EmailChannel", "Retry", "SyncReport", "WebhookChannel"]
