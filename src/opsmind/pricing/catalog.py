"""Price catalog types, the built-in table and machine-type shapes read from names.

Prices are list prices in USD per hour. A month is :data:`HOURS_PER_MONTH` (730) hours. Memory is in GiB
(cloud providers' "GB" of machine memory are binary gigabytes, so ``memory_gb`` columns are read as GiB).

Unit prices (per vCPU-hour and per GiB-hour, what a container's request costs) come from an explicit row of the
catalog when it has one for the provider (GCP publishes them per machine family; OpenCost ships defaults), else
they are fitted by non-negative least squares, ``price ~ a * vcpu + b * memory_gib``, to the provider's machine
rows without GPUs (x86 only when there are any): the split of a machine's price between its vCPUs and its memory.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from opsmind.core.errors import ConfigError

__all__ = [
    "BUILTIN_CSV",
    "HOURS_PER_MONTH",
    "PROVIDERS",
    "MachineType",
    "PriceCatalog",
    "UnitPrices",
    "builtin_catalog",
    "infer_provider",
    "shape_from_name",
]

HOURS_PER_MONTH = 730.0
PROVIDERS = ("aws", "gcp", "azure")
GIB = 1024.0**3

_AWS_SRC = ("aws/karpenter-provider-aws@1d92708 pkg/providers/pricing/zz_generated.pricing_aws.go + "
            "website/content/en/docs/reference/instance-types.md (us-east-1 on-demand; allocatable = Karpenter's)")
_GCP_SRC = "kubernetes/autoscaler@55c37cd cluster-autoscaler/cloudprovider/gce/gce_price_info.go (on-demand, spot)"
_AZ_SRC = "Azure/karpenter-provider-azure@352646f pkg/providers/pricing/zz_generated.pricing.go (eastus on-demand)"

# provider,region,machine_type,vcpu,memory_gib,on_demand_usd_per_hour,spot_usd_per_hour,allocatable_vcpu,
# allocatable_memory_gib,arch,source,date
_AWS_ROWS = """\
t3.medium,2,4,0.0416,,1.93,3.170,amd64
t3.large,2,8,0.0832,,1.93,6.677,amd64
t3.xlarge,4,16,0.1664,,3.92,13.830,amd64
m5.large,2,8,0.096,,1.93,6.741,amd64
m5.xlarge,4,16,0.192,,3.92,13.830,amd64
m5.2xlarge,8,32,0.384,,7.91,28.630,amd64
m5.4xlarge,16,64,0.768,,15.89,56.339,amd64
m6i.large,2,8,0.096,,1.93,6.741,amd64
m6i.xlarge,4,16,0.192,,3.92,13.830,amd64
m6i.2xlarge,8,32,0.384,,7.91,28.630,amd64
m7i.large,2,8,0.1008,,1.93,6.741,amd64
c5.large,2,4,0.085,,1.93,3.041,amd64
c5.xlarge,4,8,0.17,,3.92,6.430,amd64
c5.2xlarge,8,16,0.34,,7.91,13.830,amd64
c6i.large,2,4,0.085,,1.93,3.041,amd64
c6i.xlarge,4,8,0.17,,3.92,6.430,amd64
r5.large,2,16,0.126,,1.93,14.142,amd64
r5.xlarge,4,32,0.252,,3.92,28.630,amd64
r6i.large,2,16,0.126,,1.93,14.142,amd64
r6i.xlarge,4,32,0.252,,3.92,28.630,amd64
m6g.large,2,8,0.077,,1.93,6.684,arm64
m7g.large,2,8,0.0816,,1.93,6.684,arm64
c7g.large,2,4,0.0725,,1.93,2.983,arm64
r7g.large,2,16,0.1071,,1.93,14.084,arm64
"""
_GCP_ROWS = """\
e2-medium,2,4,0.03351,0.01005
e2-standard-2,2,8,0.06701,0.0201
e2-standard-4,4,16,0.13402,0.04021
e2-standard-8,8,32,0.26805,0.08041
e2-highmem-2,2,16,0.0904,0.02712
e2-highmem-4,4,32,0.1808,0.05424
e2-highcpu-4,4,4,0.09894,0.02968
e2-highcpu-8,8,8,0.19788,0.05936
n2-standard-2,2,8,0.0971,0.0235
n2-standard-4,4,16,0.1942,0.047
n2-standard-8,8,32,0.3885,0.094
n2-standard-16,16,64,0.7769,0.188
n2-highmem-2,2,16,0.131,0.0317
n2-highmem-4,4,32,0.262,0.0634
n2-highcpu-4,4,4,0.1434,0.0347
n2-highcpu-8,8,8,0.2868,0.0694
n2d-standard-2,2,8,0.0845,0.008522
n2d-standard-4,4,16,0.169,0.017044
t2d-standard-2,2,8,0.0845,0.0204
t2d-standard-4,4,16,0.169,0.0409
n1-standard-1,1,3.75,0.0475,0.01
n1-standard-2,2,7.5,0.095,0.02
"""
_AZ_ROWS = """\
Standard_B2s,2,4,0.0416
Standard_B2ms,2,8,0.0832
Standard_B4ms,4,16,0.166
Standard_D2s_v5,2,8,0.096
Standard_D4s_v5,4,16,0.192
Standard_D8s_v5,8,32,0.384
Standard_D16s_v5,16,64,0.768
Standard_D2ps_v5,2,8,0.077
Standard_D4ps_v5,4,16,0.154
Standard_E2s_v5,2,16,0.126
Standard_E4s_v5,4,32,0.252
Standard_E8s_v5,8,64,0.504
Standard_F2s_v2,2,4,0.0846
Standard_F4s_v2,4,8,0.169
Standard_F8s_v2,8,16,0.338
"""


def _builtin_csv() -> str:
    head = ("provider,region,machine_type,vcpu,memory_gib,on_demand_usd_per_hour,spot_usd_per_hour,"
            "allocatable_vcpu,allocatable_memory_gib,arch,source,date")
    lines = [head]
    for row in _AWS_ROWS.splitlines():
        name, cpu, mem, price, spot, acpu, amem, arch = row.split(",")
        lines.append(f'aws,us-east-1,{name},{cpu},{mem},{price},{spot},{acpu},{amem},{arch},"{_AWS_SRC}",2026-07-20')
    for row in _GCP_ROWS.splitlines():
        name, cpu, mem, price, spot = row.split(",")
        arch = "amd64"
        lines.append(f'gcp,us-central1,{name},{cpu},{mem},{price},{spot},,,{arch},"{_GCP_SRC}",2026-06')
    for row in _AZ_ROWS.splitlines():
        name, cpu, mem, price = row.split(",")
        arch = "arm64" if "ps_v" in name else "amd64"
        lines.append(f'azure,eastus,{name},{cpu},{mem},{price},,,,{arch},"{_AZ_SRC}",2026-06-18')
    return "\n".join(lines) + "\n"


BUILTIN_CSV = _builtin_csv()

# provider,region,family,vcpu_usd_per_hour,gib_usd_per_hour,spot_vcpu_usd_per_hour,spot_gib_usd_per_hour,source,date
_BUILTIN_UNITS = (
    ("default", "", "", 0.031611, 0.004237, 0.006655, 0.000892,
     "opencost/opencost@0d1f69c configs/default.json (\"Default prices based on GCP us-central1\")", "undated"),
    ("gcp", "us-central1", "n2", 0.031611, 0.004237, 0.031611 * 0.242004, 0.004237 * 0.242004, _GCP_SRC, "2026-06"),
    ("gcp", "us-central1", "e2", 0.021811, 0.002923, 0.021811 * 0.299986, 0.002923 * 0.299986, _GCP_SRC, "2026-06"),
)


@dataclass(frozen=True)
class MachineType:
    """One machine type: its shape, on-demand (and spot) price per hour, and where the figures come from."""

    provider: str
    name: str
    vcpu: float
    memory_gib: float
    price_per_hour: float
    region: str = ""
    spot_price_per_hour: float | None = None
    allocatable_vcpu: float | None = None
    allocatable_memory_gib: float | None = None
    arch: str = ""
    gpus: int = 0
    source: str = ""
    date: str = ""

    @property
    def usable_vcpu(self) -> float:
        """vCPUs a pod can request: the allocatable figure when the catalog has one, else the whole machine."""
        return self.allocatable_vcpu if self.allocatable_vcpu is not None else self.vcpu

    @property
    def usable_memory_gib(self) -> float:
        return self.allocatable_memory_gib if self.allocatable_memory_gib is not None else self.memory_gib

    def monthly(self, spot: bool = False) -> float:
        """USD per month on demand (or spot, NaN when the catalog has no spot price)."""
        if spot:
            return self.spot_price_per_hour * HOURS_PER_MONTH if self.spot_price_per_hour is not None else math.nan
        return self.price_per_hour * HOURS_PER_MONTH


@dataclass(frozen=True)
class UnitPrices:
    """What one vCPU-hour and one GiB-hour of memory cost (on demand, and spot when known)."""

    provider: str
    vcpu_hour: float
    gib_hour: float
    region: str = ""
    family: str = ""
    spot_vcpu_hour: float | None = None
    spot_gib_hour: float | None = None
    source: str = ""
    date: str = ""

    def hourly(self, cpu_cores: float, memory_bytes: float | None = None, spot: bool = False) -> float:
        """USD per hour for ``cpu_cores`` and ``memory_bytes`` (memory optional)."""
        cpu_p, mem_p = (self.spot_vcpu_hour, self.spot_gib_hour) if spot else (self.vcpu_hour, self.gib_hour)
        if cpu_p is None or mem_p is None:
            return math.nan
        mem = 0.0 if memory_bytes is None or not math.isfinite(memory_bytes) else memory_bytes / GIB
        return cpu_cores * cpu_p + mem * mem_p

    def monthly(self, cpu_cores: float, memory_bytes: float | None = None, spot: bool = False) -> float:
        return self.hourly(cpu_cores, memory_bytes, spot) * HOURS_PER_MONTH

    def describe(self) -> str:
        where = "/".join(p for p in (self.provider, self.region, self.family) if p)
        return (f"{where}: ${self.vcpu_hour:.6g}/vCPU-h, ${self.gib_hour:.6g}/GiB-h"
                + (f" ({self.source}, {self.date})" if self.source else ""))


class PriceCatalog:
    """Machine types and unit prices of one or more providers.

    Examples
    --------
    >>> cat = builtin_catalog()
    >>> m = cat.cheapest(1.5, 5 * GIB, provider="aws", headroom=0.0)
    >>> m.name, m.price_per_hour
    ('m6g.large', 0.077)
    >>> round(cat.unit_prices("gcp").vcpu_hour, 6)
    0.031611
    """

    def __init__(self, machines: Iterable[MachineType] = (), units: Iterable[UnitPrices] = (), name: str = "") -> None:
        self.machines: tuple[MachineType, ...] = tuple(machines)
        self.units: tuple[UnitPrices, ...] = tuple(units)
        self.name = name

    def __len__(self) -> int:
        return len(self.machines)

    def merged(self, other: PriceCatalog) -> PriceCatalog:
        """This catalog with ``other``'s rows added; ``other`` wins where both price the same machine or unit."""
        keys = {(m.provider, m.region, m.name) for m in other.machines}
        machines = [m for m in self.machines if (m.provider, m.region, m.name) not in keys] + list(other.machines)
        ukeys = {(u.provider, u.region, u.family) for u in other.units}
        units = [u for u in self.units if (u.provider, u.region, u.family) not in ukeys] + list(other.units)
        return PriceCatalog(machines, units, other.name or self.name)

    def providers(self) -> list[str]:
        return sorted({m.provider for m in self.machines} | {u.provider for u in self.units})

    def select(self, provider: str | None = None, region: str | None = None) -> list[MachineType]:
        """Machine rows of ``provider`` (and ``region``), all rows when both are None."""
        return [m for m in self.machines if (provider is None or m.provider == provider)
                and (region is None or m.region == region)]

    def find(self, name: str, provider: str | None = None) -> MachineType:
        for m in self.machines:
            if m.name == name and (provider is None or m.provider == provider):
                return m
        raise ConfigError(f"machine type {name!r} is not in the price catalog"
                          + (f" for provider {provider!r}" if provider else ""))

    def unit_prices(self, provider: str | None = None, region: str | None = None) -> UnitPrices:
        """Per-vCPU-hour and per-GiB-hour prices: an explicit row, else a fit to the machine rows (see module doc).

        ``provider`` None means the catalog's ``default`` row (OpenCost's defaults in the built-in table).
        """
        want = provider or "default"
        rows = [u for u in self.units if u.provider == want and (region is None or u.region in (region, ""))]
        if rows:
            rows.sort(key=lambda u: (u.region != (region or u.region), u.family != "n2", u.family))
            return rows[0]
        machines = [m for m in self.select(want, region)
                    if m.gpus == 0 and m.price_per_hour > 0 and m.vcpu > 0 and m.memory_gib > 0]
        x86 = [m for m in machines if m.arch in ("", "amd64", "x86_64")]
        machines = x86 or machines
        if len(machines) < 2:
            known = ", ".join(self.providers()) or "none"
            raise ConfigError(f"no unit prices for provider {want!r}"
                              + (f" in region {region!r}" if region else "") + f" (catalog providers: {known})")
        return _fit_units(machines, want, region or machines[0].region)

    def cheapest(
        self,
        cpu_cores: float,
        memory_bytes: float | None,
        *,
        provider: str | None = None,
        region: str | None = None,
        headroom: float = 0.15,
        spot: bool = False,
        arch: str | None = None,
    ) -> MachineType | None:
        """The cheapest machine whose usable vCPUs and memory cover the need plus ``headroom`` (None if none does).

        Ties go to the smaller machine, then to the name, so the answer is deterministic.
        """
        need_cpu = max(cpu_cores, 0.0) * (1.0 + headroom)
        need_mem = 0.0 if memory_bytes is None or not math.isfinite(memory_bytes) else memory_bytes / GIB
        need_mem *= 1.0 + headroom
        best: tuple[float, float, str, MachineType] | None = None
        for m in self.select(provider, region):
            if m.vcpu <= 0 or m.memory_gib <= 0 or m.gpus > 0 or (arch is not None and m.arch != arch):
                continue
            if m.usable_vcpu + 1e-9 < need_cpu or m.usable_memory_gib + 1e-9 < need_mem:
                continue
            price = m.spot_price_per_hour if spot else m.price_per_hour
            if price is None:
                continue
            key = (price, m.vcpu + m.memory_gib / 4.0, m.name, m)
            if best is None or key[:3] < best[:3]:
                best = key
        return best[3] if best else None


def _fit_units(machines: Sequence[MachineType], provider: str, region: str) -> UnitPrices:
    from scipy.optimize import nnls

    a = np.array([[m.vcpu, m.memory_gib] for m in machines], dtype=np.float64)
    b = np.array([m.price_per_hour for m in machines], dtype=np.float64)
    coef, _ = nnls(a, b)
    spot_rows = [m for m in machines if m.spot_price_per_hour is not None]
    spot_cpu = spot_mem = None
    if len(spot_rows) >= 2:
        sa = np.array([[m.vcpu, m.memory_gib] for m in spot_rows], dtype=np.float64)
        sb = np.array([m.spot_price_per_hour or 0.0 for m in spot_rows], dtype=np.float64)
        scoef, _ = nnls(sa, sb)
        spot_cpu, spot_mem = float(scoef[0]), float(scoef[1])
    dates = sorted({m.date for m in machines if m.date})
    return UnitPrices(provider, float(coef[0]), float(coef[1]), region=region, family="",
                      spot_vcpu_hour=spot_cpu, spot_gib_hour=spot_mem,
                      source=f"least-squares fit to {len(machines)} machine prices", date=",".join(dates))


def infer_provider(name: str) -> str:
    """``aws``, ``gcp`` or ``azure`` from a machine-type name (``""`` when the name follows none of them).

    Examples
    --------
    >>> infer_provider("m5.large"), infer_provider("n2-standard-4"), infer_provider("Standard_D4s_v5")
    ('aws', 'gcp', 'azure')
    """
    if name.startswith(("Standard_", "Basic_")):
        return "azure"
    if re.fullmatch(r"[a-z][a-z0-9-]*\.[a-z0-9-]+", name):
        return "aws"
    if re.fullmatch(r"[a-z][a-z0-9]*-[a-z]+(-\d+[a-z]*)?(-\w+)?", name):
        return "gcp"
    return ""


_GCE_PER_VCPU = {"standard": 4.0, "highmem": 8.0, "highcpu": 1.0}
_GCE_N1_PER_VCPU = {"standard": 3.75, "highmem": 6.5, "highcpu": 0.9}
_GCE_SHARED = {"e2-medium": (2.0, 4.0), "e2-small": (2.0, 2.0), "e2-micro": (2.0, 1.0)}
_AZ_PER_VCPU = {"D": 4.0, "E": 8.0, "F": 2.0}
_AZ_B = {"B1s": (1, 1), "B1ms": (1, 2), "B2s": (2, 4), "B2ms": (2, 8), "B4ms": (4, 16), "B8ms": (8, 32),
         "B12ms": (12, 48), "B16ms": (16, 64), "B20ms": (20, 80)}


def shape_from_name(name: str) -> tuple[float, float] | None:
    """``(vcpu, memory_gib)`` implied by a GCE or Azure machine-type name, None when the name does not say.

    GCE: ``<family>-standard-N`` has 4 GiB per vCPU (n1: 3.75), ``highmem`` 8 (n1: 6.5), ``highcpu`` 1 (n1: 0.9);
    ``e2-medium``/``small``/``micro`` are 2 shared vCPUs with 4/2/1 GiB. Azure: ``Standard_<D|E|F><N>...`` has N
    vCPUs and 4/8/2 GiB per vCPU (general purpose, memory, compute optimised; 2 for the low-memory ``l``
    variants), and the B-series table.

    Examples
    --------
    >>> shape_from_name("n2-highmem-4"), shape_from_name("n1-standard-2"), shape_from_name("Standard_E8s_v5")
    ((4.0, 32.0), (2.0, 7.5), (8.0, 64.0))
    >>> shape_from_name("m5.large") is None
    True
    """
    if name in _GCE_SHARED:
        return _GCE_SHARED[name]
    m = re.fullmatch(r"([a-z][a-z0-9]*)-(standard|highmem|highcpu)-(\d+)", name)
    if m:
        per = (_GCE_N1_PER_VCPU if m.group(1) == "n1" else _GCE_PER_VCPU)[m.group(2)]
        n = float(m.group(3))
        return n, n * per
    m = re.fullmatch(r"Standard_(B\d+m?s)", name)
    if m and m.group(1) in _AZ_B:
        cpu, mem = _AZ_B[m.group(1)]
        return float(cpu), float(mem)
    m = re.fullmatch(r"Standard_([DEF])(\d+)([a-z]*)(_v\d+)?", name)
    if m:
        n = float(m.group(2))
        per = 2.0 if "l" in m.group(3) else _AZ_PER_VCPU[m.group(1)]  # "l": the low-memory variant
        return n, n * per
    return None


def builtin_catalog() -> PriceCatalog:
    """The built-in table: common AWS (us-east-1), GCP (us-central1) and Azure (eastus) machine types.

    Every row carries its source (repository, commit, file) and date; see ``../shared/benchmarks/pricing`` for
    the full tables they were taken from.
    """
    from opsmind.pricing.loaders import parse_catalog_csv

    machines = parse_catalog_csv(io.StringIO(BUILTIN_CSV), where="built-in price table")
    units = [UnitPrices(p, c, m, region=r, family=f, spot_vcpu_hour=sc, spot_gib_hour=sm, source=s, date=d)
             for p, r, f, c, m, sc, sm, s, d in _BUILTIN_UNITS]
    return PriceCatalog(machines.machines, units, name="built-in")


def with_region(machines: Iterable[MachineType], region: str) -> list[MachineType]:
    """The same machines with ``region`` set where they have none."""
    return [m if m.region else replace(m, region=region) for m in machines]
