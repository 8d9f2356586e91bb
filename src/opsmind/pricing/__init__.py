"""Cloud prices: machine types and per-vCPU-hour / per-GiB-hour unit prices, a small built-in table, loaders.

:func:`builtin_catalog` is a few dozen common AWS, GCP and Azure machine types (each row names its source and
date); :func:`load_catalog` reads a user's CSV or JSON file (the files under ``../shared/benchmarks/pricing`` are
examples of what it reads). :class:`PriceCatalog` answers "what does a vCPU-hour and a GiB-hour cost here" and
"which machine type is the cheapest that fits".
"""

from __future__ import annotations

from opsmind.pricing.catalog import (
    HOURS_PER_MONTH,
    MachineType,
    PriceCatalog,
    UnitPrices,
    builtin_catalog,
    infer_provider,
    shape_from_name,
)
from opsmind.pricing.loaders import load_catalog

__all__ = [
    "HOURS_PER_MONTH",
    "MachineType",
    "PriceCatalog",
    "UnitPrices",
    "builtin_catalog",
    "infer_provider",
    "load_catalog",
    "shape_from_name",
]
