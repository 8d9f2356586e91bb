"""API tokens, scopes and tenants: a bad token is a 401, a missing scope a 403, another tenant's records a 404,
the admin token acts on any tenant, anonymous requests get ``anonymous_scopes``."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from httpx import Response

from opsmind.api import create_app
from opsmind.config import Settings
from opsmind.store import Store

ADMIN = "the-admin-token"
NOW = 1_790_000_000.0


@dataclass
class World:
    client: TestClient
    store: Store
    read: str
    write: str
    other_read: str
    revoked: str
    expired: str
    acme_series: int
    acme_anomaly: int
    default_series: int


@pytest.fixture
def world() -> Iterator[World]:
    store = Store.open("sqlite://", now=lambda: NOW)
    store.tenants.ensure("default")
    store.tenants.ensure("acme")
    _, read = store.tokens.create("default", "dashboard", ["read"])
    _, write = store.tokens.create("default", "pusher", ["write"])
    _, other = store.tokens.create("acme", "acme-ro", ["read"])
    rec, revoked = store.tokens.create("default", "old", ["admin"])
    store.tokens.revoke("default", rec.id)
    _, expired = store.tokens.create("default", "temp", ["read"], expires_at=NOW - 1)
    acme = store.series.upsert("acme", "rate", {"service": "billing"})
    store.samples.insert("acme", acme.id, [NOW], [1.0])
    anomaly = store.anomalies.record("acme", acme.id, NOW, 0.9)
    mine = store.series.upsert("default", "rate", {"service": "checkout"})
    settings = Settings.model_validate({"api": {"admin_token": ADMIN, "anonymous_scopes": ["read"]}})
    app = create_app(settings, store=store, clock=lambda: NOW)
    yield World(TestClient(app, raise_server_exceptions=False), store, read, write, other, revoked, expired,
                acme.id, anomaly.id, mine.id)
    store.close()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def error(r: Response, status: int) -> str:
    assert r.status_code == status, r.text
    body = r.json()["error"]
    assert body["code"] == {401: "unauthorized", 403: "forbidden", 404: "not_found"}[status]
    return str(body["message"])


@pytest.mark.parametrize("header", ["Bearer om_not_a_real_token", "Bearer ", "Basic dXNlcjpwYXNz", "om_raw"])
def test_bad_token_is_401(world: World, header: str) -> None:
    r = world.client.get("/api/v1/series", headers={"Authorization": header})
    error(r, 401)
    assert r.headers["www-authenticate"] == "Bearer"


def test_revoked_and_expired_tokens_are_401(world: World) -> None:
    assert "revoked" in error(world.client.get("/api/v1/series", headers=bearer(world.revoked)), 401)
    assert "expired" in error(world.client.get("/api/v1/series", headers=bearer(world.expired)), 401)


def test_missing_scope_is_403(world: World) -> None:
    body = {"series": [{"name": "x", "samples": [[NOW, 1.0]]}]}
    message = error(world.client.post("/api/v1/ingest", json=body, headers=bearer(world.read)), 403)
    assert "'write'" in message and "token:dashboard" in message
    r = world.client.post("/api/v1/ingest", json=body, headers=bearer(world.write))  # write implies read too
    assert r.status_code == 200 and world.client.get("/api/v1/series", headers=bearer(world.write)).status_code == 200


def test_anonymous_gets_the_anonymous_scopes_only(world: World) -> None:
    assert world.client.get("/api/v1/series").status_code == 200
    message = error(world.client.post("/api/v1/feedback", json={"anomaly_id": 1, "verdict": "true_positive"}), 401)
    assert "send a token" in message
    assert world.client.get("/api/v1/health").status_code == 200


def test_no_anonymous_scopes_means_a_token_is_needed() -> None:
    with Store.open("sqlite://") as store:
        client = TestClient(create_app(Settings(), store=store))
        error(client.get("/api/v1/series"), 401)
        error(client.get("/api/v1/events"), 401)
        assert client.get("/api/v1/health").status_code == 200 and client.get("/metrics").status_code == 200


def test_tokens_see_only_their_tenant(world: World) -> None:
    c = world.client
    mine = c.get("/api/v1/series", headers=bearer(world.read)).json()["series"]
    assert [s["id"] for s in mine] == [world.default_series]
    theirs = c.get("/api/v1/series", headers=bearer(world.other_read)).json()["series"]
    assert [s["id"] for s in theirs] == [world.acme_series]
    assert "acme" not in c.get("/api/v1/anomalies", headers=bearer(world.read)).text


@pytest.mark.parametrize("path", ["/api/v1/series/{s}", "/api/v1/series/{s}/samples", "/api/v1/anomalies/{a}"])
def test_another_tenants_ids_are_404(world: World, path: str) -> None:
    url = path.format(s=world.acme_series, a=world.acme_anomaly)
    error(world.client.get(url, headers=bearer(world.read)), 404)
    assert world.client.get(url, headers=bearer(world.other_read)).status_code == 200


def test_another_tenants_ids_in_writes_are_404(world: World) -> None:
    c = world.client
    error(c.post("/api/v1/feedback", json={"anomaly_id": world.acme_anomaly, "verdict": "false_positive"},
                 headers=bearer(world.write)), 404)
    error(c.post("/api/v1/feedback", json={"series_id": world.acme_series, "ts": NOW, "verdict": "missed"},
                 headers=bearer(world.write)), 404)
    assert world.store.feedback.list("acme") == []


def test_tenant_header_cannot_switch_a_tokens_tenant(world: World) -> None:
    message = error(world.client.get("/api/v1/series", headers={**bearer(world.read), "X-Opsmind-Tenant": "acme"}),
                    403)
    assert "belongs to tenant 'default'" in message
    error(world.client.get("/api/v1/series", headers={"X-Opsmind-Tenant": "acme"}), 403)  # anonymous


def test_admin_token_acts_on_any_tenant(world: World) -> None:
    c = world.client
    default = c.get("/api/v1/series", headers=bearer(ADMIN)).json()["series"]
    assert [s["id"] for s in default] == [world.default_series]
    acme = c.get(f"/api/v1/anomalies/{world.acme_anomaly}", headers={**bearer(ADMIN), "X-Opsmind-Tenant": "acme"})
    assert acme.status_code == 200 and acme.json()["tenant"] == "acme"
    r = c.post("/api/v1/feedback", json={"anomaly_id": world.acme_anomaly, "verdict": "true_positive"},
               headers={**bearer(ADMIN), "X-Opsmind-Tenant": "acme"})
    assert r.status_code == 200 and r.json()["author"] == "admin"
    error(c.get("/api/v1/series", headers={**bearer(ADMIN), "X-Opsmind-Tenant": "nobody"}), 404)


def test_token_use_is_recorded(world: World) -> None:
    # on the wall clock, whatever clock the app's data runs on (here NOW; in `opsmind demo`, simulated time)
    before = time.time()
    world.client.get("/api/v1/series", headers=bearer(world.read))
    (dashboard,) = [t for t in world.store.tokens.list("default") if t.name == "dashboard"]
    assert dashboard.last_used_at is not None and before - 1 <= dashboard.last_used_at <= time.time() + 1


def test_token_cli_create_use_list_revoke(tmp_path: Path) -> None:
    import typer
    from typer.testing import CliRunner

    from opsmind.cli.token import token_app

    cli = typer.Typer()
    cli.add_typer(token_app, name="token")
    runner = CliRunner()
    db = str(tmp_path / "tokens.db")
    made = runner.invoke(cli, ["token", "create", "grafana", "--db", db, "-s", "read", "--expires-in", "30d",
                               "--json"])
    assert made.exit_code == 0, made.output
    created = json.loads(made.output)
    assert created["scopes"] == ["read"] and created["secret"].startswith("om_")
    with Store.open(f"sqlite:///{db}") as store:
        app = create_app(Settings(), store=store)
        app.state.opsmind.auth_cache_s = 0  # by default a revocation takes effect within 2 s
        client = TestClient(app, raise_server_exceptions=False)
        assert client.get("/api/v1/series", headers=bearer(created["secret"])).status_code == 200
        listed = runner.invoke(cli, ["token", "list", "--db", db, "--json"])
        assert [t["name"] for t in json.loads(listed.output)] == ["grafana"]
        assert "secret" not in listed.output and created["secret"] not in listed.output
        revoked = runner.invoke(cli, ["token", "revoke", str(created["id"]), "--db", db])
        assert revoked.exit_code == 0 and "revoked token" in revoked.output
        assert "revoked" in error(client.get("/api/v1/series", headers=bearer(created["secret"])), 401)
    missing = runner.invoke(cli, ["token", "revoke", "999", "--db", db])
    assert missing.exit_code == 2 and "not found" in missing.output
    bad = runner.invoke(cli, ["token", "create", "x", "--db", db, "--expires-in", "soon"])
    assert bad.exit_code == 2 and "not a duration" in bad.output
