"""The annotated example configuration ``opsmind init`` writes (it loads with :func:`opsmind.config.load_settings`)."""

from __future__ import annotations

__all__ = ["EXAMPLE_CONFIG"]

EXAMPLE_CONFIG = """\
# opsmind configuration. Run with: opsmind serve --config opsmind.yaml
# Every field can also be set from the environment: OPSMIND_<FIELD>, nested fields joined by "__",
# e.g. OPSMIND_API__PORT=9000 or OPSMIND_STORE__URL=postgresql+psycopg://opsmind@db/opsmind.

# Tenant the engine's own records (series, anomalies, incidents, ...) belong to.
tenant: default

store:
  # sqlite:///path/opsmind.db (the default when empty: opsmind.db in the working directory)
  # or postgresql+psycopg://user:password@host:5432/database
  url: sqlite:///opsmind.db

api:
  host: 127.0.0.1          # address the API, dashboard, /metrics and webhooks listen on
  port: 8080               # 0 picks a free port
  anonymous_scopes: [read] # what a request without a token may do (read, write, admin); [] to require tokens
  # admin_token: change-me # a token with every scope, for bootstrapping (prefer OPSMIND_API__ADMIN_TOKEN)

# The Prometheus server metrics are pulled from (query_range over its HTTP API).
prometheus:
  url: http://127.0.0.1:9090
  timeout_s: 30            # one request
  retries: 1               # retries of a failed request within a cycle; the engine backs off after that
  # bearer_token: ...      # or basic_auth: {username: ..., password: ...}

# Alertmanager opsmind sends its alerts to (API v2). Remove to send none.
# alertmanager:
#   url: http://127.0.0.1:9093

# The services to watch. Each metric is a PromQL query; every series it returns is stored and watched.
services:
  - name: checkout
    metrics:
      rate: sum(rate(http_requests_total{service="checkout"}[1m]))
      errors: sum(rate(http_requests_total{service="checkout", code=~"5.."}[1m]))
      latency_p95: >-
        histogram_quantile(0.95,
        sum by (le) (rate(http_request_duration_seconds_bucket{service="checkout"}[5m])))
      cpu: sum(rate(container_cpu_usage_seconds_total{container="checkout"}[5m]))
      memory: sum(container_memory_working_set_bytes{container="checkout"})
      replicas: kube_deployment_status_replicas{deployment="checkout"}
    # which metric plays which role in forecasting, capacity, scaling and rightsizing
    roles: {load: rate, latency: latency_p95, errors: errors, cpu: cpu, memory: memory, replicas: replicas}
    slo:
      latency_ms: 300          # the p95 latency objective
      latency_quantile: 0.95
      availability: 0.999
    calls: [payment]           # services this one calls: the call graph for incidents and root causes
    deployment: shop/checkout  # Kubernetes Deployment (namespace/name) scale recommendations are for
    min_replicas: 2
    max_replicas: 20
  - name: payment
    metrics:
      rate: sum(rate(http_requests_total{service="payment"}[1m]))
      latency_p95: >-
        histogram_quantile(0.95,
        sum by (le) (rate(http_request_duration_seconds_bucket{service="payment"}[5m])))
    roles: {load: rate, latency: latency_p95}
    slo: {latency_ms: 200}

engine:
  scrape_interval_s: 15     # how often series are pulled and scored
  history_s: 21600          # history pulled (and learned) for a series seen the first time
  detector: {type: opsmind} # detector built for every series: {type, params} from the detector registry
  forecast_every_s: 3600    # load forecasts
  forecast_horizon_s: 21600
  capacity_every_s: 900     # capacity and SLO-breach checks
  scale_every_s: 60         # replica recommendations
  rightsize_every_s: 86400  # CPU and memory request recommendations
  stale_after_s: 300        # a series without a new sample this long is marked stale
  state_every_s: 300        # detector states saved this often (and when an alert changes); after a crash the
                            # samples since are scored again from the store
  backoff_max_s: 300        # longest wait between tries of a source that is down
  executor: process         # where per-series detection runs: process, thread or dask
  # workers: 4              # size of the local pool (default: CPU count)
  # dask_address: tcp://scheduler:8786   # with executor: dask
  correlator:
    window_s: 600           # an alert joins an incident active within this many seconds
    max_hops: 1             # ...when its service is within this many calls of the incident's services
    close_after_s: 3600     # an incident with no activity this long is closed
  rca:
    baseline_s: 3600        # normal window before the onset
    window_s: 180           # anomalous window after it; RCA runs when an incident is this old

notify:
  min_severity: high        # anomalies below this are stored but not sent
  resend_interval_s: 60     # firing alerts are re-sent to Alertmanager this often
  # slack_webhook_url: https://hooks.slack.com/services/...
  # teams_webhook_url: https://....webhook.office.com/...
  # email: {host: smtp.example.com, sender: opsmind@example.com, recipients: [oncall@example.com]}

remediation:
  playbooks: []             # playbook files or folders of *.yaml
  dry_run: true             # plan and record actions without executing them
"""
