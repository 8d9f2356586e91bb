"""Reading price catalogs from CSV (optionally gzipped) and JSON files.

CSV columns are recognised by name (case-insensitive); unknown columns are ignored:

- machine name: ``machine_type``, ``instance_type``, ``sku``, ``name``;
- shape: ``vcpu``/``vcpus``/``cpu``/``cores``; ``memory_gib``/``memory_gb`` (read as GiB)/``memory_mib``;
  missing shapes are read from GCE and Azure names (:func:`~opsmind.pricing.catalog.shape_from_name`);
- price per hour: ``on_demand_usd_per_hour`` (any column starting so, e.g. Karpenter's
  ``on_demand_usd_per_hour_us_east_1``), ``usd_per_hour``, ``price_per_hour``, ``price``;
  spot: ``spot_usd_per_hour``, ``preemptible_spot_usd_per_hour``;
- optional: ``provider``, ``region``, ``arch``, ``gpu_count``/``gpus``, ``allocatable_cpu_m``/``allocatable_vcpu``,
  ``allocatable_memory_mib``/``allocatable_memory_gib``, ``source``, ``date``.

A CSV with ``vcpu_usd_per_hour`` and ``memory_gb_usd_per_hour`` columns is a table of unit prices per machine
family (GCE's, with an optional ``preemptible_price_ratio``). A JSON file is either OpenCost's unit-price format
(``{"CPU": ..., "RAM": ..., "spotCPU": ..., "spotRAM": ...}``, per vCPU-hour and GiB-hour) or
``{"machines": [{...}], "unit_prices": [{...}]}`` (or a bare list of machines) with the CSV column names as keys.

Every malformed row raises a one-line :class:`~opsmind.core.DataError` naming the file, line and column.
"""

from __future__ import annotations

import gzip
import io
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import pandas as pd

from opsmind.core.errors import DataError
from opsmind.pricing.catalog import MachineType, PriceCatalog, UnitPrices, infer_provider, shape_from_name

__all__ = ["load_catalog", "parse_catalog_csv"]

_NAME = ("machine_type", "instance_type", "sku", "name")
_VCPU = ("vcpu", "vcpus", "cpu", "cores")
_PRICE = ("on_demand_usd_per_hour", "usd_per_hour", "price_per_hour", "price", "on_demand")
_SPOT = ("spot_usd_per_hour", "preemptible_spot_usd_per_hour", "spot_price_per_hour", "spot")


def load_catalog(path: str | Path, *, provider: str | None = None, region: str | None = None) -> PriceCatalog:
    """Read a user's price catalog (CSV, CSV.gz or JSON); ``provider``/``region`` fill rows that do not say.

    ``region`` also filters a file that lists several regions (Azure's table has 57).
    """
    file = Path(path)
    where = str(path)
    if not file.is_file():
        raise DataError("no such file" if not file.exists() else "not a regular file", where=where)
    raw = file.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise DataError(f"cannot decompress: {exc}", where=where) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DataError("not UTF-8 text", where=where) from None
    if not text.strip():
        raise DataError("the file is empty", where=where)
    if text.lstrip()[:1] in "{[":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"invalid JSON: {exc.msg}", where=where, row=exc.lineno) from None
        catalog = _from_json(data, where, provider, region)
    else:
        catalog = parse_catalog_csv(io.StringIO(text), where=where, provider=provider, region=region)
    if not catalog.machines and not catalog.units:
        raise DataError("no machine types or unit prices found"
                        + (f" for region {region!r}" if region else ""), where=where)
    return PriceCatalog(catalog.machines, catalog.units, name=file.name)


def parse_catalog_csv(
    source: IO[str], *, where: str, provider: str | None = None, region: str | None = None
) -> PriceCatalog:
    """Parse CSV text (see the module docstring for the columns)."""
    try:
        df = pd.read_csv(source, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read CSV: {str(exc).splitlines()[0]}", where=where) from None
    df.columns = [str(c).strip().lower() for c in df.columns]
    rows: list[dict[str, Any]] = [{str(k): v for k, v in r.items()} for r in df.to_dict("records")]
    cols = [str(c) for c in df.columns]
    if "vcpu_usd_per_hour" in cols:
        return PriceCatalog((), [_unit_row(r, where, i + 2, provider, region) for i, r in enumerate(rows)])
    name_col = _pick(cols, _NAME)
    if name_col is None:
        raise DataError(f"no machine-type column (one of {', '.join(_NAME)}); columns: {', '.join(cols)}",
                        where=where)
    price_col = _pick(cols, _PRICE, prefix=True)
    if price_col is None:
        raise DataError(f"no price column (one of {', '.join(_PRICE)}); columns: {', '.join(cols)}", where=where)
    if provider is None and "provider" not in cols:
        provider = _majority_provider([_text(r, name_col) for r in rows])
    machines = []
    for i, r in enumerate(rows):
        if region is not None and r.get("region", region) not in (region, ""):
            continue
        m = _machine_row(r, where, i + 2, name_col, price_col, provider, region)
        if m is not None:
            machines.append(m)
    return PriceCatalog(machines)


def _majority_provider(names: Sequence[str]) -> str | None:
    """The provider most names follow, when at least 80 % of the names follow it (rows that say nothing get it)."""
    guesses = [infer_provider(n) for n in names if n]
    if not guesses:
        return None
    best = max(set(guesses), key=guesses.count)
    return best if best and guesses.count(best) >= 0.8 * len(guesses) else None


def _pick(cols: Sequence[str], names: Sequence[str], prefix: bool = False) -> str | None:
    for n in names:
        if n in cols:
            return n
    if prefix:
        for n in names:
            for c in cols:
                if c.startswith(n):
                    return c
    return None


def _num(row: Mapping[str, Any], col: str | None, where: str, line: int, *, required: bool = False
         ) -> float | None:
    if col is None or col not in row:
        if required:
            raise DataError("missing value", where=where, row=line, column=col)
        return None
    raw = row[col]
    if raw is None or (isinstance(raw, str) and raw.strip() == ""):
        if required:
            raise DataError("missing value", where=where, row=line, column=col)
        return None
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise DataError(f"{raw!r} is not a number", where=where, row=line, column=col) from None
    if not math.isfinite(value) or value < 0:
        raise DataError(f"{raw!r} is not a finite non-negative number", where=where, row=line, column=col)
    return value


def _text(row: Mapping[str, Any], col: str, default: str = "") -> str:
    v = row.get(col)
    return default if v is None else str(v).strip() or default


def _machine_row(row: Mapping[str, Any], where: str, line: int, name_col: str, price_col: str,
                 provider: str | None, region: str | None) -> MachineType | None:
    name = _text(row, name_col)
    if not name:
        raise DataError("empty machine type name", where=where, row=line, column=name_col)
    price = _num(row, price_col, where, line)
    if price is None:  # a machine without a price (Karpenter lists a few) cannot be priced: skip it
        return None
    cols = list(row)
    vcpu = _num(row, _pick(cols, _VCPU), where, line)
    mem: float | None = None
    if "memory_gib" in row:
        mem = _num(row, "memory_gib", where, line)
    elif "memory_gb" in row:
        mem = _num(row, "memory_gb", where, line)
    elif "memory_mib" in row:
        mib = _num(row, "memory_mib", where, line)
        mem = None if mib is None else mib / 1024.0
    if vcpu is None or mem is None:
        shape = shape_from_name(name)
        if shape is not None:
            vcpu = vcpu if vcpu is not None else shape[0]
            mem = mem if mem is not None else shape[1]
    acpu = _num(row, "allocatable_vcpu", where, line)
    if acpu is None and "allocatable_cpu_m" in row:
        m_ = _num(row, "allocatable_cpu_m", where, line)
        acpu = None if m_ is None else m_ / 1000.0
    amem = _num(row, "allocatable_memory_gib", where, line)
    if amem is None and "allocatable_memory_mib" in row:
        mib = _num(row, "allocatable_memory_mib", where, line)
        amem = None if mib is None else mib / 1024.0
    gpus = _num(row, _pick(cols, ("gpu_count", "gpus")), where, line)
    prov = _text(row, "provider") or infer_provider(name) or provider or "custom"
    return MachineType(
        provider=prov, name=name, vcpu=vcpu if vcpu is not None else 0.0,
        memory_gib=mem if mem is not None else 0.0, price_per_hour=price,
        region=_text(row, "region") or region or "", spot_price_per_hour=_num(row, _pick(cols, _SPOT), where, line),
        allocatable_vcpu=acpu, allocatable_memory_gib=amem, arch=_text(row, "arch"),
        gpus=int(gpus or 0), source=_text(row, "source", where), date=_text(row, "date"),
    )


def _unit_row(row: Mapping[str, Any], where: str, line: int, provider: str | None, region: str | None
              ) -> UnitPrices:
    cpu = _num(row, "vcpu_usd_per_hour", where, line, required=True)
    mem_col = _pick(list(row), ("memory_gib_usd_per_hour", "memory_gb_usd_per_hour", "gib_usd_per_hour"))
    mem = _num(row, mem_col, where, line, required=True)
    assert cpu is not None and mem is not None
    ratio = _num(row, "preemptible_price_ratio", where, line)
    family = _text(row, "family")
    return UnitPrices(
        provider=_text(row, "provider") or provider or (infer_provider(f"{family}-standard-2") if family else "")
        or "custom",
        vcpu_hour=cpu, gib_hour=mem, region=_text(row, "region") or region or "", family=family,
        spot_vcpu_hour=None if ratio is None else cpu * ratio, spot_gib_hour=None if ratio is None else mem * ratio,
        source=_text(row, "source", where), date=_text(row, "date"),
    )


def _from_json(data: Any, where: str, provider: str | None, region: str | None) -> PriceCatalog:
    if isinstance(data, Mapping) and "CPU" in data and "RAM" in data:
        cpu = _num(data, "CPU", where, 1, required=True)
        mem = _num(data, "RAM", where, 1, required=True)
        assert cpu is not None and mem is not None
        unit = UnitPrices(provider or "default", cpu, mem, region=region or "",
                          spot_vcpu_hour=_num(data, "spotCPU", where, 1), spot_gib_hour=_num(data, "spotRAM", where, 1),
                          source=str(data.get("_source") or data.get("description") or where))
        return PriceCatalog((), [unit])
    if isinstance(data, list):
        data = {"machines": data}
    if not isinstance(data, Mapping) or not ({"machines", "unit_prices"} & set(data)):
        raise DataError("JSON must be OpenCost unit prices ({\"CPU\", \"RAM\", ...}), a list of machines or "
                        "{\"machines\": [...], \"unit_prices\": [...]}", where=where)
    machines_raw = data.get("machines") or []
    units_raw = data.get("unit_prices") or []
    if not isinstance(machines_raw, list) or not isinstance(units_raw, list):
        raise DataError("'machines' and 'unit_prices' must be lists", where=where)
    machines = []
    for i, r in enumerate(machines_raw):
        if not isinstance(r, Mapping):
            raise DataError(f"machines[{i}] is not an object", where=where)
        low = {str(k).lower(): v for k, v in r.items()}
        cols = list(low)
        name_col, price_col = _pick(cols, _NAME), _pick(cols, _PRICE, prefix=True)
        if name_col is None or price_col is None:
            raise DataError(f"machines[{i}] needs a name and a price per hour", where=where)
        m = _machine_row(low, f"{where} machines[{i}]", i + 1, name_col, price_col, provider, region)
        if m is not None and (region is None or m.region in (region, "")):
            machines.append(m)
    units = []
    for i, r in enumerate(units_raw):
        if not isinstance(r, Mapping):
            raise DataError(f"unit_prices[{i}] is not an object", where=where)
        units.append(_unit_row({str(k).lower(): v for k, v in r.items()}, f"{where} unit_prices[{i}]", i + 1,
                               provider, region))
    return PriceCatalog(machines, units)
