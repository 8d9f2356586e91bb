"""Capacity and performance models: M/M/c queueing, the Universal Scalability Law, capacity estimation, what-if
questions and SLO-breach prediction. Pure functions over data; no I/O, no clock."""

from opsmind.capacity.model import (
    BreachPrediction,
    CapacityEstimate,
    LoadForecast,
    WhatIf,
    estimate_capacity,
    predict_breach,
    what_if,
)
from opsmind.capacity.queueing import (
    MMc,
    erlang_b,
    erlang_c,
    max_rate_for_slo,
    mean_response,
    replicas_for_slo,
    response_quantile,
    response_tail,
)
from opsmind.capacity.usl import USLFit, fit_usl, usl_throughput

__all__ = [
    "BreachPrediction",
    "CapacityEstimate",
    "LoadForecast",
    "MMc",
    "USLFit",
    "WhatIf",
    "erlang_b",
    "erlang_c",
    "estimate_capacity",
    "fit_usl",
    "max_rate_for_slo",
    "mean_response",
    "predict_breach",
    "replicas_for_slo",
    "response_quantile",
    "response_tail",
    "usl_throughput",
    "what_if",
]
