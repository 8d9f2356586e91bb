"""Remediation executors against real components: Alertmanager silences, a real supervisord, a local webhook
receiver that checks signatures, and the shell allow-list. (Kubernetes: tests/test_executor_kubernetes.py.)"""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import sys
import threading
import time
import xmlrpc.client
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from opsmind.core import ConfigError
from opsmind.remediate.executors import EXECUTORS, build_executor
from opsmind.remediate.executors.base import Executor, Plan
from opsmind.remediate.executors.shell import Shell, ShellSettings
from opsmind.remediate.executors.silences import SilenceCreate, SilenceExpire, SilenceSettings
from opsmind.remediate.executors.supervisor import (
    SupervisorRestart,
    SupervisorSettings,
    SupervisorStart,
    SupervisorStop,
)
from opsmind.remediate.executors.webhook import Webhook, WebhookSettings
from servers import AlertmanagerProcess, free_port, require_binary

# ---- the registry ----------------------------------------------------------------------------------------------

SAMPLE_SETTINGS: dict[str, dict[str, Any]] = {"http.webhook": {"url": "http://127.0.0.1:9"}}


def test_every_kind_is_registered_and_follows_the_contract() -> None:
    assert set(EXECUTORS) == {
        "kubernetes.scale", "kubernetes.restart", "kubernetes.rollback", "kubernetes.cordon",
        "alertmanager.silence", "alertmanager.expire", "http.webhook", "shell",
        "supervisor.restart", "supervisor.start", "supervisor.stop"}
    foreign = Plan(kind="nothing.real", target="x", action={}, changes=("nothing",))
    for kind in EXECUTORS:
        ex = build_executor(kind, SAMPLE_SETTINGS.get(kind))
        assert isinstance(ex, Executor) and ex.kind == kind
        out = ex.execute(foreign, dry_run=False)  # never raises, says why
        assert not out.ok and f"runs {kind!r} plans, not 'nothing.real'" in out.message
        with pytest.raises(ConfigError, match=r"on (default/)?x: (.*; )?action.colour: Extra inputs are not"):
            ex.plan("x", {"colour": "red"})


SAMPLE_ACTIONS: dict[str, tuple[str, dict[str, Any]]] = {
    "kubernetes.scale": ("shop/web", {"replicas": 4}),
    "kubernetes.restart": ("shop/web", {"at": 1_790_000_000.5}),
    "kubernetes.rollback": ("shop/web", {"to_revision": 2}),
    "kubernetes.cordon": ("node-1", {"unschedulable": False}),
    "alertmanager.silence": ("web", {"matchers": [{"name": "b", "value": "x.*", "isRegex": True}, {"name": "a",
                                     "value": "1", "isEqual": False}], "at": 1e9, "duration_s": 60, "comment": "c"}),
    "alertmanager.expire": ("web", {"matchers": {"service": "web"}}),
    "http.webhook": ("bot", {"path": "/a", "body": {"k": [1, 2.5, None]}, "undo": {"method": "DELETE"}}),
    "shell": ("web-1", {"argv": ["/usr/bin/echo", "hi"], "timeout_s": 2}),
    "supervisor.restart": ("sleeper", {}),
    "supervisor.start": ("sleeper", {}),
    "supervisor.stop": ("sleeper", {}),
}


def test_plans_survive_a_json_round_trip() -> None:
    """The runner stores plans as JSON and executes them later: the stored action must plan to the same plan."""
    assert set(SAMPLE_ACTIONS) == set(EXECUTORS)
    settings = {**SAMPLE_SETTINGS, "shell": {"allow": [{"executable": "/usr/bin/echo", "args": ["hi"]}]}}
    for kind, (target, action) in SAMPLE_ACTIONS.items():
        ex = build_executor(kind, settings.get(kind))
        plan = ex.plan(target, {**action, "run_id": "run-1"})
        stored = json.loads(json.dumps({"target": plan.target, "action": dict(plan.action)}))
        assert ex.plan(stored["target"], stored["action"]) == plan, kind
        assert plan.changes and all(isinstance(c, str) and "\n" not in c for c in plan.changes)


def test_build_executor_errors_name_the_field() -> None:
    with pytest.raises(ConfigError, match=r"kind 'kubernetes\.explode' is unknown; known kinds: alertmanager\.expire"):
        build_executor("kubernetes.explode")
    with pytest.raises(ConfigError, match=r"webhook settings: url: Field required"):
        build_executor("http.webhook", {})
    with pytest.raises(ConfigError, match=r"shell settings: allow\[0\].executable: Value error, must be a normalised"):
        build_executor("shell", {"allow": [{"executable": "echo"}]})
    with pytest.raises(ConfigError, match="expected SupervisorSettings, got ShellSettings"):
        build_executor("supervisor.restart", ShellSettings())


# ---- Alertmanager silences (a real Alertmanager) ---------------------------------------------------------------

def silences(url: str) -> list[dict[str, Any]]:
    body: list[dict[str, Any]] = httpx.get(f"{url}/api/v2/silences", timeout=5).json()
    return body


def test_silence_created_listed_reused_and_expired(alertmanager: AlertmanagerProcess) -> None:
    ex = SilenceCreate(SilenceSettings(url=alertmanager.url))
    now = time.time()
    plan = ex.plan("checkout", {"matchers": {"service": "checkout", "alertname": "OpsmindAnomaly"}, "starts_at": now,
                                "duration_s": 3600, "comment": "opsmind remediation: scale-out under way"})
    assert plan.action["ends_at"] == pytest.approx(now + 3600)
    assert plan.changes[0].startswith('create silence {alertname="OpsmindAnomaly", service="checkout"} from ')
    dry = ex.execute(plan)
    assert dry.ok and dry.dry_run and dry.changed and silences(alertmanager.url) == []
    done = ex.execute(plan, dry_run=False)
    assert done.ok and done.changed, done.message
    silence_id = done.after["silence"]["id"]  # type: ignore[index]
    listed = silences(alertmanager.url)
    assert [(s["id"], s["status"]["state"], s["createdBy"]) for s in listed] == [(silence_id, "active", "opsmind")]
    assert sorted((m["name"], m["value"], m["isRegex"]) for m in listed[0]["matchers"]) == [
        ("alertname", "OpsmindAnomaly", False), ("service", "checkout", False)]
    again = ex.execute(plan, dry_run=False)  # an identical active silence is reused
    assert again.ok and not again.changed and again.after["silence"]["id"] == silence_id  # type: ignore[index]
    assert len(silences(alertmanager.url)) == 1
    assert ex.rollback(again, dry_run=False).changed is False  # reusing changed nothing, so nothing to undo
    back = ex.rollback(done, dry_run=False)
    assert back.ok and back.changed and back.after["silence"]["state"] == "expired"  # type: ignore[index]
    assert [s["status"]["state"] for s in silences(alertmanager.url)] == ["expired"]
    assert not ex.rollback(done, dry_run=False).changed  # already expired


def test_expire_by_matchers_and_recreate_on_rollback(alertmanager: AlertmanagerProcess) -> None:
    settings = SilenceSettings(url=alertmanager.url)
    now = time.time()
    created = SilenceCreate(settings).execute(SilenceCreate(settings).plan("web", {
        "matchers": [{"name": "service", "value": "web.*", "isRegex": True}], "starts_at": now,
        "ends_at": now + 600, "comment": "maintenance"}), dry_run=False)
    assert created.ok, created.message
    ex = SilenceExpire(settings)
    plan = ex.plan("web", {"matchers": [{"name": "service", "value": "web.*", "isRegex": True}]})
    assert plan.changes == ('expire every active silence {service=~"web.*"}',)
    assert ex.execute(plan).changed and silences(alertmanager.url)[0]["status"]["state"] == "active"
    done = ex.execute(plan, dry_run=False)
    assert done.ok and done.changed and silences(alertmanager.url)[0]["status"]["state"] == "expired"
    assert not ex.execute(plan, dry_run=False).changed
    back = ex.rollback(done, dry_run=False)
    assert back.ok and back.changed, back.message
    states = sorted((s["status"]["state"], s["comment"]) for s in silences(alertmanager.url))
    assert states == [("active", "maintenance"), ("expired", "maintenance")]


def test_silence_failures_are_outcomes(alertmanager: AlertmanagerProcess) -> None:
    ex = SilenceCreate(SilenceSettings(url=alertmanager.url))
    past = ex.plan("x", {"matchers": {"a": "b"}, "starts_at": 1_000_000_000, "ends_at": 1_000_000_060,
                         "comment": "too late"})
    out = ex.execute(past, dry_run=False)  # Alertmanager refuses an end in the past with a 400
    assert not out.ok and "HTTP 400" in out.message and "\n" not in out.message
    gone = SilenceExpire(SilenceSettings(url=alertmanager.url)).plan("x", {"silence_id": "no-such-id"})
    assert not SilenceExpire(SilenceSettings(url=alertmanager.url)).execute(gone, dry_run=False).ok
    down = SilenceCreate(SilenceSettings(url="http://127.0.0.1:9", retries=0))
    assert "failed after 1 attempts" in down.execute(past).message
    from_at = ex.plan("x", {"matchers": {"a": "b"}, "at": 1_000_000_000, "duration_s": 60, "comment": "c"})
    assert (from_at.action["starts_at"], from_at.action["ends_at"]) == (1_000_000_000, 1_000_000_060)
    with pytest.raises(ConfigError, match=r"action.starts_at: Field required"):
        ex.plan("x", {"matchers": {"a": "b"}, "duration_s": 60, "comment": "c"})
    with pytest.raises(ConfigError, match="exactly one of ends_at and duration_s"):
        ex.plan("x", {"matchers": {"a": "b"}, "starts_at": 1.0, "comment": "c"})
    with pytest.raises(ConfigError, match=r"action.matchers: List should have at least 1 item"):
        ex.plan("x", {"matchers": [], "starts_at": 1.0, "duration_s": 5, "comment": "c"})


# ---- webhooks (a local receiver that checks signatures) --------------------------------------------------------

SECRET = "webhook-s3cret-value"


@dataclass
class Receiver:
    """Checks X-Opsmind-Signature, answers 503 to the first ``failures`` requests, records the valid ones."""

    failures: int = 0
    delay_s: float = 0.0
    seen: list[tuple[str, str, dict[str, str], bytes]] = field(default_factory=list)
    refused: int = 0

    def answer(self, method: str, path: str, headers: dict[str, str], body: bytes) -> int:
        expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(headers.get("X-Opsmind-Signature", ""), expected):
            self.refused += 1
            return 401
        self.seen.append((method, path, headers, body))
        if self.failures:
            self.failures -= 1
            return 503
        time.sleep(self.delay_s)
        return 200


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def _any(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            code = state.answer(self.command, self.path, dict(self.headers.items()), body)
            payload = json.dumps({"received": code == 200}).encode()
            try:
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except OSError:
                pass

        def do_POST(self) -> None:
            self._any()

        def do_DELETE(self) -> None:
            self._any()

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}/hooks"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_webhook_signed_retried_idempotent_and_undone(receiver: tuple[Receiver, str]) -> None:
    state, url = receiver
    state.failures = 2
    waits: list[float] = []
    ex = build_executor("http.webhook", {"url": url, "secret_env": "HOOK_SECRET", "retries": 3, "backoff_s": 0.25},
                        sleep=waits.append, environ={"HOOK_SECRET": SECRET})
    plan = ex.plan("deploy-bot", {"path": "/scale", "body": {"service": "web", "replicas": 7},
                                  "undo": {"method": "DELETE", "path": "/scale/web"}})
    assert plan.reversible and plan.changes[0].startswith(f"send POST {url}/scale (")
    assert ex.execute(plan).changed and state.seen == []  # dry run: nothing sent
    done = ex.execute(plan, dry_run=False)
    assert done.ok and done.after == {"status": 200, "body": '{"received": true}'}, done.message
    assert len(state.seen) == 3 and waits == [0.25, 0.5]  # two 503s, retried with backoff
    method, path, headers, body = state.seen[-1]
    assert (method, path, body) == ("POST", "/hooks/scale", b'{"replicas":7,"service":"web"}')
    assert headers["Idempotency-Key"] == done.details["plan_key"] and state.refused == 0
    again = ex.execute(plan, dry_run=False)
    assert again.ok and not again.changed and len(state.seen) == 3  # not sent twice
    assert SECRET not in repr(done) + repr(again) + repr(plan)
    back = ex.rollback(done, dry_run=False)
    assert back.ok and back.changed and state.seen[-1][:2] == ("DELETE", "/hooks/scale/web")
    assert state.seen[-1][2]["Idempotency-Key"] == done.details["plan_key"] + "-undo"


def test_webhook_failures(receiver: tuple[Receiver, str]) -> None:
    state, url = receiver
    wrong = Webhook(WebhookSettings(url=url, secret="not-the-secret", retries=2), sleep=lambda s: None)
    out = wrong.execute(wrong.plan("bot", {"body": {"x": 1}}), dry_run=False)
    assert not out.ok and "HTTP 401" in out.message and state.refused == 1  # a 4xx is not retried
    assert "not-the-secret" not in out.message
    state.delay_s = 1.0
    slow = Webhook(WebhookSettings(url=url, secret=SECRET, retries=1, timeout_s=0.2), sleep=lambda s: None)
    out = slow.execute(slow.plan("bot", {"body": {"x": 2}}), dry_run=False)
    assert not out.ok and "failed after 2 attempts, last: ReadTimeout" in out.message
    assert not out.changed and not slow.rollback(out, dry_run=False).changed  # nothing was done: nothing to undo
    with pytest.raises(ConfigError, match=r"action\.path: Value error, must be empty or start with a single '/'"):
        slow.plan("bot", {"path": "//evil.example/x"})
    with pytest.raises(ConfigError, match="headers are set by opsmind"):
        slow.plan("bot", {"headers": {"X-Opsmind-Signature": "sha256=0"}})
    with pytest.raises(ConfigError, match="HOOK_MISSING is not set"):
        Webhook(WebhookSettings(url=url, secret_env="HOOK_MISSING"), environ={})
    one_way = slow.plan("bot", {"body": {"x": 3}})
    assert not one_way.reversible


# ---- shell allow-list ------------------------------------------------------------------------------------------

def shell(tmp_path: Path, **kw: Any) -> Shell:
    allow = [
        {"executable": "/usr/bin/echo", "args": [r"[a-z ]{1,40}"]},
        {"executable": "/bin/sh", "args": ["-c", r".*"]},
        {"executable": sys.executable, "args": ["-c", r".*"]},
        {"executable": "/usr/bin/touch", "args": [str(tmp_path) + r"/[a-z]+"]},
        {"executable": "/usr/bin/rm", "args": ["-f", str(tmp_path) + r"/[a-z]+"]},
    ]
    return Shell(ShellSettings.model_validate({"allow": allow, "cwd": str(tmp_path), **kw}))


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie is dead


def test_allowed_command_runs_and_disallowed_is_refused(tmp_path: Path) -> None:
    ex = shell(tmp_path)
    plan = ex.plan("web-1", {"argv": ["/usr/bin/echo", "hello there"]})
    assert plan.changes == ("run /usr/bin/echo 'hello there' on web-1 (timeout 30 s)",)
    out = ex.execute(plan, dry_run=False)
    assert out.ok and out.after is not None and out.after["stdout"] == "hello there\n" and out.after["returncode"] == 0
    with pytest.raises(ConfigError, match=r"action.argv: /usr/bin/cat /etc/passwd is refused: '/usr/bin/cat' is "
                                          r"not on the allow-list \(allowed: /usr/bin/echo"):
        ex.plan("web-1", {"argv": ["/usr/bin/cat", "/etc/passwd"]})
    with pytest.raises(ConfigError, match=r"argument 1 'HELLO; rm -rf /' does not match"):
        ex.plan("web-1", {"argv": ["/usr/bin/echo", "HELLO; rm -rf /"]})
    with pytest.raises(ConfigError, match=r"action.undo: .* takes 1 argument\(s\), got 2"):
        ex.plan("web-1", {"argv": ["/usr/bin/echo", "a"], "undo": ["/usr/bin/echo", "a", "b"]})
    with pytest.raises(ConfigError, match="the allow-list is empty"):
        Shell().plan("web-1", {"argv": ["/usr/bin/echo", "a"]})
    marker = tmp_path / "forged"
    forged = Plan(kind="shell", target="web-1", action={"argv": ["/usr/bin/touch", str(marker) + "/x"]},
                  changes=("forged",))
    refused = ex.execute(forged, dry_run=False)  # a plan that did not come from plan() is checked again
    assert not refused.ok and "is refused" in refused.message and not marker.exists()


def test_shell_idempotent_undo_truncation_and_exit_codes(tmp_path: Path) -> None:
    ex = shell(tmp_path, max_output_bytes=100)
    flag = tmp_path / "flag"
    plan = ex.plan("web-1", {"argv": ["/usr/bin/touch", str(flag)], "undo": ["/usr/bin/rm", "-f", str(flag)]})
    assert ex.execute(plan).ok and not flag.exists()  # dry run
    done = ex.execute(plan, dry_run=False)
    assert done.ok and flag.exists()
    flag.unlink()
    assert not ex.execute(plan, dry_run=False).changed and not flag.exists()  # not run twice
    assert ex.execute(ex.plan("web-1", {**plan.action, "run_id": "run-2"}), dry_run=False).changed and flag.exists()
    assert ex.rollback(done, dry_run=False).ok and not flag.exists()
    big = ex.execute(ex.plan("web-1", {"argv": [sys.executable, "-c", "print('x' * 5000)"]}), dry_run=False)
    assert big.ok and big.after is not None and big.after["truncated"] and big.after["stdout"] == "x" * 100
    bad = ex.execute(ex.plan("web-1", {"argv": ["/bin/sh", "-c", "echo boom >&2; exit 3"]}), dry_run=False)
    assert not bad.ok and bad.changed and bad.message == "shell on web-1: exit 3: boom"


def test_shell_timeout_kills_the_process_group(tmp_path: Path) -> None:
    ex = shell(tmp_path, timeout_s=5)
    pidfile = tmp_path / "child.pid"
    out = ex.execute(ex.plan("web-1", {"argv": ["/bin/sh", "-c", f"sleep 300 & echo $! > {pidfile}; wait"],
                                       "timeout_s": 1}), dry_run=False)
    assert not out.ok and out.after is not None and out.after["timed_out"]
    assert out.message == "shell on web-1: timed out after 1 s; process group killed"
    child = int(pidfile.read_text())
    deadline = time.monotonic() + 10
    while alive(child) and time.monotonic() < deadline:  # SIGKILL is delivered asynchronously
        time.sleep(0.05)
    assert not alive(child)  # the grandchild died with its group
    with pytest.raises(ConfigError, match=r"action\.timeout_s: 10\.0 exceeds the settings' 5\.0 s"):
        ex.plan("web-1", {"argv": ["/usr/bin/echo", "a"], "timeout_s": 10})


# ---- supervisord (a real one) ----------------------------------------------------------------------------------

SUPERVISOR_USER, SUPERVISOR_PASSWORD = "opsmind", "sup3r secret"


@dataclass(frozen=True)
class RunningSupervisor:
    url: str
    settings: SupervisorSettings


@pytest.fixture(scope="module")
def supervisord(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSupervisor]:
    """A real supervisord (Debian ``supervisor``) with XML-RPC on a free loopback port and two programs."""
    binary = require_binary("supervisord", "supervisor")
    workdir = tmp_path_factory.mktemp("supervisord")
    port = free_port()
    conf = workdir / "supervisord.conf"
    conf.write_text(f"""[supervisord]
nodaemon=true
logfile={workdir}/supervisord.log
pidfile={workdir}/supervisord.pid
childlogdir={workdir}

[inet_http_server]
port=127.0.0.1:{port}
username={SUPERVISOR_USER}
password={SUPERVISOR_PASSWORD}

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[program:sleeper]
command={sys.executable} -c "import time; time.sleep(1e6)"
autostart=true
startsecs=1
stopwaitsecs=5

[program:broken]
command=/bin/false
autostart=false
startsecs=1
startretries=0
""")
    log = (workdir / "stdout.log").open("wb")
    proc = subprocess.Popen([binary, "-n", "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/RPC2"
    settings = SupervisorSettings(url=url, username=SUPERVISOR_USER, password=SUPERVISOR_PASSWORD, timeout_s=20)
    proxy = xmlrpc.client.ServerProxy(f"http://{SUPERVISOR_USER}:{SUPERVISOR_PASSWORD.replace(' ', '%20')}"
                                      f"@127.0.0.1:{port}/RPC2")
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                info: Any = proxy.supervisor.getProcessInfo("sleeper")
                if info["statename"] == "RUNNING":
                    break
            except (OSError, xmlrpc.client.Error):
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("supervisord did not start: " + (workdir / "supervisord.log").read_text()[-2000:])
            time.sleep(0.2)
        yield RunningSupervisor(url, settings)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        log.close()


def test_supervisor_restart_changes_the_pid_once_per_plan(supervisord: RunningSupervisor) -> None:
    ex = SupervisorRestart(supervisord.settings)
    plan = ex.plan("sleeper", {"run_id": "run-1"})
    assert not plan.reversible
    dry = ex.execute(plan)
    assert dry.ok and dry.changed and dry.before is not None and dry.before["statename"] == "RUNNING"
    pid = dry.before["pid"]
    assert alive(pid)
    done = ex.execute(plan, dry_run=False)
    assert done.ok and done.changed and done.before is not None and done.after is not None, done.message
    assert done.before["pid"] == pid and done.after["statename"] == "RUNNING" and done.after["pid"] != pid
    assert alive(done.after["pid"]) and not alive(pid)
    again = ex.execute(plan, dry_run=False)  # same plan, same run: no second restart
    assert again.ok and not again.changed and again.after is not None and again.after["pid"] == done.after["pid"]
    fresh = ex.execute(ex.plan("sleeper", {"run_id": "run-2"}), dry_run=False)
    assert fresh.changed and fresh.after is not None and fresh.after["pid"] != done.after["pid"]
    assert not ex.rollback(fresh, dry_run=False).changed  # it was running before and is running now


def test_supervisor_stop_start_and_rollback(supervisord: RunningSupervisor) -> None:
    stop = SupervisorStop(supervisord.settings)
    stopped = stop.execute(stop.plan("sleeper", {}), dry_run=False)
    assert stopped.ok and stopped.changed and stopped.after == {"name": "sleeper", "group": "sleeper",
                                                                "statename": "STOPPED", "pid": 0}
    assert not stop.execute(stop.plan("sleeper", {}), dry_run=False).changed
    back = stop.rollback(stopped, dry_run=False)
    assert back.ok and back.changed and back.after is not None and back.after["statename"] == "RUNNING"
    start = SupervisorStart(supervisord.settings)
    assert not start.execute(start.plan("sleeper", {}), dry_run=False).changed


def test_supervisor_failures_are_outcomes(supervisord: RunningSupervisor) -> None:
    ex = SupervisorRestart(supervisord.settings)
    broken = ex.execute(ex.plan("broken", {}), dry_run=False)
    assert not broken.ok and broken.before is not None and broken.before["statename"] == "STOPPED"
    assert "startProcess(broken)" in broken.message and "\n" not in broken.message
    missing = ex.execute(ex.plan("nope", {}))
    assert not missing.ok and "BAD_NAME" in missing.message
    wrong = SupervisorRestart(supervisord.settings.model_copy(update={"password": None}))
    denied = wrong.execute(wrong.plan("sleeper", {}))
    assert not denied.ok and "HTTP 401" in denied.message and SUPERVISOR_PASSWORD not in denied.message
    down = SupervisorRestart(SupervisorSettings(url="http://127.0.0.1:9/RPC2"))
    assert "cannot reach" in down.execute(down.plan("sleeper", {})).message
