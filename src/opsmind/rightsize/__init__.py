"""Rightsizing: container requests and limits from usage history, machine types, and what they cost.

Importing this package registers every strategy in ``RECOMMENDERS``: ``opsmind`` (the default, see
:mod:`opsmind.rightsize.aware`), ``vpa`` (the Kubernetes VPA recommender's formulas) and ``krr-simple``
(Robusta KRR's simple strategy).
"""

from __future__ import annotations

from opsmind.rightsize.aware import ForecastAware, ForecastAwareSettings
from opsmind.rightsize.base import (
    RECOMMENDERS,
    Recommendation,
    Recommender,
    Resources,
    Schedule,
    Undefined,
    WorkloadUsage,
    build_recommender,
    check_usage,
    fmt_cpu,
    fmt_memory,
)
from opsmind.rightsize.classify import Profile, profile
from opsmind.rightsize.krr import KRRSettings, KRRSimple
from opsmind.rightsize.vpa import VPARecommender, VPASettings

__all__ = [
    "RECOMMENDERS",
    "ForecastAware",
    "ForecastAwareSettings",
    "KRRSettings",
    "KRRSimple",
    "Profile",
    "Recommendation",
    "Recommender",
    "Resources",
    "Schedule",
    "Undefined",
    "VPARecommender",
    "VPASettings",
    "WorkloadUsage",
    "build_recommender",
    "check_usage",
    "fmt_cpu",
    "fmt_memory",
    "profile",
]
