"""Container usage, requests, limits, OOM kills, restarts and throttling from Prometheus (cAdvisor + KSM).

The conventional series, as the kubelet's cAdvisor and kube-state-metrics export them:

==============================================================  ====================================================
``container_cpu_usage_seconds_total``                           CPU usage (counter; ``rate`` gives cores)
``container_memory_working_set_bytes``                          memory working set (what the OOM killer looks at)
``kube_pod_container_resource_requests{resource="cpu|memory"}``  current requests (cores, bytes)
``kube_pod_container_resource_limits{resource="cpu|memory"}``    current limits
``kube_pod_container_status_restarts_total``                    restarts (counter)
``kube_pod_container_status_last_terminated_reason``            ``reason="OOMKilled"`` = 1 after an OOM kill
``container_cpu_cfs_throttled_periods_total``                   CFS periods throttled / ...
``container_cpu_cfs_periods_total``                             ... all CFS periods (counters)
``kube_pod_owner`` / ``kube_replicaset_owner``                  pod -> ReplicaSet -> Deployment (optional)
==============================================================  ====================================================

All series need the labels ``namespace``, ``pod`` and ``container`` (cAdvisor's ``container=""`` and
``container="POD"`` series are the pod cgroup and the pause container: left out).

**Workloads.** A pod belongs to the workload named by ``kube_pod_owner`` (a ReplicaSet is followed to its
Deployment by ``kube_replicaset_owner``, or by dropping the ``pod-template-hash`` suffix from its name). Without
``kube_pod_owner`` the pod name says it: ``<deployment>-<replicaset hash>-<5 chars>`` is a Deployment,
``<statefulset>-<ordinal>`` a StatefulSet, ``<name>-<5 chars>`` a DaemonSet (or Job); anything else is a bare pod
(hashes and suffixes use Kubernetes' vowel-free alphabet, so ``node-exporter-4kq8p`` is not read as a Deployment).
One :class:`ContainerMetrics` per (namespace, workload, container) holds every pod's usage as columns.

**OOM kills** are the times a container's restart counter rose while its last termination reason was
``OOMKilled``. Missing metrics are not errors: whatever is missing stays None and ``notes`` say so.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import numpy.typing as npt

from opsmind.core.errors import ConfigError, SourceError
from opsmind.core.series import FloatArray, Frame
from opsmind.sources.prometheus import Prometheus
from opsmind.sources.timeparse import Duration, TimeLike, parse_duration, parse_time

__all__ = ["ContainerMetrics", "Queries", "fetch_containers", "parse_series_name", "workload_of"]

_KEYS = ("namespace", "pod", "container")


@dataclass(frozen=True, eq=False)
class ContainerMetrics:
    """Everything Prometheus knows about one container of one workload over the window (cores, bytes, Unix s)."""

    namespace: str
    workload: str
    kind: str
    container: str
    cpu: Frame
    memory: Frame | None = None
    cpu_request: float | None = None
    cpu_limit: float | None = None
    memory_request: float | None = None
    memory_limit: float | None = None
    oom_kills: tuple[float, ...] = ()
    restarts: float = 0.0
    throttled_share: float | None = None
    notes: tuple[str, ...] = field(default=())

    @property
    def name(self) -> str:
        return f"{self.namespace}/{self.workload}/{self.container}"


def parse_series_name(name: str) -> dict[str, str]:
    """The labels of a series name as :func:`opsmind.sources.prometheus.series_name` writes it.

    Examples
    --------
    >>> parse_series_name('m{container="app", namespace="shop", pod="web-7d9f-x2x9z"}')
    {'container': 'app', 'namespace': 'shop', 'pod': 'web-7d9f-x2x9z'}
    >>> parse_series_name('{a="x\\\\"y"}')
    {'a': 'x"y'}
    """
    start = name.find("{")
    if start < 0:
        return {}
    out: dict[str, str] = {}
    for m in re.finditer(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"', name[start:]):
        out[m.group(1)] = re.sub(r"\\(.)", lambda e: "\n" if e.group(1) == "n" else e.group(1), m.group(2))
    return out


_SAFE = "[bcdfghjklmnpqrstvwxz2456789]"  # Kubernetes' alphabet for name hashes and random suffixes (no vowels)
_DEPLOY = re.compile(rf"^(?P<name>.+)-(?P<hash>{_SAFE}{{6,10}})-(?P<suffix>{_SAFE}{{5}})$")
_STATEFUL = re.compile(r"^(?P<name>.+)-(?P<ordinal>\d+)$")
_DAEMON = re.compile(rf"^(?P<name>.+)-(?P<suffix>{_SAFE}{{5}})$")


def workload_of(pod: str) -> tuple[str, str]:
    """``(kind, name)`` of the workload a pod name implies (see the module docstring).

    Examples
    --------
    >>> workload_of("checkout-7d9f8b6c5d-x2x9z"), workload_of("redis-0"), workload_of("node-exporter-4kq8p")
    (('Deployment', 'checkout'), ('StatefulSet', 'redis'), ('DaemonSet', 'node-exporter'))
    >>> workload_of("debug")
    ('Pod', 'debug')
    """
    m = _DEPLOY.match(pod)
    if m:
        return "Deployment", m.group("name")
    m = _STATEFUL.match(pod)
    if m:
        return "StatefulSet", m.group("name")
    m = _DAEMON.match(pod)
    if m:
        return "DaemonSet", m.group("name")
    return "Pod", pod


def _sel(namespace: str | None) -> str:
    ns = f'namespace="{namespace}"' if namespace else 'namespace!=""'
    return f'{ns}, container!="", container!="POD"'


@dataclass(frozen=True)
class Queries:
    """The PromQL of every series, for a namespace (None = all) and a rate window."""

    namespace: str | None
    rate_window: str

    @property
    def cpu(self) -> str:
        return (f"sum by (namespace, pod, container) (rate(container_cpu_usage_seconds_total{{{_sel(self.namespace)}}}"
                f"[{self.rate_window}]))")

    @property
    def memory(self) -> str:
        return f"max by (namespace, pod, container) (container_memory_working_set_bytes{{{_sel(self.namespace)}}})"

    def resources(self, metric: str, window: str) -> str:
        return (f"max by (namespace, pod, container, resource) (last_over_time(kube_pod_container_resource_{metric}"
                f'{{{_sel(self.namespace)}, resource=~"cpu|memory"}}[{window}]))')

    @property
    def restarts(self) -> str:
        return ("max by (namespace, pod, container) "
                f"(kube_pod_container_status_restarts_total{{{_sel(self.namespace)}}})")

    @property
    def oom(self) -> str:
        return (f"max by (namespace, pod, container) (kube_pod_container_status_last_terminated_reason"
                f'{{{_sel(self.namespace)}, reason="OOMKilled"}})')

    def throttled(self, window: str) -> str:
        return (f"sum by (namespace, pod, container) (increase(container_cpu_cfs_throttled_periods_total"
                f"{{{_sel(self.namespace)}}}[{window}]))")

    def periods(self, window: str) -> str:
        return (f"sum by (namespace, pod, container) (increase(container_cpu_cfs_periods_total"
                f"{{{_sel(self.namespace)}}}[{window}]))")

    def owners(self, window: str) -> str:
        ns = f'namespace="{self.namespace}"' if self.namespace else 'namespace!=""'
        return f"max by (namespace, pod, owner_kind, owner_name) (last_over_time(kube_pod_owner{{{ns}}}[{window}]))"

    def rs_owners(self, window: str) -> str:
        ns = f'namespace="{self.namespace}"' if self.namespace else 'namespace!=""'
        return (f"max by (namespace, replicaset, owner_kind, owner_name) (last_over_time(kube_replicaset_owner"
                f"{{{ns}}}[{window}]))")


def _prom_duration(seconds: float) -> str:
    return f"{max(1, math.ceil(seconds))}s"


def _by_key(frame: Frame, keys: Iterable[str] = _KEYS) -> dict[tuple[str, ...], FloatArray]:
    out: dict[tuple[str, ...], FloatArray] = {}
    ks = tuple(keys)
    for j, col in enumerate(frame.columns):
        labels = parse_series_name(col)
        out[tuple(labels.get(k, "") for k in ks)] = frame.values[:, j]
    return out


def _instant(prom: Prometheus, promql: str, at: float, notes: list[str], what: str) -> Frame | None:
    try:
        frame = prom.query(promql, at)
    except SourceError as exc:
        notes.append(f"{what}: query failed ({exc})")
        return None
    if frame.ndim == 0:
        notes.append(f"{what}: no series (is kube-state-metrics / cAdvisor scraped?)")
        return None
    return frame


def fetch_containers(
    prom: Prometheus,
    start: TimeLike,
    end: TimeLike,
    step: Duration = "5m",
    *,
    namespace: str | None = None,
    workload: str | None = None,
    now: datetime | float | None = None,
) -> list[ContainerMetrics]:
    """Every container (of ``namespace``, of workloads whose name matches the regex ``workload``) in the window.

    Raises :class:`~opsmind.core.SourceError` when Prometheus fails or has no CPU usage series at all.
    """
    start_s, end_s = parse_time(start, now), parse_time(end, now)
    step_s = parse_duration(step)
    if end_s <= start_s:
        raise ConfigError(f"the window ends ({end_s}) before it starts ({start_s})")
    try:
        wl_re = re.compile(workload) if workload else None
    except re.error as exc:
        raise ConfigError(f"--workload is not a valid regular expression: {exc}") from None
    q = Queries(namespace, _prom_duration(max(2 * step_s, 120.0)))
    span = _prom_duration(end_s - start_s)
    cpu = prom.query_range(q.cpu, start_s, end_s, step_s)
    if cpu.ndim == 0:
        where = f" in namespace {namespace!r}" if namespace else ""
        raise SourceError(f"prometheus: no container CPU usage{where} between {start} and {end} "
                          "(container_cpu_usage_seconds_total with namespace/pod/container labels)")
    global_notes: list[str] = []
    try:
        memory: Frame | None = prom.query_range(q.memory, start_s, end_s, step_s)
        if memory is not None and memory.ndim == 0:
            memory = None
    except SourceError as exc:
        memory = None
        global_notes.append(f"memory: query failed ({exc})")
    requests = _instant(prom, q.resources("requests", span), end_s, global_notes, "requests")
    limits = _instant(prom, q.resources("limits", span), end_s, global_notes, "limits")
    throttled = _instant(prom, q.throttled(span), end_s, global_notes, "CFS throttling")
    periods = _instant(prom, q.periods(span), end_s, global_notes, "CFS periods") if throttled is not None else None
    owners = _instant(prom, q.owners(span), end_s, [], "owners")
    rs_owners = _instant(prom, q.rs_owners(span), end_s, [], "replicaset owners") if owners is not None else None
    restarts: Frame | None = None
    oom: Frame | None = None
    try:
        restarts = prom.query_range(q.restarts, start_s, end_s, step_s)
        oom = prom.query_range(q.oom, start_s, end_s, step_s)
    except SourceError as exc:
        global_notes.append(f"restarts/OOM: query failed ({exc})")

    owner_of = _owner_map(owners, rs_owners)
    cpu_cols = _by_key(cpu)
    mem_cols = _by_key(memory) if memory is not None else {}
    mem_index = _align_index(cpu, memory) if memory is not None else None
    req = _by_key(requests, (*_KEYS, "resource")) if requests is not None else {}
    lim = _by_key(limits, (*_KEYS, "resource")) if limits is not None else {}
    thr = _by_key(throttled) if throttled is not None else {}
    per = _by_key(periods) if periods is not None else {}
    rst = _by_key(restarts) if restarts is not None and restarts.ndim else {}
    oomk = _by_key(oom) if oom is not None and oom.ndim else {}
    rst_t = restarts.seconds() if restarts is not None else np.zeros(0)
    oom_index = _align_index(restarts, oom) if restarts is not None and oom is not None and oom.ndim else None

    groups: dict[tuple[str, str, str, str], list[tuple[str, ...]]] = defaultdict(list)
    for key in cpu_cols:
        ns, pod, container = key
        kind, name = owner_of.get((ns, pod)) or workload_of(pod)
        if wl_re is not None and not wl_re.search(name):
            continue
        groups[(ns, kind, name, container)].append(key)
    out: list[ContainerMetrics] = []
    for (ns, kind, name, container), keys in sorted(groups.items()):
        keys.sort()
        pods = tuple(k[1] for k in keys)
        cpu_frame = Frame(cpu.timestamps, np.column_stack([cpu_cols[k] for k in keys]), pods,
                          f"{ns}/{name}/{container}")
        mem_frame = None
        notes = list(global_notes)
        if mem_index is not None and any(k in mem_cols for k in keys):
            mem_vals = np.full((len(cpu), len(keys)), np.nan)
            for j, k in enumerate(keys):
                if k in mem_cols:
                    col = mem_cols[k]
                    mem_vals[:, j] = np.where(mem_index >= 0, col[np.maximum(mem_index, 0)], np.nan)
            mem_frame = Frame(cpu.timestamps, mem_vals, pods, cpu_frame.name)
        else:
            notes.append("memory: no container_memory_working_set_bytes series")

        kills: list[float] = []
        total_restarts = 0.0
        for k in keys:
            if k not in rst:
                continue
            r = rst[k]
            inc = np.diff(r)
            inc = np.where(np.isfinite(inc), np.where(inc < 0, np.nan_to_num(r[1:]), inc), 0.0)  # counter resets
            total_restarts += float(inc.sum())
            if k in oomk and oom_index is not None:
                idx = oom_index[1:]
                flag = np.where(idx >= 0, np.nan_to_num(oomk[k][np.maximum(idx, 0)]) > 0, False)
                kills += [float(x) for x in rst_t[1:][(inc > 0) & flag]]
        share = None
        t_sum = sum(float(np.nan_to_num(thr[k][-1])) for k in keys if k in thr)
        p_sum = sum(float(np.nan_to_num(per[k][-1])) for k in keys if k in per)
        if p_sum > 0:
            share = t_sum / p_sum
        out.append(ContainerMetrics(
            namespace=ns, workload=name, kind=kind, container=container, cpu=cpu_frame, memory=mem_frame,
            cpu_request=_last(req, keys, "cpu"), cpu_limit=_last(lim, keys, "cpu"),
            memory_request=_last(req, keys, "memory"), memory_limit=_last(lim, keys, "memory"),
            oom_kills=tuple(sorted(kills)), restarts=total_restarts, throttled_share=share,
            notes=tuple(dict.fromkeys(notes)),
        ))
    return out


def _last(table: dict[tuple[str, ...], FloatArray], keys: list[tuple[str, ...]], resource: str) -> float | None:
    """The largest last value of ``resource`` over the pods' series (None when no pod has one)."""
    vals = [float(table[(*k, resource)][-1]) for k in keys if (*k, resource) in table]
    vals = [v for v in vals if math.isfinite(v)]
    return max(vals) if vals else None


def _align_index(cpu: Frame, other: Frame | None) -> npt.NDArray[np.int64] | None:
    """For each CPU timestamp, the row of ``other`` with the same timestamp (-1 where it has none)."""
    if other is None:
        return None
    a = cpu.timestamps.astype("datetime64[ns]").astype(np.int64)
    b = other.timestamps.astype("datetime64[ns]").astype(np.int64)
    pos = np.searchsorted(b, a)
    pos_c = np.clip(pos, 0, max(b.size - 1, 0))
    hit = (pos < b.size) & (b[pos_c] == a) if b.size else np.zeros(a.shape, bool)
    return np.where(hit, pos_c, -1)


def _owner_map(owners: Frame | None, rs_owners: Frame | None) -> dict[tuple[str, str], tuple[str, str]]:
    if owners is None:
        return {}
    rs_to: dict[tuple[str, str], tuple[str, str]] = {}
    if rs_owners is not None:
        for col in rs_owners.columns:
            lab = parse_series_name(col)
            if lab.get("owner_kind") and lab.get("owner_name") and lab.get("owner_kind") != "<none>":
                rs_to[(lab.get("namespace", ""), lab.get("replicaset", ""))] = (lab["owner_kind"], lab["owner_name"])
    out: dict[tuple[str, str], tuple[str, str]] = {}
    for col in owners.columns:
        lab = parse_series_name(col)
        ns, pod, kind, name = (lab.get(k, "") for k in ("namespace", "pod", "owner_kind", "owner_name"))
        if not kind or kind == "<none>" or not name:
            continue
        if kind == "ReplicaSet":
            kind, name = rs_to.get((ns, name)) or ("Deployment", re.sub(r"-[a-z0-9]{6,10}$", "", name))
        out[(ns, pod)] = (kind, name)
    return out
