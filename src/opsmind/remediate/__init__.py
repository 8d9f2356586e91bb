"""Remediation: playbooks (:mod:`~opsmind.remediate.playbook`), guardrails (:mod:`~opsmind.remediate.guardrails`),
the runner (:class:`Remediator`), verification (:mod:`~opsmind.remediate.verify`), incident classes and
suggestions (:mod:`~opsmind.remediate.classes`), and the executors (:mod:`~opsmind.remediate.executors`).

Safe by construction: dry-run is the default; every action is planned before it runs; guardrails (allow-list,
maintenance windows, circuit breaker, rate limits, blast radius, approval, target locks) decide, each decision
is an audit record; a failed verification rolls the actions back.
"""

from __future__ import annotations

from opsmind.remediate.classes import Suggestion, classify, suggest
from opsmind.remediate.events import Event, matches
from opsmind.remediate.guardrails import AllowRule, Decision, GuardPolicy
from opsmind.remediate.ledger import Ledger, RunRecord, approve, deny
from opsmind.remediate.playbook import Playbook, load_playbook, load_playbooks, playbook_schema
from opsmind.remediate.runner import Remediator
from opsmind.remediate.verify import PrometheusVerifier, Verifier, VerifyResult

__all__ = [
    "AllowRule",
    "Decision",
    "Event",
    "GuardPolicy",
    "Ledger",
    "Playbook",
    "PrometheusVerifier",
    "Remediator",
    "RunRecord",
    "Suggestion",
    "Verifier",
    "VerifyResult",
    "approve",
    "classify",
    "deny",
    "load_playbook",
    "load_playbooks",
    "matches",
    "playbook_schema",
    "suggest",
]
