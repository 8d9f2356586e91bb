"""The dispatcher: once per engine cycle, the alerts firing now become Alertmanager posts and chat/e-mail messages.

- **Alertmanager** (API v2, ``POST /api/v2/alerts``): every firing alert, whatever its severity (Alertmanager routes
  and silences by the ``severity`` label). A new alert is posted at once; an alert still firing is posted again
  every ``notify.resend_interval_s`` with ``endsAt = now + 4 resend intervals``, so Alertmanager keeps it active
  while opsmind runs and resolves it by itself if opsmind stops; an alert that stopped firing is posted once more
  with ``endsAt = now``, which resolves it.
- **Slack, Microsoft Teams, e-mail**: one message when an alert at or above ``notify.min_severity`` starts firing
  and one when it stops, never more.

What was announced is kept in the audit log (:mod:`opsmind.notify.state`) and read back the first time a tenant is
synced, so a restart repeats no message and still resolves what was open before it. A delivery that fails (after
the channel's own retries with backoff) is counted in ``opsmind_notifications_total{result="error"}``, reported in
the :class:`SyncReport` and tried again at the next sync; once a channel has failed, its remaining messages of the
same sync wait for the next one, so a dead webhook costs one retry sequence per cycle, not one per alert.
:meth:`Dispatcher.sync` never raises.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import httpx

from opsmind.config import Settings
from opsmind.core.alerts import Alert, severity_rank
from opsmind.core.errors import OpsmindError
from opsmind.notify import state as audit_state
from opsmind.notify.channels import Channel, EmailChannel, Retry, slack, teams
from opsmind.sources.alertmanager import Alertmanager
from opsmind.sources.http import one_line
from opsmind.store import Store
from opsmind.telemetry import Telemetry

__all__ = ["ALERTMANAGER", "RESEND_FACTOR", "Dispatcher", "SyncReport"]

ALERTMANAGER = "alertmanager"
RESEND_FACTOR = 4.0  # endsAt of a firing alert: this many resend intervals ahead
STATE_HORIZON_S = 30 * 86400.0  # audit entries older than this are not read back
log = logging.getLogger(__name__)


@dataclass
class SyncReport:
    """What one :meth:`Dispatcher.sync` did. Counts are per channel (``alertmanager``, ``slack``, ``teams``,
    ``email``); ``deferred`` are deliveries not made this time (tried again at the next sync)."""

    tenant: str
    firing: int = 0
    sent: dict[str, int] = field(default_factory=dict)
    resent: dict[str, int] = field(default_factory=dict)
    resolved: dict[str, int] = field(default_factory=dict)
    deferred: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def _add(self, counts: dict[str, int], channel: str, n: int = 1) -> None:
        if n:
            counts[channel] = counts.get(channel, 0) + n


@dataclass
class _TenantState:
    open: dict[str, dict[str, Alert]]  # channel -> fingerprint -> alert announced and not resolved
    last_post: dict[str, float] = field(default_factory=dict)  # fingerprint -> last Alertmanager post


class Dispatcher:
    """Sends opsmind's alerts to Alertmanager, Slack, Teams and e-mail, as configured in ``settings``.

    Parameters
    ----------
    settings
        ``settings.alertmanager`` (none: no Alertmanager) and ``settings.notify``.
    store
        Where deliveries are recorded (audit log) and read back after a restart.
    telemetry
        Counts every delivery in ``opsmind_notifications_total{channel, result}``.
    client
        The ``httpx.Client`` for webhooks (default: one of the dispatcher's own).
    retry
        Retries of one delivery (default: 3 retries from 0.5 s, doubling; 10 s timeout).
    """

    def __init__(self, settings: Settings, store: Store, *, telemetry: Telemetry | None = None,
                 client: httpx.Client | None = None, retry: Retry | None = None) -> None:
        self.settings = settings
        self.store = store
        self.telemetry = telemetry
        self.retry = retry if retry is not None else Retry()
        self._own_client = client is None
        self._client = client if client is not None else httpx.Client(timeout=self.retry.timeout_s)
        n = settings.notify
        channels: list[Channel] = []
        if n.slack_webhook_url is not None:
            channels.append(slack(n.slack_webhook_url.get_secret_value(), self._client, self.retry))
        if n.teams_webhook_url is not None:
            channels.append(teams(n.teams_webhook_url.get_secret_value(), self._client, self.retry))
        if n.email is not None:
            channels.append(EmailChannel(n.email, self.retry))
        self.channels: tuple[Channel, ...] = tuple(channels)
        self.alertmanager = (Alertmanager(settings.alertmanager, sleep=self.retry.sleep)
                             if settings.alertmanager is not None else None)
        self._min_rank = severity_rank(n.min_severity)
        self._lock = threading.Lock()
        self._tenants: dict[str, _TenantState] = {}

    def close(self) -> None:
        if self._own_client:
            self._client.close()
        if self.alertmanager is not None:
            self.alertmanager.close()

    def __enter__(self) -> Dispatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def sync(self, tenant: str, firing: Sequence[Alert], now: float) -> SyncReport:
        """Bring every channel in line with ``firing`` (the tenant's alerts firing at ``now``, Unix seconds)."""
        report = SyncReport(tenant)
        with self._lock:
            try:
                current: dict[str, Alert] = {}
                for i, a in enumerate(firing):
                    if not isinstance(a, Alert):
                        report.errors.append(f"notify: firing[{i}] is a {type(a).__name__}, not an Alert; ignored")
                    elif not a.is_resolved(now):
                        current[a.fingerprint] = a
                report.firing = len(current)
                st = self._state(tenant, now)
                if self.alertmanager is not None:
                    self._sync_alertmanager(self.alertmanager, tenant, st, current, now, report)
                for channel in self.channels:
                    self._sync_channel(channel, tenant, st, current, now, report)
            except Exception as exc:  # never into the engine
                self._fail(report, "notify", f"notify: {type(exc).__name__}: {one_line(str(exc))}", count=False)
                if self.telemetry is not None:
                    self.telemetry.error("notify")
        return report

    def _state(self, tenant: str, now: float) -> _TenantState:
        st = self._tenants.get(tenant)
        if st is None:
            st = _TenantState(audit_state.load_open(self.store, tenant, since=now - STATE_HORIZON_S))
            self._tenants[tenant] = st
        return st

    def _fail(self, report: SyncReport, channel: str, message: str, *, count: bool = True) -> None:
        log.warning("%s", message)
        report.errors.append(message)
        if count and self.telemetry is not None:
            self.telemetry.notified(channel, False)

    def _ok(self, channel: str, n: int = 1) -> None:
        if self.telemetry is not None:
            for _ in range(n):
                self.telemetry.notified(channel, True)

    def _record(self, tenant: str, action: str, channel: str, alert: Alert, now: float, report: SyncReport) -> None:
        try:
            audit_state.record(self.store, tenant, action, channel, alert, now)
        except OpsmindError as exc:  # delivered, but a restart may repeat it
            report.errors.append(f"notify: could not record {action} of {alert.fingerprint} on {channel}: {exc}")
            log.warning("%s", report.errors[-1])

    def _sync_alertmanager(self, am: Alertmanager, tenant: str, st: _TenantState, current: dict[str, Alert],
                           now: float, report: SyncReport) -> None:
        interval = self.settings.notify.resend_interval_s
        opened = st.open.setdefault(ALERTMANAGER, {})
        new = [a for fp, a in current.items() if fp not in opened]
        again = [a for fp, a in current.items()
                 if fp in opened and now - st.last_post.get(fp, float("-inf")) >= interval]
        gone = [a for fp, a in opened.items() if fp not in current]
        batch = [replace(a, ends_at=max(now + RESEND_FACTOR * interval, a.starts_at), status="firing")
                 for a in new + again]
        batch += [replace(a, ends_at=max(now, a.starts_at), status="resolved") for a in gone]
        if not batch:
            return
        try:
            am.post_alerts(batch)
        except Exception as exc:
            report._add(report.deferred, ALERTMANAGER, len(batch))
            self._fail(report, ALERTMANAGER, f"{ALERTMANAGER}: {len(batch)} alerts not posted: {one_line(str(exc))}")
            return
        self._ok(ALERTMANAGER)
        for a in new + again:
            st.last_post[a.fingerprint] = now
        for a in new:
            opened[a.fingerprint] = a
            self._record(tenant, audit_state.SENT, ALERTMANAGER, a, now, report)
        for a in gone:
            del opened[a.fingerprint]
            st.last_post.pop(a.fingerprint, None)
            self._record(tenant, audit_state.RESOLVED, ALERTMANAGER, a, now, report)
        report._add(report.sent, ALERTMANAGER, len(new))
        report._add(report.resent, ALERTMANAGER, len(again))
        report._add(report.resolved, ALERTMANAGER, len(gone))

    def _sync_channel(self, channel: Channel, tenant: str, st: _TenantState, current: dict[str, Alert],
                      now: float, report: SyncReport) -> None:
        opened = st.open.setdefault(channel.name, {})
        todo: list[tuple[Alert, bool]] = [(a, False) for fp, a in current.items()
                                          if fp not in opened and a.severity >= self._min_rank]
        todo += [(a, True) for fp, a in opened.items() if fp not in current]
        for i, (alert, resolved) in enumerate(todo):
            try:
                channel.send(alert, resolved=resolved, ended_at=now if resolved else None)
            except Exception as exc:
                report._add(report.deferred, channel.name, len(todo) - i)
                what = "resolved" if resolved else "firing"
                self._fail(report, channel.name, f"{channel.name}: {what} {alert.name} {alert.fingerprint} not sent "
                           f"({len(todo) - i - 1} more deferred): {one_line(str(exc))}")
                return
            self._ok(channel.name)
            if resolved:
                del opened[alert.fingerprint]
                self._record(tenant, audit_state.RESOLVED, channel.name, alert, now, report)
                report._add(report.resolved, channel.name)
            else:
                opened[alert.fingerprint] = alert
                self._record(tenant, audit_state.SENT, channel.name, alert, now, report)
                report._add(report.sent, channel.name)
