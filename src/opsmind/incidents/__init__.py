"""Incidents: alerts deduplicated by fingerprint, grouped by labels, time and topology, prioritised, with root
cause attached and recurrences linked."""

from opsmind.incidents.correlate import (
    CallGraph,
    CorrelatorSettings,
    Incident,
    IncidentCorrelator,
    TrackedAlert,
    graph_from_mapping,
)

__all__ = ["CallGraph", "CorrelatorSettings", "Incident", "IncidentCorrelator", "TrackedAlert", "graph_from_mapping"]
