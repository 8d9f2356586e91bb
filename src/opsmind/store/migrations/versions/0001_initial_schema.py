"""The initial schema: tenants, API tokens, series and samples, anomalies, forecasts, recommendations, incidents
and their alerts, feedback, model states, audit log.

Revision ID: 0001
Revises:
Create Date: 2026-11-22

Types are spelled out here (not imported from the models) so this migration keeps building the same schema
whatever later code does: times are BIGINT milliseconds, JSON is JSONB on PostgreSQL, ids BIGINT (INTEGER, the
row id, on SQLite).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MILLIS = sa.BigInteger()
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "tenants",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", MILLIS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tenants"))
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("scopes", sa.String(length=32), nullable=False),
        sa.Column("created_at", MILLIS, nullable=False),
        sa.Column("expires_at", MILLIS, nullable=True),
        sa.Column("revoked_at", MILLIS, nullable=True),
        sa.Column("last_used_at", MILLIS, nullable=True),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"],
            name=op.f("fk_api_tokens_tenant_id_tenants"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash"))
    )
    op.create_index(op.f("ix_api_tokens_tenant_id"), "api_tokens", ["tenant_id"])
    op.create_table(
        "audit_log",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("at", MILLIS, nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("action", sa.String(length=100), nullable=False),
        sa.Column("target", sa.String(length=255), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("result", sa.String(length=32), nullable=False),
        sa.Column("details", JSON_TYPE, nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"],
            name=op.f("fk_audit_log_tenant_id_tenants"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log"))
    )
    op.create_index(op.f("ix_audit_log_tenant_id_at"), "audit_log", ["tenant_id", "at"])
    op.create_table(
        "incidents",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("priority", sa.String(length=4), nullable=False),
        sa.Column("score", sa.Double(), nullable=False),
        sa.Column("severity", sa.Integer(), nullable=False),
        sa.Column("blast_radius", sa.Double(), nullable=False),
        sa.Column("slo_impact", sa.Double(), nullable=False),
        sa.Column("started_at", MILLIS, nullable=False),
        sa.Column("last_activity", MILLIS, nullable=False),
        sa.Column("resolved_at", MILLIS, nullable=True),
        sa.Column("services", JSON_TYPE, nullable=False),
        sa.Column("recurrence_of", sa.String(length=64), nullable=True),
        sa.Column("root_cause", sa.String(length=255), nullable=True),
        sa.Column("rca", JSON_TYPE, nullable=True),
        sa.Column("evidence", JSON_TYPE, nullable=False),
        sa.Column("created_at", MILLIS, nullable=False),
        sa.Column("updated_at", MILLIS, nullable=False),
        sa.CheckConstraint("status IN ('open', 'resolved', 'closed')", name=op.f('ck_incidents_status')),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"],
            name=op.f("fk_incidents_tenant_id_tenants"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incidents")),
        sa.UniqueConstraint("tenant_id", "key", name=op.f("uq_incidents_tenant_id_key"))
    )
    op.create_index(op.f("ix_incidents_tenant_id_started_at"), "incidents", ["tenant_id", "started_at"])
    op.create_index(op.f("ix_incidents_tenant_id_status"), "incidents", ["tenant_id", "status"])
    op.create_table(
        "series",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("labels", JSON_TYPE, nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("service", sa.String(length=200), nullable=True),
        sa.Column("created_at", MILLIS, nullable=False),
        sa.Column("stale_since", MILLIS, nullable=True),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"],
            name=op.f("fk_series_tenant_id_tenants"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_series")),
        sa.UniqueConstraint("tenant_id", "key", name=op.f("uq_series_tenant_id_key")),
        sqlite_autoincrement=True
    )
    op.create_index(op.f("ix_series_tenant_id_name"), "series", ["tenant_id", "name"])
    op.create_index(op.f("ix_series_tenant_id_service"), "series", ["tenant_id", "service"])
    op.create_table(
        "anomalies",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("series_id", BIG_ID, nullable=False),
        sa.Column("ts", MILLIS, nullable=False),
        sa.Column("probability", sa.Double(), nullable=False),
        sa.Column("score", sa.Double(), nullable=True),
        sa.Column("severity", sa.String(length=16), nullable=True),
        sa.Column("detector", sa.String(length=200), nullable=True),
        sa.Column("suppressed", sa.Boolean(), nullable=False),
        sa.Column("evidence", JSON_TYPE, nullable=False),
        sa.Column("created_at", MILLIS, nullable=False),
        sa.CheckConstraint("probability >= 0 AND probability <= 1", name=op.f("ck_anomalies_probability")),
        sa.ForeignKeyConstraint(["series_id"], ["series.id"],
            name=op.f("fk_anomalies_series_id_series"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"],
            name=op.f("fk_anomalies_tenant_id_tenants"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_anomalies")),
        sa.UniqueConstraint("series_id", "ts", name=op.f("uq_anomalies_series_id_ts"))
    )
    op.create_index(op.f("ix_anomalies_tenant_id_ts"), "anomalies", ["tenant_id", "ts"])
    op.create_table(
        "forecasts",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("series_id", BIG_ID, nullable=False),
        sa.Column("issued_at", MILLIS, nullable=False),
        sa.Column("method", sa.String(length=200), nullable=False),
        sa.Column("horizon", sa.Integer(), nullable=False),
        sa.Column("start", MILLIS, nullable=False),
        sa.Column("end", MILLIS, nullable=False),
        sa.Column("payload", JSON_TYPE, nullable=False),
        sa.Column("notes", JSON_TYPE, nullable=False),
        sa.Column("created_at", MILLIS, nullable=False),
        sa.ForeignKeyConstraint(["series_id"], ["series.id"],
            name=op.f("fk_forecasts_series_id_series"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"],
            name=op.f("fk_forecasts_tenant_id_tenants"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_forecasts")),
        sa.UniqueConstraint("series_id", "method", "issued_at", name=op.f("uq_forecasts_series_id_method_issued_at"))
    )
    op.create_index(op.f("ix_forecasts_tenant_id_issued_at"), "forecasts", ["tenant_id", "issued_at"])
    op.create_table(
        "incident_alerts",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("incident_id", BIG_ID, nullable=False),
        sa.Column("fingerprint", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("service", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("labels", JSON_TYPE, nullable=False),
        sa.Column("annotations", JSON_TYPE, nullable=False),
        sa.Column("generator_url", sa.Text(), nullable=False),
        sa.Column("starts_at", MILLIS, nullable=False),
        sa.Column("ends_at", MILLIS, nullable=True),
        sa.Column("first_seen", MILLIS, nullable=False),
        sa.Column("last_seen", MILLIS, nullable=False),
        sa.Column("repeats", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["incident_id"], ["incidents.id"],
            name=op.f("fk_incident_alerts_incident_id_incidents"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incident_alerts")),
        sa.UniqueConstraint("incident_id", "fingerprint", name=op.f("uq_incident_alerts_incident_id_fingerprint"))
    )
    op.create_index(op.f("ix_incident_alerts_fingerprint"), "incident_alerts", ["fingerprint"])
    op.create_table(
        "model_states",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("series_id", BIG_ID, nullable=False),
        sa.Column("role", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=200), nullable=False),
        sa.Column("spec", JSON_TYPE, nullable=False),
        sa.Column("trained_at", MILLIS, nullable=False),
        sa.Column("train_start", MILLIS, nullable=True),
        sa.Column("train_end", MILLIS, nullable=True),
        sa.Column("n_train", sa.Integer(), nullable=True),
        sa.Column("backtest_error", sa.Double(), nullable=True),
        sa.Column("backtest_metric", sa.String(length=64), nullable=True),
        sa.Column("state_format", sa.String(length=8), nullable=False),
        sa.Column("state", sa.LargeBinary(), nullable=False),
        sa.Column("state_sha256", sa.String(length=64), nullable=False),
        sa.Column("created_at", MILLIS, nullable=False),
        sa.CheckConstraint("state_format IN ('pickle', 'json')", name=op.f('ck_model_states_state_format')),
        sa.ForeignKeyConstraint(["series_id"], ["series.id"],
            name=op.f("fk_model_states_series_id_series"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"],
            name=op.f("fk_model_states_tenant_id_tenants"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_states")),
        sa.UniqueConstraint("series_id", "role", "version", name=op.f("uq_model_states_series_id_role_version"))
    )
    op.create_index(op.f("ix_model_states_tenant_id_trained_at"), "model_states", ["tenant_id", "trained_at"])
    op.create_table(
        "recommendations",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("target", sa.String(length=255), nullable=False),
        sa.Column("service", sa.String(length=200), nullable=True),
        sa.Column("series_id", BIG_ID, nullable=True),
        sa.Column("issued_at", MILLIS, nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("savings_per_month", sa.Double(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("payload", JSON_TYPE, nullable=False),
        sa.Column("evidence", JSON_TYPE, nullable=False),
        sa.Column("created_at", MILLIS, nullable=False),
        sa.Column("updated_at", MILLIS, nullable=False),
        sa.CheckConstraint("status IN ('open', 'accepted', 'applied', 'dismissed')",
            name=op.f('ck_recommendations_status')),
        sa.ForeignKeyConstraint(["series_id"], ["series.id"],
            name=op.f("fk_recommendations_series_id_series"), ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"],
            name=op.f("fk_recommendations_tenant_id_tenants"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recommendations")),
        sa.UniqueConstraint("tenant_id", "kind", "target", "issued_at",
            name=op.f("uq_recommendations_tenant_id_kind_target_issued_at"))
    )
    op.create_index(op.f("ix_recommendations_tenant_id_issued_at"), "recommendations", ["tenant_id", "issued_at"])
    op.create_table(
        "samples",
        sa.Column("series_id", BIG_ID, nullable=False),
        sa.Column("ts", sa.BigInteger(), nullable=False),
        sa.Column("value", sa.Double(), nullable=True),
        sa.PrimaryKeyConstraint("series_id", "ts", name=op.f("pk_samples")),
        sqlite_with_rowid=False
    )
    op.create_table(
        "feedback",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("series_id", BIG_ID, nullable=False),
        sa.Column("anomaly_id", BIG_ID, nullable=True),
        sa.Column("ts", MILLIS, nullable=False),
        sa.Column("verdict", sa.String(length=16), nullable=False),
        sa.Column("author", sa.String(length=200), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("created_at", MILLIS, nullable=False),
        sa.CheckConstraint("verdict IN ('true_positive', 'false_positive', 'missed')",
            name=op.f('ck_feedback_verdict')),
        sa.ForeignKeyConstraint(["anomaly_id"], ["anomalies.id"],
            name=op.f("fk_feedback_anomaly_id_anomalies"), ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["series_id"], ["series.id"],
            name=op.f("fk_feedback_series_id_series"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"],
            name=op.f("fk_feedback_tenant_id_tenants"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feedback")),
        sa.UniqueConstraint("series_id", "ts", "author", name=op.f("uq_feedback_series_id_ts_author"))
    )
    op.create_index(op.f("ix_feedback_tenant_id_created_at"), "feedback", ["tenant_id", "created_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_feedback_tenant_id_created_at"), table_name="feedback")
    op.drop_table("feedback")
    op.drop_table("samples")
    op.drop_index(op.f("ix_recommendations_tenant_id_issued_at"), table_name="recommendations")
    op.drop_table("recommendations")
    op.drop_index(op.f("ix_model_states_tenant_id_trained_at"), table_name="model_states")
    op.drop_table("model_states")
    op.drop_index(op.f("ix_incident_alerts_fingerprint"), table_name="incident_alerts")
    op.drop_table("incident_alerts")
    op.drop_index(op.f("ix_forecasts_tenant_id_issued_at"), table_name="forecasts")
    op.drop_table("forecasts")
    op.drop_index(op.f("ix_anomalies_tenant_id_ts"), table_name="anomalies")
    op.drop_table("anomalies")
    op.drop_index(op.f("ix_series_tenant_id_service"), table_name="series")
    op.drop_index(op.f("ix_series_tenant_id_name"), table_name="series")
    op.drop_table("series")
    op.drop_index(op.f("ix_incidents_tenant_id_status"), table_name="incidents")
    op.drop_index(op.f("ix_incidents_tenant_id_started_at"), table_name="incidents")
    op.drop_table("incidents")
    op.drop_index(op.f("ix_audit_log_tenant_id_at"), table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_index(op.f("ix_api_tokens_tenant_id"), table_name="api_tokens")
    op.drop_table("api_tokens")
    op.drop_table("tenants")
