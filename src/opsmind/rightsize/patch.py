"""Patches that put recommendations into a cluster: one YAML per workload, the containers' ``resources`` only.

Each file is a partial manifest of the workload (``apiVersion``, ``kind``, ``metadata.name/namespace`` and the
containers' ``resources``), which Kubernetes accepts as

- a server-side apply configuration: ``kubectl apply --server-side --field-manager=opsmind-rightsize -f FILE``
  (opsmind then owns exactly these fields), or
- a strategic-merge patch: ``kubectl patch deployment NAME -n NS --patch-file FILE`` (containers merge by name).

CPU limits: opsmind and KRR recommend none (no CFS throttling) and the patch leaves an existing CPU limit alone,
unless it is below the new request, where it is raised to the request (a request above its limit is invalid).
The memory limit is set when the strategy recommends one. A CPU schedule is not in the patch (a static patch
cannot express it); the static request is.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import yaml

from opsmind.rightsize.base import Recommendation, WorkloadUsage, fmt_cpu, fmt_memory

__all__ = ["API_VERSIONS", "dns_name", "workload_patches"]

API_VERSIONS = {"Deployment": "apps/v1", "StatefulSet": "apps/v1", "DaemonSet": "apps/v1", "ReplicaSet": "apps/v1",
                "Job": "batch/v1", "CronJob": "batch/v1"}


def dns_name(text: str) -> str:
    """A DNS-1123 label from any text (lower case, ``[a-z0-9-]``, at most 63 characters).

    Examples
    --------
    >>> dns_name("ec2_cpu_utilization_24ae8d"), dns_name("Web.API")
    ('ec2-cpu-utilization-24ae8d', 'web-api')
    """
    s = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    return (s[:63].strip("-")) or "workload"


def _resources(data: WorkloadUsage, rec: Recommendation) -> dict[str, Any]:
    requests: dict[str, str] = {"cpu": fmt_cpu(rec.cpu_request)}
    limits: dict[str, str] = {}
    if rec.memory_request is not None:
        requests["memory"] = fmt_memory(rec.memory_request)
    if rec.cpu_limit is not None:
        limits["cpu"] = fmt_cpu(max(rec.cpu_limit, rec.cpu_request))
    elif data.current.cpu_limit is not None and data.current.cpu_limit < rec.cpu_request:
        limits["cpu"] = fmt_cpu(rec.cpu_request)
    if rec.memory_limit is not None:
        limits["memory"] = fmt_memory(max(rec.memory_limit, rec.memory_request or 0.0))
    out: dict[str, Any] = {"requests": requests}
    if limits:
        out["limits"] = limits
    return out


def workload_patches(items: Sequence[tuple[WorkloadUsage, Recommendation]]) -> dict[str, str]:
    """``{file name: YAML text}``, one file per workload holding all of its containers.

    Bare pods (no controller) get no patch: a pod's resources are changed through its controller.
    """
    groups: dict[tuple[str, str, str], list[tuple[WorkloadUsage, Recommendation]]] = {}
    for data, rec in items:
        kind = data.kind or "Deployment"
        if kind not in API_VERSIONS:
            continue
        key = (data.namespace, kind, data.workload or data.name)
        groups.setdefault(key, []).append((data, rec))
    out: dict[str, str] = {}
    for (ns, kind, name), members in sorted(groups.items()):
        containers = [{"name": dns_name(d.container or d.workload or d.name), "resources": _resources(d, r)}
                      for d, r in members]
        pod_spec: dict[str, Any] = {"template": {"spec": {"containers": containers}}}
        spec = {"jobTemplate": {"spec": pod_spec}} if kind == "CronJob" else pod_spec
        metadata: dict[str, str] = {"name": dns_name(name)}
        if ns:
            metadata["namespace"] = ns
        doc = {"apiVersion": API_VERSIONS[kind], "kind": kind, "metadata": metadata, "spec": spec}
        strategies = sorted({r.strategy for _, r in members})
        header = (f"# opsmind rightsize ({', '.join(strategies)}): {kind} {ns + '/' if ns else ''}{name}\n"
                  "# kubectl apply --server-side --field-manager=opsmind-rightsize -f THIS_FILE\n"
                  f"# or: kubectl patch {kind.lower()} {dns_name(name)}{' -n ' + ns if ns else ''} "
                  "--patch-file THIS_FILE\n")
        for d, r in members:
            if r.cpu_schedule is not None:
                segs = ", ".join(f"{a}-{b} {fmt_cpu(v)}" for a, b, v in r.cpu_schedule.segments())
                header += (f"# {d.container or d.workload}: CPU schedule (UTC, needs in-place resize): {segs}\n")
        fname = f"{(ns + '.') if ns else ''}{kind.lower()}.{dns_name(name)}.yaml"
        out[fname] = header + yaml.safe_dump(doc, sort_keys=False)
    return out
