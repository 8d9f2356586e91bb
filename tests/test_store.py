"""The store: the same repository suite on SQLite and on the PostgreSQL server of the machine; tenant isolation,
idempotent replays (also across a restart), retention, migrations up and down, model-state versioning, bad input.

PostgreSQL tests use a fresh database per run (dropped at the end) on ``OPSMIND_TEST_POSTGRES_URL`` (default
``postgresql+psycopg://postgres@127.0.0.1:5432/test``); they fail in CI (``CI=true``) and skip elsewhere when the
server is down.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from sqlalchemy import URL, inspect, make_url, text

from opsmind.core import ConfigError, DataError, Frame
from opsmind.core.alerts import Alert
from opsmind.detect.pipeline import detect_frame
from opsmind.detect.threshold import Thresholder
from opsmind.forecast.base import Forecast
from opsmind.incidents import IncidentCorrelator
from opsmind.store import (
    AuthError,
    ConflictError,
    NotFoundError,
    RetentionPolicy,
    SeriesSamples,
    Store,
    StoreError,
    StoreSettings,
    anomalies_from_detection,
    current_revision,
    default_url,
    downgrade,
    head_revision,
    migrate,
    schema_diff,
)
from opsmind.store.models import Base

PG_URL = os.environ.get("OPSMIND_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
T0 = 1_800_000_000.0
DAY = 86_400.0
TABLES = set(Base.metadata.tables)


# ---- fixtures ----------------------------------------------------------------------------------------------------

def _conninfo(url: URL) -> str:
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def _require_postgres() -> URL:
    url = make_url(PG_URL)
    try:
        psycopg.connect(_conninfo(url), connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        message = f"PostgreSQL at {url.render_as_string()} is not reachable ({str(exc).strip().splitlines()[0]})"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + " (CI must start it)")
        pytest.skip(message + " (set OPSMIND_TEST_POSTGRES_URL or start the server)")
    return url


def _create_database(admin: URL) -> URL:
    name = f"opsmind_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_conninfo(admin), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return admin.set(database=name)


def _drop_database(admin: URL, url: URL) -> None:
    with psycopg.connect(_conninfo(admin), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A database created (and migrated) for this test run, dropped at its end."""
    admin = _require_postgres()
    url = _create_database(admin)
    try:
        text_url = url.render_as_string(hide_password=False)
        migrate(text_url)
        yield text_url
    finally:
        _drop_database(admin, url)


@dataclass
class Clock:
    t: float = T0

    def __call__(self) -> float:
        return self.t


BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)]


@pytest.fixture(params=BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated database: a fresh SQLite file, or the run's PostgreSQL database."""
    if request.param == "sqlite":
        u = f"sqlite:///{tmp_path / 'opsmind.db'}"
        migrate(u)
        return u
    value: str = request.getfixturevalue("pg_url")
    return value


@pytest.fixture(params=BACKENDS)
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of its own (for migration tests)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    admin = _require_postgres()
    u = _create_database(admin)
    try:
        yield u.render_as_string(hide_password=False)
    finally:
        _drop_database(admin, u)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(url: str, clock: Clock) -> Iterator[Store]:
    with Store(url, now=clock) as st:
        yield st


def _new_tenant(store: Store) -> str:
    name = f"t-{uuid.uuid4().hex[:10]}"  # unique per test: the PostgreSQL database is shared by the run
    store.tenants.ensure(name)
    return name


@pytest.fixture
def tenant(store: Store) -> str:
    return _new_tenant(store)


@pytest.fixture
def other(store: Store) -> str:
    return _new_tenant(store)


def _series(store: Store, tenant: str, name: str = "http_requests", **labels: str) -> int:
    return store.series.upsert(tenant, name, {"service": "checkout", **labels}).id


def _count(store: Store, sql: str, **params: Any) -> int:
    with store.db.engine.connect() as conn:
        return int(conn.execute(text(sql), params).scalar_one())


def _alert(name: str, service: str, t: float, **extra: Any) -> Alert:
    return Alert(labels={"alertname": name, "service": service}, starts_at=t, **extra)


# ---- migrations and connection -----------------------------------------------------------------------------------

def test_migrations_up_down_and_models_agree(empty_url: str) -> None:
    assert current_revision(empty_url) is None
    assert schema_diff(empty_url)  # an empty database differs from the models
    assert migrate(empty_url) == head_revision()
    assert schema_diff(empty_url) == []  # what `alembic check` verifies: models and migrations agree
    with Store(empty_url) as st:
        assert set(inspect(st.db.engine).get_table_names()) >= TABLES
        with st.db.engine.begin() as conn:  # drift is detected: drop an index the models declare
            conn.execute(text("DROP INDEX ix_audit_log_tenant_id_at"))
    diff = schema_diff(empty_url)
    assert any(d[0] == "add_index" and d[1].name == "ix_audit_log_tenant_id_at" for d in diff)
    with Store(empty_url) as st, st.db.engine.begin() as conn:
        conn.execute(text("CREATE INDEX ix_audit_log_tenant_id_at ON audit_log (tenant_id, at)"))
    assert schema_diff(empty_url) == []
    assert downgrade(empty_url) is None
    with Store(empty_url) as st:
        assert not TABLES & set(inspect(st.db.engine).get_table_names())
    migrate(empty_url)  # and up again
    assert schema_diff(empty_url) == []
    with Store.open(empty_url, upgrade=False) as st:
        st.ping()
        st.tenants.ensure("acme")
        assert st.revision() == head_revision()


def test_processes_starting_together_migrate_once(empty_url: str) -> None:
    """Without the migration lock SQLite fails ("database is locked") and PostgreSQL deadlocks here."""
    errors: list[BaseException] = []
    stores = [Store(empty_url) for _ in range(4)]
    barrier = threading.Barrier(len(stores))

    def start(st: Store) -> None:
        barrier.wait()
        try:
            migrate(st.db)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(st,), daemon=True) for st in stores]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=60)
    assert not any(th.is_alive() for th in threads), "migrations deadlocked"
    for st in stores:
        st.close()
    assert errors == [] and current_revision(empty_url) == head_revision()


def test_open_without_upgrade_refuses_an_old_schema(empty_url: str) -> None:
    with pytest.raises(StoreError, match="run the migrations"):
        Store.open(empty_url, upgrade=False)


def test_sqlite_pragmas_and_default_file(tmp_path: Path) -> None:
    u = f"sqlite:///{tmp_path / 'p.db'}"
    with Store.open(StoreSettings(url=u, busy_timeout_s=7.5)) as st, st.db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 7500
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
    assert default_url(tmp_path) == f"sqlite:///{tmp_path.resolve() / 'opsmind.db'}"


def test_bad_urls_and_unreachable_database(tmp_path: Path) -> None:
    for bad in ("not a url", "mysql://x@y/z", f"sqlite:///{tmp_path}/missing/dir/x.db", "sqlite+aiosqlite:///x"):
        with pytest.raises(ConfigError):
            Store(bad)
    assert Store("postgres://u@127.0.0.1:1/db").db.url.drivername == "postgresql+psycopg"
    with Store(StoreSettings(url="postgresql://u@127.0.0.1:1/db", busy_timeout_s=1)) as st, \
            pytest.raises(StoreError, match=r"127\.0\.0\.1") as info:
        st.tenants.list()
    assert "\n" not in str(info.value)
    with Store("postgresql://u@127.0.0.1:1/db") as st, pytest.raises(StoreError):
        st.ping()


# ---- tenants and tokens -----------------------------------------------------------------------------------------

def test_tenants(store: Store) -> None:
    t = f"t-{uuid.uuid4().hex[:10]}"
    rec = store.tenants.create(t, "ACME Corp")
    assert rec.name == "ACME Corp" and rec.created_at == T0
    assert store.tenants.ensure(t) == rec  # idempotent
    with pytest.raises(ConflictError):
        store.tenants.create(t)
    assert t in {x.id for x in store.tenants.list()}
    for bad in ("", "Upper", "has space", 7, "x" * 65):
        with pytest.raises(DataError, match="tenant"):
            store.tenants.ensure(bad)  # type: ignore[arg-type]
    sid = _series(store, t)
    store.samples.insert(t, sid, [T0], [1.0])
    store.tenants.delete(t)  # deletes everything it owns
    with pytest.raises(NotFoundError):
        store.tenants.get(t)
    assert _count(store, "SELECT count(*) FROM samples WHERE series_id = :s", s=sid) == 0
    with pytest.raises(NotFoundError, match="tenant"):
        store.series.upsert(t, "x")


def test_tokens(store: Store, tenant: str, other: str, clock: Clock) -> None:
    rec, secret = store.tokens.create(tenant, "ci", ["write"], expires_at=T0 + 3600)
    assert secret.startswith("om_") and len(secret) > 40 and rec.prefix == secret[:8]
    with store.db.engine.connect() as conn:
        stored = conn.execute(text("SELECT token_hash, prefix FROM api_tokens WHERE id = :i"), {"i": rec.id}).one()
    assert secret not in stored[0] and stored[0] != secret  # only the hash is kept
    who = store.tokens.authenticate(secret, scope="read")
    assert who.tenant == tenant and who.allows("write") and who.allows("read") and not who.allows("admin")
    assert who.last_used_at == T0
    with pytest.raises(AuthError, match="lacks the 'admin' scope"):
        store.tokens.authenticate(secret, scope="admin")
    with pytest.raises(AuthError, match="expired"):
        store.tokens.authenticate(secret, now=T0 + 3600)
    with pytest.raises(AuthError, match="unknown"):
        store.tokens.authenticate(secret + "x")
    with pytest.raises(AuthError, match="no API token"):
        store.tokens.authenticate("")
    with pytest.raises(NotFoundError):  # another tenant can neither see nor revoke it
        store.tokens.revoke(other, rec.id)
    assert store.tokens.list(other) == []
    store.tokens.revoke(tenant, rec.id)
    with pytest.raises(AuthError, match="revoked"):
        store.tokens.authenticate(secret)
    with pytest.raises(DataError, match="unknown scope"):
        store.tokens.create(tenant, "bad", ["root"])  # type: ignore[list-item]
    _, admin_secret = store.tokens.create(tenant, "ops", "admin")
    assert store.tokens.authenticate(admin_secret, scope="write").allows("admin")
    assert [t.name for t in store.tokens.list(tenant)] == ["ci", "ops"]


# ---- series and samples -----------------------------------------------------------------------------------------

def test_series_identity_and_listing(store: Store, tenant: str, other: str) -> None:
    a = store.series.upsert(tenant, "http_requests", {"service": "checkout", "code": "200", "empty": ""})
    again = store.series.upsert(tenant, None, {"__name__": "http_requests", "code": "200", "service": "checkout"})
    assert again.id == a.id and a.labels == {"service": "checkout", "code": "200"} and a.service == "checkout"
    b = store.series.upsert(tenant, "http_requests", {"service": "checkout", "code": "500"})
    c = store.series.upsert(tenant, "cpu", {"job": "payment"})
    assert c.service == "payment" and len({a.id, b.id, c.id}) == 3
    assert store.series.upsert(tenant, "cpu", {"job": "payment"}, service="payments").service == "payments"
    assert [s.id for s in store.series.list(tenant, name="http_requests")] == [a.id, b.id]
    assert [s.id for s in store.series.list(tenant, match={"code": "500"})] == [b.id]
    assert [s.id for s in store.series.list(tenant, service="payments")] == [c.id]
    assert store.series.services(tenant) == ["checkout", "payments"]
    assert store.series.find(tenant, "http_requests", {"code": "200", "service": "checkout"}) == a
    assert store.series.find(tenant, "http_requests", {"code": "404"}) is None
    ids = store.series.resolve(tenant, [("cpu", {"job": "payment"}), ("mem", {"job": "payment"})] * 2)
    assert ids[0] == c.id and ids[1] == ids[3] and len(set(ids)) == 2
    stale = store.series.mark_stale(tenant, a.id, T0)
    assert stale.stale_since == T0 and store.series.mark_stale(tenant, a.id, None).stale_since is None
    assert a.selector == 'http_requests{code="200",service="checkout"}'
    # the same identity in another tenant is another series
    assert store.series.upsert(other, "http_requests", {"service": "checkout", "code": "200"}).id != a.id
    for bad_name, bad_labels in [("x", {"bad-name": "v"}), ("x", {"a": 1}), (None, {"a": "b"}),
                                 ("x", {"__name__": "y"}), ("x", ["a"])]:
        with pytest.raises(DataError):
            store.series.upsert(tenant, bad_name, bad_labels)  # type: ignore[arg-type]


def test_samples_are_idempotent_and_round_trip(store: Store, tenant: str) -> None:
    sid = _series(store, tenant)
    ts = T0 + np.arange(10) * 15.0
    vals = np.arange(10, dtype=float)
    vals[3] = np.nan
    assert store.samples.insert(tenant, sid, ts, vals) == 10
    assert store.samples.insert(tenant, sid, ts, vals + 100) == 0  # a replay: nothing new, first value kept
    assert store.samples.insert(tenant, sid, [ts[-1] + 15, ts[-1] + 15], [1.0, 2.0]) == 1  # duplicate in a batch
    got = store.samples.read(tenant, sid)
    assert len(got) == 11 and store.samples.count(tenant, sid) == 11
    np.testing.assert_array_equal(got.ts[:10], ts)
    np.testing.assert_array_equal(got.values[:10], vals)  # NaN comes back as NaN
    assert got.values[10] == 1.0
    part = store.samples.read(tenant, sid, start=ts[2], end=ts[4])
    np.testing.assert_array_equal(part.ts, ts[2:5])
    np.testing.assert_array_equal(store.samples.read(tenant, sid, limit=2).ts, [ts[9], ts[9] + 15])
    assert store.samples.last(tenant, sid) == (ts[9] + 15, 1.0)
    # datetime64 timestamps are the same samples
    assert store.samples.insert(tenant, sid, (ts * 1e9).astype("datetime64[ns]"), vals) == 0
    assert store.samples.delete_before(tenant, sid, ts[5]) == 5


def test_ingest_and_frame(store: Store, tenant: str) -> None:
    batches = [
        SeriesSamples("rps", {"service": "checkout"}, [T0, T0 + 60], [10.0, 12.0]),
        SeriesSamples(None, {"__name__": "latency", "service": "checkout"}, [T0 + 60, T0 + 120], [0.1, 0.2]),
    ]
    res = store.samples.ingest(tenant, batches)
    assert (res.series, res.samples, res.inserted, res.duplicates) == (2, 4, 4, 0)
    again = store.samples.ingest(tenant, batches)
    assert (again.inserted, again.duplicates) == (0, 4)
    ids = [s.id for s in store.series.list(tenant)]
    frame = store.samples.frame(tenant, ids)
    assert isinstance(frame, Frame) and frame.columns == ("rps", "latency") and len(frame) == 3
    np.testing.assert_array_equal(frame.values[:, 0], [10.0, 12.0, np.nan])
    np.testing.assert_array_equal(frame.values[:, 1], [np.nan, 0.1, 0.2])
    assert frame.timestamps[0] == np.datetime64(int(T0), "s")
    many = store.samples.insert_many(tenant, [ids[0], ids[1], ids[0]], [T0 + 180] * 3, [1.0, 2.0, 3.0])
    assert many == 2
    assert store.samples.ingest(tenant, []).samples == 0


def test_series_deleted_by_another_process(url: str) -> None:
    """Deleting a series deletes its samples; another store notices once its caches expire and recreates it."""
    with Store(StoreSettings(url=url, cache_ttl_s=0.05)) as engine, Store(url) as api:
        tenant = _new_tenant(engine)
        batch = [SeriesSamples("rps", {"service": "checkout"}, [T0], [1.0])]
        engine.samples.ingest(tenant, batch)
        (old,) = api.series.list(tenant)
        api.series.delete(tenant, old.id)
        assert _count(api, "SELECT count(*) FROM samples WHERE series_id = :s", s=old.id) == 0
        time.sleep(0.1)
        assert engine.samples.ingest(tenant, batch).inserted == 1
        (new,) = engine.series.list(tenant)
        assert new.id != old.id and engine.samples.count(tenant, new.id) == 1


def test_samples_bad_input(store: Store, tenant: str, other: str) -> None:
    sid = _series(store, tenant)
    with pytest.raises(DataError, match=r"row 1.*ts"):
        store.samples.insert(tenant, sid, [T0, "yesterday"], [1.0, 2.0])  # type: ignore[list-item]
    with pytest.raises(DataError, match=r"row 1.*value"):
        store.samples.insert(tenant, sid, [T0, T0 + 1], [1.0, "high"])  # type: ignore[list-item]
    with pytest.raises(DataError, match="not finite"):
        store.samples.insert(tenant, sid, [T0, np.inf], [1.0, 2.0])
    with pytest.raises(DataError, match="2 timestamps"):
        store.samples.insert(tenant, sid, [T0, T0 + 1], [1.0])
    with pytest.raises(DataError, match="series_id"):
        store.samples.insert(tenant, "x", [T0], [1.0])  # type: ignore[arg-type]
    with pytest.raises(NotFoundError, match="series 999999999"):
        store.samples.insert(tenant, 999_999_999, [T0], [1.0])
    theirs = _series(store, other)
    with pytest.raises(NotFoundError):  # all or nothing: one foreign series fails the whole batch
        store.samples.insert_many(tenant, [sid, theirs], [T0, T0], [1.0, 2.0])
    assert store.samples.count(tenant, sid) == 0 and store.samples.count(other, theirs) == 0
    with pytest.raises(DataError, match="series 1"):
        store.samples.ingest(tenant, [SeriesSamples("ok", {}, [T0], [1.0]),
                                      SeriesSamples("bad", {"a b": "c"}, [T0], [1.0])])


def test_replay_after_restart_creates_no_duplicates(url: str, clock: Clock) -> None:
    """What the engine does after a kill: reopen the store and replay its input."""

    def run(st: Store, tenant: str) -> tuple[int, int]:
        batch = [SeriesSamples("rps", {"service": "checkout", "pod": f"p{i}"}, T0 + np.arange(50.0), np.ones(50))
                 for i in range(20)]
        inserted = st.samples.ingest(tenant, batch).inserted
        sid = st.series.find(tenant, "rps", {"service": "checkout", "pod": "p0"})
        assert sid is not None
        st.anomalies.record(tenant, sid.id, T0 + 10, 0.99, severity="critical")
        corr = IncidentCorrelator(history=st.incidents.load(tenant))
        for a in (_alert("HighLatency", "checkout", T0), _alert("Errors", "checkout", T0 + 30)):
            st.incidents.save(tenant, corr.add(a))
        return inserted, len(corr.incidents)

    with Store(url, now=clock) as first:
        tenant = _new_tenant(first)
        assert run(first, tenant) == (1000, 1)
    with Store(url, now=clock) as second:  # a new process: empty caches
        assert run(second, tenant) == (0, 1)
        assert second.anomalies.count(tenant) == 1
        assert second.incidents.count(tenant) == 1
        assert _count(second, "SELECT count(*) FROM incident_alerts a JOIN incidents i ON a.incident_id = i.id "
                              "WHERE i.tenant_id = :t", t=tenant) == 2
        assert _count(second, "SELECT count(*) FROM series WHERE tenant_id = :t", t=tenant) == 20


_WRITER = """
import sys
from opsmind.store import SeriesSamples, Store
url, tenant = sys.argv[1], sys.argv[2]
store = Store(url)
for i in range(100_000):
    store.samples.ingest(tenant, [SeriesSamples("rps", {"pod": str(p)}, [1e9 + i], [float(i)]) for p in range(50)])
    print(i, flush=True)  # acknowledged: ingest() returned, so the batch is committed
"""


def test_kill_9_loses_no_acknowledged_sample(url: str) -> None:
    with Store(url) as st:
        tenant = _new_tenant(st)
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, url, tenant], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    acked = -1
    try:
        for line in proc.stdout:
            acked = int(line)
            if acked >= 20:
                break
    finally:
        proc.kill()  # SIGKILL: no clean-up, mid-transaction
        proc.wait(timeout=30)
    assert acked >= 20, "the writer did not start"
    with Store(url) as st:
        series = st.series.list(tenant)
        assert len(series) == 50
        for s in series:
            got = st.samples.read(tenant, s.id)
            assert got.ts.shape[0] >= acked + 1  # every acknowledged batch is there (maybe one more)
            np.testing.assert_array_equal(got.values, np.arange(got.ts.shape[0]))  # in order, no gaps
        # the restarted writer replays from the start: nothing is added twice
        replay = [SeriesSamples("rps", {"pod": str(p)}, [1e9 + i], [float(i)]) for p in range(50)
                  for i in range(acked + 1)]
        assert st.samples.ingest(tenant, replay).inserted == 0


# ---- findings ---------------------------------------------------------------------------------------------------

def test_anomalies(store: Store, tenant: str, other: str) -> None:
    sid = _series(store, tenant)
    a = store.anomalies.record(tenant, sid, T0, 0.9, severity="medium", score=3.2, detector="mad",
                               evidence={"window": np.arange(3), "z": np.float64(4.5)})
    assert a.evidence == {"window": [0, 1, 2], "z": 4.5} and a.created_at == T0
    b = store.anomalies.record(tenant, sid, T0, 0.97, severity="high")  # same (series, ts): updated in place
    assert b.id == a.id and b.probability == 0.97 and b.severity == "high"
    th = Thresholder(threshold=0.5, refractory_s=None, refractory=0)
    c = store.anomalies.record_decision(tenant, sid, T0 + 60, th.process_one(T0 + 60, 0.999), detector="opsmind")
    assert c.severity == "critical" and not c.suppressed
    assert [x.id for x in store.anomalies.list(tenant)] == [c.id, a.id]
    assert [x.id for x in store.anomalies.list(tenant, min_probability=0.98)] == [c.id]
    assert [x.id for x in store.anomalies.list(tenant, service="checkout", until=T0)] == [a.id]
    assert store.anomalies.list(tenant, service="nope") == []
    with pytest.raises(DataError, match="probability"):
        store.anomalies.record(tenant, sid, T0, 1.5)
    with pytest.raises(DataError, match="JSON"):
        store.anomalies.record(tenant, sid, T0, 0.5, evidence={"x": object()})
    with pytest.raises(DataError, match="ts"):
        store.anomalies.record(tenant, sid, "now", 0.5)  # type: ignore[arg-type]
    with pytest.raises(NotFoundError):
        store.anomalies.record(other, sid, T0, 0.5)  # their tenant, my series
    assert store.anomalies.count(tenant) == 2


def test_anomalies_from_a_real_detection(store: Store, tenant: str) -> None:
    ts = (T0 + np.arange(800) * 60).astype("datetime64[s]")
    x = np.c_[np.sin(np.arange(800) / 8.0), np.cos(np.arange(800) / 8.0)]
    x[700, 1] = 9.0
    det = detect_frame(Frame.from_arrays(ts, x, ["cpu", "latency"]), thresholder=Thresholder(refractory_s=600.0))
    ids = {"cpu": _series(store, tenant, "cpu"), "latency": _series(store, tenant, "latency")}
    items = anomalies_from_detection(det, ids)
    assert any(i.series_id == ids["latency"] and i.ts == T0 + 700 * 60 for i in items)
    assert store.anomalies.record_many(tenant, items) == len(items)
    assert store.anomalies.record_many(tenant, items) == len(items)  # a replay
    assert store.anomalies.count(tenant) == len(items)
    spike = store.anomalies.list(tenant, series_id=ids["latency"], since=T0 + 700 * 60, until=T0 + 700 * 60)
    assert len(spike) == 1 and spike[0].evidence["attributed"] == ["latency"]
    with pytest.raises(DataError, match="AnomalyIn"):
        store.anomalies.record_many(tenant, [{"series_id": 1}])  # type: ignore[list-item]


def test_forecasts(store: Store, tenant: str, other: str) -> None:
    sid = _series(store, tenant)
    grid = (np.datetime64(int(T0), "s") + np.arange(1, 4) * np.timedelta64(300, "s")).astype("datetime64[ns]")
    mean = np.array([1.0, np.nan, 3.0])
    fc = Forecast(grid, mean, {80: (mean - 1, mean + 1), 95: (mean - 2, mean + 2)}, "seasonal_naive",
                  ("season 1 d",))
    rec = store.forecasts.save(tenant, sid, fc)
    assert rec.issued_at == T0 and rec.horizon == 3 and rec.intervals[95][1][2] == 5.0
    back = rec.to_forecast()
    np.testing.assert_array_equal(back.timestamps, grid)
    np.testing.assert_array_equal(back.mean, mean)
    np.testing.assert_array_equal(back.upper(80), mean + 1)
    assert back.notes == ("season 1 d",) and back.method == "seasonal_naive"
    assert store.forecasts.save(tenant, sid, fc).id == rec.id  # a replay
    later = store.forecasts.save(tenant, sid, fc, issued_at=T0 + 300)
    assert store.forecasts.latest(tenant, sid).id == later.id
    assert [f.id for f in store.forecasts.list(tenant)] == [later.id, rec.id]
    assert store.forecasts.get(tenant, rec.id) == rec
    with pytest.raises(NotFoundError):
        store.forecasts.get(other, rec.id)
    with pytest.raises(DataError, match="not a Forecast"):
        store.forecasts.save(tenant, sid, {"mean": [1.0]})
    with pytest.raises(DataError, match="issued_at"):
        store.forecasts.save(tenant, sid, Forecast(grid[:1], mean[:1], {}, "naive"))


@dataclass(frozen=True)
class _Decision:  # a stand-in for scale/rightsize results: any dataclass or pydantic model is stored whole
    policy: str
    current: int
    desired: int
    evidence: dict[str, float] = field(default_factory=dict)


def test_recommendations(store: Store, tenant: str, other: str) -> None:
    d = _Decision("predictive", 3, 5, {"forecast_p95": 812.0, "nan": float("nan")})
    r = store.recommendations.save(tenant, "scaling", "deploy/checkout", T0, summary="scale out 3 -> 5",
                                   service="checkout", payload=d, evidence=d.evidence)
    assert r.payload == {"policy": "predictive", "current": 3, "desired": 5,
                         "evidence": {"forecast_p95": 812.0, "nan": None}} and r.status == "open"
    store.recommendations.set_status(tenant, r.id, "accepted")
    again = store.recommendations.save(tenant, "scaling", "deploy/checkout", T0, summary="scale out 3 -> 6")
    assert again.id == r.id and again.summary == "scale out 3 -> 6" and again.status == "accepted"
    rs = store.recommendations.save(tenant, "rightsizing", "deploy/checkout/app", T0, savings_per_month=42.5)
    assert [x.id for x in store.recommendations.list(tenant, kind="rightsizing")] == [rs.id]
    assert [x.id for x in store.recommendations.list(tenant, status="accepted")] == [r.id]
    with pytest.raises(NotFoundError):
        store.recommendations.set_status(other, r.id, "dismissed")
    with pytest.raises(DataError, match="status"):
        store.recommendations.set_status(tenant, r.id, "done")  # type: ignore[arg-type]
    with pytest.raises(DataError, match="kind"):
        store.recommendations.save(tenant, "Scaling Up", "x", T0)


def test_incidents_round_trip_and_replay(store: Store, tenant: str, other: str) -> None:
    corr = IncidentCorrelator()
    inc = corr.add(_alert("HighLatency", "checkout", T0, annotations={"summary": "p99 high"}))
    corr.add(_alert("Errors", "checkout", T0 + 60))
    corr.attach_rca(inc, "payment", {"ranking": [("payment", 0.8), ("checkout", 0.2)]})
    rec = store.incidents.save(tenant, inc)
    assert rec.key == inc.id and len(rec.alerts) == 2 and rec.root_cause == "payment"
    assert rec.rca == {"ranking": [["payment", 0.8], ["checkout", 0.2]]}
    assert store.incidents.save(tenant, inc).id == rec.id  # a replay
    corr.add(_alert("HighLatency", "checkout", T0, annotations={"summary": "p99 high"}), at=T0 + 120)  # a repeat
    corr.add(Alert(labels={"alertname": "Errors", "service": "checkout"}, starts_at=T0 + 60, ends_at=T0 + 200,
                   status="resolved"), at=T0 + 200)
    rec2 = store.incidents.save(tenant, inc)
    assert rec2.id == rec.id and len(rec2.alerts) == 2 and rec2.updated_at == T0
    by_fp = {a.fingerprint: a for a in rec2.alerts}
    assert by_fp[_alert("HighLatency", "checkout", T0).fingerprint].repeats == 1
    assert by_fp[_alert("Errors", "checkout", T0).fingerprint].status == "resolved"
    assert _count(store, "SELECT count(*) FROM incident_alerts WHERE incident_id = :i", i=rec.id) == 2
    # a restarted correlator continues from the stored history: the same alert joins the same incident
    restored = store.incidents.load(tenant)
    assert [i.id for i in restored] == [inc.id] and restored[0].alerts.keys() == inc.alerts.keys()
    assert restored[0].title == inc.title and restored[0].priority == inc.priority
    again = IncidentCorrelator(history=restored).add(_alert("HighLatency", "checkout", T0 + 300))
    assert again.id == inc.id
    fp = _alert("HighLatency", "checkout", T0).fingerprint
    found = store.incidents.find_by_fingerprint(tenant, fp)
    assert found is not None and found.key == inc.id
    assert store.incidents.find_by_fingerprint(other, fp) is None
    assert [i.key for i in store.incidents.list(tenant, status="open", service="checkout")] == [inc.id]
    assert store.incidents.list(tenant, service="payment") == []
    with pytest.raises(NotFoundError):
        store.incidents.get(other, inc.id)
    with pytest.raises(DataError, match="status"):
        store.incidents.list(tenant, status="burning")
    with pytest.raises(DataError, match="not an Incident"):
        store.incidents.save(tenant, {"id": "inc-x"})
    store.incidents.delete(tenant, inc.id)
    assert store.incidents.count(tenant) == 0
    with pytest.raises(NotFoundError):
        store.incidents.delete(tenant, inc.id)


def test_feedback(store: Store, tenant: str, other: str) -> None:
    sid = _series(store, tenant)
    a = store.anomalies.record(tenant, sid, T0, 0.9)
    f = store.feedback.mark(tenant, a.id, "false_positive", "alice", comment="deploy")
    assert (f.series_id, f.ts, f.anomaly_id, f.author) == (sid, T0, a.id, "alice")
    again = store.feedback.mark(tenant, a.id, "true_positive", "alice")  # alice changes her mind
    assert again.id == f.id and again.verdict == "true_positive"
    store.feedback.mark(tenant, a.id, "false_positive", "bob")
    miss = store.feedback.report_missed(tenant, sid, T0 + 600, "alice")
    assert miss.anomaly_id is None and miss.verdict == "missed"
    assert store.feedback.counts(tenant, sid) == {"true_positive": 1, "false_positive": 1, "missed": 1}
    assert len(store.feedback.list(tenant, anomaly_id=a.id)) == 2
    assert [x.author for x in store.feedback.list(tenant, verdict="missed")] == ["alice"]
    with pytest.raises(NotFoundError, match="anomaly"):
        store.feedback.mark(other, a.id, "true_positive", "mallory")
    with pytest.raises(DataError, match="verdict"):
        store.feedback.mark(tenant, a.id, "maybe", "alice")  # type: ignore[arg-type]
    with pytest.raises(DataError, match="by"):
        store.feedback.mark(tenant, a.id, "true_positive", "")


@dataclass
class _Model:
    mean: float
    history: list[float]


def test_model_state_versions(store: Store, tenant: str, other: str) -> None:
    sid = _series(store, tenant)
    v1 = store.models.save(tenant, sid, "detector", _Model(1.0, [1.0]), kind="mad", trained_at=T0,
                           train_start=T0 - DAY, train_end=T0, n_train=1440, backtest_error=0.12,
                           backtest_metric="f1_loss", spec={"type": "mad", "params": {"window": 100}})
    assert v1.version == 1 and v1.load() == _Model(1.0, [1.0])
    same = store.models.save(tenant, sid, "detector", _Model(1.0, [1.0]), kind="mad", trained_at=T0,
                             train_start=T0 - DAY, train_end=T0)
    assert same.id == v1.id  # retrained on the same data to the same state: no new version
    v2 = store.models.save(tenant, sid, "detector", _Model(2.0, [1.0, 3.0]), kind="mad", trained_at=T0 + DAY,
                           train_start=T0, train_end=T0 + DAY)
    js = store.models.save(tenant, sid, "forecaster", {"season": 24, "level": np.float64(3.5)}, kind="ets",
                           trained_at=T0, state_format="json")
    assert v2.version == 2 and js.version == 1 and js.load() == {"level": 3.5, "season": 24}
    latest = store.models.latest(tenant, sid, "detector")
    assert latest.version == 2 and latest.load() == _Model(2.0, [1.0, 3.0])
    assert store.models.get(tenant, sid, "detector", 1).load() == _Model(1.0, [1.0])
    hist = store.models.history(tenant, sid, "detector")
    assert [h.version for h in hist] == [2, 1] and hist[1].backtest_error == 0.12 and hist[1].spec["params"]
    with pytest.raises(DataError, match="without its state"):
        hist[0].load()
    with pytest.raises(NotFoundError):
        store.models.latest(other, sid, "detector")
    with pytest.raises(NotFoundError, match="version 9"):
        store.models.get(tenant, sid, "detector", 9)
    with pytest.raises(DataError, match="pickled"):
        store.models.save(tenant, sid, "detector", threading.Lock(), kind="x", trained_at=T0)
    with pytest.raises(DataError, match="train_end"):
        store.models.save(tenant, sid, "detector", 1, kind="x", trained_at=T0, train_start=T0, train_end=T0 - 1)
    assert store.models.prune(tenant, sid, "detector", keep=1) == 1
    assert [(h.role, h.version) for h in store.models.history(tenant, sid)] == [("detector", 2), ("forecaster", 1)]
    assert pickle.loads(store.models.latest(tenant, sid, "detector").state or b"") == _Model(2.0, [1.0, 3.0])


def test_audit_log(store: Store, tenant: str, other: str, clock: Clock) -> None:
    store.audit.record(tenant, "alice", "token.create", target="ci", reason="new pipeline")
    clock.t += 10
    store.audit.record(tenant, "engine", "scale", target="checkout", reason="forecast p95 above capacity",
                       result="dry_run", details={"from": 3, "to": 5})
    log = store.audit.list(tenant)
    assert [e.action for e in log] == ["scale", "token.create"] and log[0].at == T0 + 10
    assert log[0].details == {"from": 3, "to": 5} and log[0].result == "dry_run"
    assert [e.actor for e in store.audit.list(tenant, actor="alice")] == ["alice"]
    assert [e.action for e in store.audit.list(tenant, since=T0 + 5)] == ["scale"]
    assert store.audit.list(other) == []
    with pytest.raises(DataError, match="actor"):
        store.audit.record(tenant, "", "x")
    with pytest.raises(DataError, match="limit"):
        store.audit.list(tenant, limit=0)


# ---- isolation, transactions, retention, concurrency -----------------------------------------------------------

def test_tenant_isolation(store: Store, tenant: str, other: str) -> None:
    """Everything tenant A writes is invisible to tenant B, by listing and by id."""
    sid = _series(store, tenant)
    store.samples.insert(tenant, sid, [T0], [1.0])
    an = store.anomalies.record(tenant, sid, T0, 0.9)
    grid = np.array([np.datetime64(int(T0) + 60, "s")]).astype("datetime64[ns]")
    fc = store.forecasts.save(tenant, sid, Forecast(grid, np.ones(1), {}, "naive"), issued_at=T0)
    rec = store.recommendations.save(tenant, "scaling", "checkout", T0)
    inc = IncidentCorrelator().add(_alert("Down", "checkout", T0))
    store.incidents.save(tenant, inc)
    store.feedback.mark(tenant, an.id, "true_positive", "alice")
    store.models.save(tenant, sid, "detector", {"a": 1}, kind="mad", trained_at=T0, state_format="json")
    store.audit.record(tenant, "alice", "x")
    tok, _ = store.tokens.create(tenant, "t")

    assert store.series.list(other) == [] and store.series.services(other) == []
    assert store.anomalies.list(other) == [] and store.anomalies.count(other) == 0
    assert store.forecasts.list(other) == [] and store.recommendations.list(other) == []
    assert store.incidents.list(other) == [] and store.incidents.load(other) == []
    assert store.feedback.list(other) == [] and store.audit.list(other) == [] and store.tokens.list(other) == []
    for call in (
        lambda: store.series.get(other, sid), lambda: store.samples.read(other, sid),
        lambda: store.samples.count(other, sid), lambda: store.samples.frame(other, [sid]),
        lambda: store.anomalies.get(other, an.id), lambda: store.forecasts.get(other, fc.id),
        lambda: store.forecasts.latest(other, sid), lambda: store.recommendations.get(other, rec.id),
        lambda: store.incidents.get(other, inc.id), lambda: store.feedback.counts(other, sid),
        lambda: store.models.history(other, sid), lambda: store.tokens.get(other, tok.id),
        lambda: store.series.delete(other, sid), lambda: store.series.mark_stale(other, sid, T0),
    ):
        with pytest.raises(NotFoundError):
            call()
    with pytest.raises(NotFoundError, match="tenant"):
        store.anomalies.list("no-such-tenant")
    # and the data is still there for its owner
    assert store.samples.count(tenant, sid) == 1 and store.anomalies.count(tenant) == 1


def test_transaction_is_all_or_nothing(store: Store, tenant: str) -> None:
    sid = _series(store, tenant)
    with pytest.raises(RuntimeError), store.transaction() as tx:
        tx.samples.insert(tenant, sid, [T0], [1.0])
        tx.anomalies.record(tenant, sid, T0, 0.9)
        new_sid = tx.series.upsert(tenant, "created_inside").id
        raise RuntimeError("crash before commit")
    assert store.samples.count(tenant, sid) == 0 and store.anomalies.count(tenant) == 0
    assert store.series.find(tenant, "created_inside") is None
    # the id cached inside the failed transaction is not reused as if it existed
    sid2 = store.series.upsert(tenant, "created_inside").id
    assert store.samples.insert(tenant, sid2, [T0], [1.0]) == 1
    assert new_sid is not None
    with store.transaction() as tx:
        tx.samples.insert(tenant, sid, [T0], [1.0])
        with tx.transaction() as inner:  # nested: joins
            inner.audit.record(tenant, "engine", "ingest")
    assert store.samples.count(tenant, sid) == 1 and len(store.audit.list(tenant)) == 1


def test_retention(store: Store, tenant: str, other: str) -> None:
    now = T0 + 100 * DAY
    sids = [_series(store, tenant, pod=str(i)) for i in range(2)]
    days = np.arange(0, 100, dtype=float)  # one sample a day for 100 days
    for sid in sids:
        store.samples.insert(tenant, sid, T0 + days * DAY, days)
    theirs = _series(store, other)
    store.samples.insert(other, theirs, T0 + days * DAY, days)
    for d in (1, 50, 95):
        store.anomalies.record(tenant, sids[0], T0 + d * DAY, 0.9)
        store.audit.record(tenant, "engine", "x", at=T0 + d * DAY)
    old = IncidentCorrelator().add(_alert("Down", "checkout", T0 + DAY, ends_at=T0 + DAY + 60, status="resolved"))
    still_open = IncidentCorrelator().add(_alert("Slow", "payment", T0 + 2 * DAY))
    assert old.status == "resolved" and still_open.status == "open"
    store.incidents.save_many(tenant, [old, still_open])
    for v, d in enumerate((1, 2, 3)):
        store.models.save(tenant, sids[0], "detector", {"v": v}, kind="mad", trained_at=T0 + d * DAY,
                          state_format="json")
    policy = RetentionPolicy(samples=30, anomalies=30, incidents=30, model_states=30, audit_log=10)
    counts = store.retention.apply(tenant, policy, now=now, batch_size=7)  # small batches: many rounds
    assert counts == {"samples": 2 * 70, "anomalies": 2, "incidents": 1, "model_states": 2, "audit_log": 2}
    for sid in sids:
        assert store.samples.read(tenant, sid).ts.min() == T0 + 70 * DAY
    assert store.samples.count(other, theirs) == 100  # another tenant's rows are not touched
    assert [i.key for i in store.incidents.list(tenant)] == [still_open.id]  # open incidents are kept
    assert [m.version for m in store.models.history(tenant, sids[0])] == [3]  # the latest version is kept
    assert store.retention.apply(tenant, policy, now=now) == dict.fromkeys(counts, 0)
    assert store.retention.apply_all(RetentionPolicy(samples=50), now=now)["samples"] >= 50
    assert store.samples.count(other, theirs) == 50
    with pytest.raises(Exception, match="greater than 0"):
        RetentionPolicy(samples=0)


def test_concurrent_writers_on_sqlite(tmp_path: Path) -> None:
    """Two stores on one SQLite file (as the engine and the API in two processes) write at the same time."""
    u = f"sqlite:///{tmp_path / 'c.db'}"
    with Store.open(u) as a, Store(u) as b:
        a.tenants.ensure("acme")
        errors: list[BaseException] = []

        def writer(st: Store, name: str) -> Callable[[], None]:
            def run() -> None:
                try:
                    for i in range(30):
                        st.samples.ingest("acme", [SeriesSamples(name, {"i": str(i % 3)}, [T0 + i], [1.0])])
                        st.audit.record("acme", name, "write")
                except BaseException as exc:  # pragma: no cover - reported below
                    errors.append(exc)
            return run

        threads = [threading.Thread(target=writer(st, n)) for st, n in ((a, "a"), (b, "b"), (a, "c"))]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert errors == []
        assert len(a.audit.list("acme", limit=1000)) == 90
        assert sum(a.samples.count("acme", s.id) for s in a.series.list("acme")) == 90
