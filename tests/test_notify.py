"""Notifications: a real Alertmanager (Debian ``prometheus-alertmanager``), Slack and Teams webhooks on a local HTTP
server, e-mail to a real SMTP server (aiosmtpd) with and without STARTTLS; restarts, failures, bad input."""

from __future__ import annotations

import email
import json
import shutil
import ssl
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from opsmind.config import Settings
from opsmind.core.alerts import Alert
from opsmind.notify import Dispatcher, Retry
from opsmind.notify.messages import email_message, slack_payload, teams_payload
from opsmind.sources.alertmanager import parse_api_alerts
from opsmind.store import Store
from opsmind.telemetry import Telemetry
from servers import AlertmanagerProcess, Reply, ScriptedServer, free_port

TENANT = "acme"
T0 = 1_800_000_000.0
NO_WAIT = Retry(retries=2, backoff_s=0.0, timeout_s=5.0, sleep=lambda s: None)


def alert(series: str = "latency_p95", severity: str = "high", *, service: str = "checkout",
          starts_at: float = T0, **annotations: str) -> Alert:
    notes = {"summary": f"{service} {series} is anomalous", "description": f"{series} 0.93 s, expected 0.21 s",
             "opsmind_url": f"http://opsmind.test/ui/#/series/{series}"} | annotations
    return Alert({"alertname": "OpsmindAnomaly", "series": f'{series}{{service="{service}"}}', "series_id": "7",
                  "service": service, "severity": severity, "tenant": TENANT}, starts_at=starts_at,
                 annotations=notes)


def make_settings(**parts: Any) -> Settings:
    return Settings.model_validate({"tenant": TENANT, **parts})


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'opsmind.db'}"


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    with Store.open(db_url) as s:
        s.tenants.ensure(TENANT)
        yield s


def counter(telemetry: Telemetry, channel: str, result: str) -> float:
    value = telemetry.registry.get_sample_value("opsmind_notifications_total",
                                                {"channel": channel, "result": result})
    return value or 0.0


# ---- a real SMTP server ------------------------------------------------------------------------------------------

@dataclass
class Mailbox:
    """What the SMTP server received, and the credentials it accepted."""

    messages: list[Message] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd's hook name)
        self.messages.append(email.message_from_bytes(envelope.content))
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 Message accepted for delivery"

    def authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"opsmind", b"s3cret")
        if ok:
            self.logins.append(data.login.decode())
        return AuthResult(success=ok, handled=False)  # handled=False: the server answers 535 on failure


@contextmanager
def smtp_server(mailbox: Mailbox, **params: Any) -> Iterator[int]:
    """aiosmtpd on a free loopback port; yields the port."""
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port, authenticator=mailbox.authenticate,
                            **params)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 made with the openssl command (skipped without it)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    return cert, key


def ssl_server_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


# ---- Alertmanager ------------------------------------------------------------------------------------------------

def am_alerts(url: str) -> list[dict[str, Any]]:
    body = httpx.get(f"{url}/api/v2/alerts", timeout=5).json()
    assert isinstance(body, list)
    return body


def test_alertmanager_firing_resent_and_resolved(alertmanager: AlertmanagerProcess, store: Store) -> None:
    interval = 300.0
    settings = make_settings(alertmanager={"url": alertmanager.url, "retries": 1, "backoff_s": 0},
                             notify={"resend_interval_s": interval})
    telemetry = Telemetry()
    real = time.time()
    t0 = real - 900.0  # three intervals ago: every post below lies in the past of Alertmanager's clock, or now
    a = alert(starts_at=t0)
    with Dispatcher(settings, store, telemetry=telemetry, retry=NO_WAIT) as d:
        report = d.sync(TENANT, [a], t0)
        assert report.ok and report.sent == {"alertmanager": 1}, report
        (held,) = am_alerts(alertmanager.url)
        assert held["labels"] == dict(a.labels) and held["fingerprint"] == a.fingerprint
        assert held["status"]["state"] == "active"
        assert held["annotations"]["summary"] == "checkout latency_p95 is anomalous"
        (parsed,), _ = parse_api_alerts([held])
        assert parsed.ends_at == pytest.approx(t0 + 4 * interval, abs=1.0)

        assert d.sync(TENANT, [a], t0 + 10.0).resent == {}  # not due yet: nothing posted
        report = d.sync(TENANT, [a], t0 + interval)  # due: posted again with a later end
        assert report.resent == {"alertmanager": 1} and report.sent == {}, report
        (held,) = am_alerts(alertmanager.url)
        (parsed,), _ = parse_api_alerts([held])
        assert held["status"]["state"] == "active"
        assert parsed.ends_at == pytest.approx(t0 + 5 * interval, abs=1.0)

        report = d.sync(TENANT, [], real)  # it stopped firing: one post with endsAt = now resolves it
        assert report.resolved == {"alertmanager": 1}, report
        assert am_alerts(alertmanager.url) == []
        assert d.sync(TENANT, [], real + 1.0).resolved == {}  # sent once
    assert counter(telemetry, "alertmanager", "ok") == 3
    actions = [(e.action, e.target) for e in store.audit.list(TENANT, actor="notify")]
    assert actions == [("notify.resolved", a.fingerprint), ("notify.sent", a.fingerprint)]


def test_alertmanager_down_does_not_raise_and_catches_up(store: Store, tmp_path: Path,
                                                          alertmanager_bin: str) -> None:
    server = AlertmanagerProcess(alertmanager_bin, tmp_path)  # not started yet: its port refuses connections
    settings = make_settings(alertmanager={"url": server.url, "retries": 1, "backoff_s": 0})
    telemetry = Telemetry()
    now = time.time()
    with Dispatcher(settings, store, telemetry=telemetry, retry=NO_WAIT) as d:
        report = d.sync(TENANT, [alert(starts_at=now)], now)
        assert not report.ok and report.deferred == {"alertmanager": 1}
        assert "alertmanager" in report.errors[0] and "1 alerts not posted" in report.errors[0]
        assert counter(telemetry, "alertmanager", "error") == 1
        try:
            server.start()
            report = d.sync(TENANT, [alert(starts_at=now)], now + 1.0)  # still new: posted now
            assert report.ok and report.sent == {"alertmanager": 1}
            assert len(am_alerts(server.url)) == 1
        finally:
            server.stop()


# ---- Slack, Teams, e-mail ----------------------------------------------------------------------------------------

def chat_settings(slack: ScriptedServer, teams: ScriptedServer, smtp_port: int | None = None,
                  **notify: Any) -> Settings:
    parts: dict[str, Any] = {"slack_webhook_url": f"{slack.url}/services/T000/B000/XXXX",
                             "teams_webhook_url": f"{teams.url}/webhookb2/abc", **notify}
    if smtp_port is not None:
        parts["email"] = {"host": "127.0.0.1", "port": smtp_port, "starttls": False, "sender": "opsmind@example.org",
                          "recipients": ["oncall@example.org", "sre@example.org"]}
    return make_settings(notify=parts)


def bodies(server: ScriptedServer) -> list[dict[str, Any]]:
    return [json.loads(s.body) for s in server.seen]


def parts(message: Message) -> dict[str, str]:
    out = {}
    for part in message.walk():
        if not part.is_multipart():
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            out[part.get_content_type()] = payload.decode()
    return out


def test_slack_teams_and_email_once_per_new_alert_and_once_on_resolve(store: Store) -> None:
    high, low = alert("latency_p95", "high"), alert("errors", "low")
    mailbox = Mailbox()
    telemetry = Telemetry()
    with ScriptedServer([Reply(200, "ok")]) as slack, ScriptedServer([Reply(200, "1")]) as teams, \
            smtp_server(mailbox) as port:
        settings = chat_settings(slack, teams, port, min_severity="high")
        with Dispatcher(settings, store, telemetry=telemetry, retry=NO_WAIT) as d:
            report = d.sync(TENANT, [high, low], T0)
            assert report.ok, report.errors
            assert report.sent == {"slack": 1, "teams": 1, "email": 1}  # the low one is below min_severity
            for _ in range(3):
                assert d.sync(TENANT, [high, low], T0 + 60.0).sent == {}  # still firing: nothing more
            report = d.sync(TENANT, [low], T0 + 120.0)
            assert report.resolved == {"slack": 1, "teams": 1, "email": 1}
            assert d.sync(TENANT, [low], T0 + 180.0).resolved == {}

        assert [s.path for s in slack.seen] == ["/services/T000/B000/XXXX"] * 2
        assert slack.seen[0].headers["Content-Type"] == "application/json"
        fired, resolved = bodies(slack)
        assert fired["text"] == "[HIGH] checkout latency_p95 is anomalous"
        assert fired["blocks"][0] == {"type": "header", "text": {"type": "plain_text", "emoji": True,
                                                                 "text": "[HIGH] checkout latency_p95 is anomalous"}}
        assert fired["blocks"][1]["text"]["text"] == "latency_p95 0.93 s, expected 0.21 s"
        fields = [f["text"] for f in fired["blocks"][2]["fields"]]
        assert "*State*\nfiring" in fields and "*Service*\ncheckout" in fields and "*Tenant*\nacme" in fields
        assert fired["blocks"][3]["elements"][0]["url"] == "http://opsmind.test/ui/#/series/latency_p95"
        assert resolved["text"] == "Resolved: checkout latency_p95 is anomalous"
        assert "*State*\nresolved" in [f["text"] for f in resolved["blocks"][2]["fields"]]

        fired, resolved = bodies(teams)
        assert fired["type"] == "message"
        (attachment,) = fired["attachments"]
        assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
        card = attachment["content"]
        assert card["type"] == "AdaptiveCard" and card["version"] == "1.4"
        assert card["body"][0]["text"] == "[HIGH] checkout latency_p95 is anomalous"
        assert card["body"][0]["color"] == "Attention"
        facts = {f["title"]: f["value"] for f in card["body"][2]["facts"]}
        assert facts["Severity"] == "high" and facts["State"] == "firing" and facts["Alert"] == "OpsmindAnomaly"
        assert card["actions"][0] == {"type": "Action.OpenUrl", "title": "Open in opsmind",
                                      "url": "http://opsmind.test/ui/#/series/latency_p95"}
        resolved_card = resolved["attachments"][0]["content"]
        assert resolved_card["body"][0]["color"] == "Good"
        assert {f["title"]: f["value"] for f in resolved_card["body"][2]["facts"]}["Ended"].startswith("2027-01-15")

    assert len(mailbox.messages) == 2
    assert mailbox.envelopes[0] == ("opsmind@example.org", ["oncall@example.org", "sre@example.org"])
    first, second = mailbox.messages
    assert first["Subject"] == "[opsmind] [HIGH] checkout latency_p95 is anomalous"
    assert first["To"] == "oncall@example.org, sre@example.org"
    assert first.get_content_type() == "multipart/alternative"
    body = parts(first)
    assert "latency_p95 0.93 s, expected 0.21 s" in body["text/plain"]
    assert "Open in opsmind: http://opsmind.test/ui/#/series/latency_p95" in body["text/plain"]
    assert "<h2" in body["text/html"] and "checkout latency_p95 is anomalous" in body["text/html"]
    assert second["Subject"] == "[opsmind] Resolved: checkout latency_p95 is anomalous"
    for channel in ("slack", "teams", "email"):
        assert counter(telemetry, channel, "ok") == 2 and counter(telemetry, channel, "error") == 0


def test_a_restart_repeats_nothing_and_still_resolves(db_url: str, store: Store,
                                                      alertmanager: AlertmanagerProcess) -> None:
    real = time.time()
    a, b = alert("latency_p95", starts_at=real - 60), alert("cpu", "critical", starts_at=real - 60)
    with ScriptedServer([Reply(200, "ok")]) as slack, ScriptedServer([Reply(200, "1")]) as teams:
        settings = chat_settings(slack, teams).model_copy(
            update={"alertmanager": make_settings(alertmanager={"url": alertmanager.url}).alertmanager})
        with Dispatcher(settings, store, retry=NO_WAIT) as first:
            assert first.sync(TENANT, [a, b], real - 30).sent == {"alertmanager": 2, "slack": 2, "teams": 2}
        assert len(slack.seen) == 2 and len(am_alerts(alertmanager.url)) == 2

        with Store.open(db_url) as reopened, Dispatcher(settings, reopened, retry=NO_WAIT) as second:  # a new process
            report = second.sync(TENANT, [a, b], real - 20)
            assert report.sent == {} and report.resent == {"alertmanager": 2}, report  # Alertmanager is told again
            assert len(slack.seen) == 2 and len(teams.seen) == 2  # chat is not
            report = second.sync(TENANT, [b], real)  # `a` ended while nobody watched it fire
            assert report.resolved == {"alertmanager": 1, "slack": 1, "teams": 1}, report
        assert bodies(slack)[-1]["text"] == "Resolved: checkout latency_p95 is anomalous"
        assert [x["labels"]["series"] for x in am_alerts(alertmanager.url)] == ['cpu{service="checkout"}']

        with Store.open(db_url) as reopened, Dispatcher(settings, reopened, retry=NO_WAIT) as third:
            report = third.sync(TENANT, [b], real + 1)
            assert report.sent == {} and report.resolved == {}, report
        assert len(slack.seen) == 3


def test_a_failing_webhook_never_raises_is_counted_and_is_retried_next_cycle(store: Store) -> None:
    telemetry = Telemetry()
    waits: list[float] = []
    retry = Retry(retries=2, backoff_s=0.25, timeout_s=5.0, sleep=waits.append)
    a, b = alert("latency_p95"), alert("cpu", "critical")
    # slack: down for one whole retry sequence, then up; teams: a 400 (final, not retried)
    with ScriptedServer([Reply(503, "busy")] * 3 + [Reply(200, "ok")]) as slack, \
            ScriptedServer([Reply(400, "invalid_payload"), Reply(200, "1")]) as teams, \
            Dispatcher(chat_settings(slack, teams), store, telemetry=telemetry, retry=retry) as d:
        report = d.sync(TENANT, [a, b], T0)
        assert not report.ok
        assert report.deferred == {"slack": 2, "teams": 2}  # the first failure defers the rest of the channel
        assert len(slack.seen) == 3 and waits == [0.25, 0.5]  # three attempts with backoff
        assert len(teams.seen) == 1  # a 4xx is not retried
        assert any("slack webhook: failed after 3 attempts, last: HTTP 503" in e for e in report.errors)
        assert any("teams webhook: HTTP 400: invalid_payload" in e for e in report.errors)
        assert all("XXXX" not in e and "abc" not in e for e in report.errors)  # the secret URL is not printed
        assert counter(telemetry, "slack", "error") == 1 and counter(telemetry, "teams", "error") == 1

        report = d.sync(TENANT, [a, b], T0 + 15)
        assert report.ok and report.sent == {"slack": 2, "teams": 2}, report.errors
    assert counter(telemetry, "slack", "ok") == 2


def test_unreachable_webhook_and_smtp_do_not_raise(store: Store) -> None:
    dead = f"http://127.0.0.1:{free_port()}/hook"
    settings = make_settings(notify={"slack_webhook_url": dead, "email": {
        "host": "127.0.0.1", "port": free_port(), "sender": "a@example.org", "recipients": ["b@example.org"]}})
    telemetry = Telemetry()
    with Dispatcher(settings, store, telemetry=telemetry, retry=NO_WAIT) as d:
        report = d.sync(TENANT, [alert()], T0)
    assert report.deferred == {"slack": 1, "email": 1}
    assert any(e.startswith("slack: firing OpsmindAnomaly") and "ConnectError" in e for e in report.errors)
    assert any(e.startswith("email: firing") and "failed after 3 attempts" in e for e in report.errors)
    assert counter(telemetry, "email", "error") == 1


def test_email_over_starttls_with_login(store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cert, key = self_signed(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the client trusts the test certificate as its CA store
    tls = ssl_server_context(cert, key)
    mailbox = Mailbox()
    with smtp_server(mailbox, tls_context=tls, require_starttls=True, auth_exclude_mechanism=["LOGIN"]) as port:
        def settings(password: str) -> Settings:
            return make_settings(notify={"min_severity": "low", "email": {
                "host": "127.0.0.1", "port": port, "starttls": True, "username": "opsmind", "password": password,
                "sender": "opsmind@example.org", "recipients": ["oncall@example.org"]}})

        with Dispatcher(settings("s3cret"), store, retry=NO_WAIT) as d:
            report = d.sync(TENANT, [alert(severity="low")], T0)
            assert report.ok and report.sent == {"email": 1}, report.errors
        with Dispatcher(settings("wrong"), store, retry=NO_WAIT) as d:  # the first alert is known: only cpu is new
            report = d.sync(TENANT, [alert(severity="low"), alert("cpu", severity="low")], T0)
    assert mailbox.logins == ["opsmind"] and len(mailbox.messages) == 1
    assert report.deferred == {"email": 1} and "SMTP 535" in report.errors[0]  # refused login: not retried


def test_starttls_required_but_not_offered(store: Store) -> None:
    mailbox = Mailbox()
    with smtp_server(mailbox, auth_require_tls=False) as port:
        settings = make_settings(notify={"email": {"host": "127.0.0.1", "port": port, "starttls": True,
                                                   "sender": "a@example.org", "recipients": ["b@example.org"]}})
        with Dispatcher(settings, store, retry=NO_WAIT) as d:
            report = d.sync(TENANT, [alert()], T0)
    assert mailbox.messages == []
    assert "STARTTLS extension not supported by server" in report.errors[0]


def test_bad_input_and_a_broken_store_do_not_raise(store: Store) -> None:
    telemetry = Telemetry()
    with ScriptedServer([Reply(200, "ok")]) as slack, ScriptedServer([Reply(200, "1")]) as teams:
        with Dispatcher(chat_settings(slack, teams), store, telemetry=telemetry, retry=NO_WAIT) as d:
            report = d.sync("no-such-tenant", [alert()], T0)  # the store refuses an unknown tenant
            assert not report.ok and "no-such-tenant" in report.errors[0]
            report = d.sync(TENANT, ["not an alert", None], T0)  # type: ignore[list-item]
            assert report.firing == 0 and report.errors == ["notify: firing[0] is a str, not an Alert; ignored",
                                                            "notify: firing[1] is a NoneType, not an Alert; ignored"]
            ended = Alert({"alertname": "X", "severity": "critical"}, starts_at=T0 - 10, ends_at=T0 - 1)
            assert d.sync(TENANT, [ended], T0).sent == {}  # already over: not firing
        assert slack.seen == [] and teams.seen == []
    assert telemetry.registry.get_sample_value("opsmind_engine_errors_total", {"stage": "notify"}) == 1


# ---- message formats (pure) --------------------------------------------------------------------------------------

def test_messages_respect_limits_and_escape_html() -> None:
    a = alert(summary="x" * 400, description="<script>alert(1)</script> & more", opsmind_url="")
    payload = slack_payload(a, resolved=False)
    assert len(payload["blocks"][0]["text"]["text"]) == 150
    assert all(b["type"] != "actions" for b in payload["blocks"])  # no link without a URL
    assert len(payload["blocks"][2]["fields"]) <= 10
    card = teams_payload(a, resolved=False)["attachments"][0]["content"]
    assert "actions" not in card
    html = parts(email_message(a, resolved=False, sender="a@example.org", recipients=["b@example.org"]))["text/html"]
    assert "<script>" not in html and "&lt;script&gt;" in html and "&amp; more" in html
    bare = Alert({"alertname": "OpsmindIncident", "incident": "inc-1"}, starts_at=T0)
    assert slack_payload(bare, resolved=False)["text"] == "[UNKNOWN] OpsmindIncident"
    facts = dict(f for f in [(x["title"], x["value"]) for x in
                             teams_payload(bare, resolved=True, ended_at=T0 + 60)["attachments"][0]["content"]
                             ["body"][1]["facts"]])
    assert facts["Labels"] == "incident=inc-1" and "Ended" in facts
