"""Forecasters. Importing this package registers every forecaster in ``FORECASTERS``."""

from __future__ import annotations

from opsmind.forecast.base import FORECASTERS, Forecast, Forecaster, default_forecaster
from opsmind.forecast.ensemble import Ensemble
from opsmind.forecast.naive import SeasonalNaive
from opsmind.forecast.resample import mask_outages, regularise
from opsmind.forecast.seasonality import detect_periods
from opsmind.forecast.sf import ETS, MSTL, Theta

__all__ = [
    "ETS",
    "FORECASTERS",
    "MSTL",
    "Ensemble",
    "Forecast",
    "Forecaster",
    "SeasonalNaive",
    "Theta",
    "default_forecaster",
    "detect_periods",
    "mask_outages",
    "regularise",
]
