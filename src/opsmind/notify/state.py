"""What has been announced where, kept in the audit log so that a restarted process neither repeats nor forgets.

Each delivery is one audit entry of the alert's tenant, written by actor ``notify``:
``notify.sent`` when a channel announced a firing alert, ``notify.resolved`` when it announced the end. The target
is the alert's fingerprint; ``details`` hold the channel and the alert itself, so that an alert still open after a
restart can be announced as resolved with its labels and annotations. Replaying the entries oldest first gives,
per channel, the alerts announced and not yet resolved.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from opsmind.core.alerts import Alert
from opsmind.core.errors import DataError
from opsmind.store import Store

__all__ = ["ACTOR", "RESOLVED", "SENT", "alert_from_json", "alert_to_json", "load_open", "record"]

ACTOR = "notify"
SENT = "notify.sent"
RESOLVED = "notify.resolved"
_PAGE = 1000
log = logging.getLogger(__name__)


def alert_to_json(alert: Alert) -> dict[str, Any]:
    return {"labels": dict(alert.labels), "annotations": dict(alert.annotations), "starts_at": alert.starts_at,
            "generator_url": alert.generator_url}


def alert_from_json(data: Any) -> Alert:
    if not isinstance(data, Mapping) or not isinstance(data.get("labels"), Mapping):
        raise DataError("notify audit entry: details.alert.labels missing")
    starts = data.get("starts_at")
    if not isinstance(starts, int | float):
        raise DataError("notify audit entry: details.alert.starts_at is not a number")
    return Alert(labels=dict(data["labels"]), starts_at=float(starts), annotations=dict(data.get("annotations") or {}),
                 generator_url=str(data.get("generator_url") or ""))


def record(store: Store, tenant: str, action: str, channel: str, alert: Alert, at: float) -> None:
    """Append one delivery to the audit log."""
    store.audit.record(tenant, ACTOR, action, target=alert.fingerprint, at=at,
                       details={"channel": channel, "alert": alert_to_json(alert)})


def load_open(store: Store, tenant: str, since: float | None = None) -> dict[str, dict[str, Alert]]:
    """Per channel, the alerts announced as firing and not (yet) as resolved, from entries at or after ``since``."""
    entries: list[tuple[float, int, str, str, Any]] = []
    for action in (SENT, RESOLVED):
        offset = 0
        while True:
            page = store.audit.list(tenant, since=since, actor=ACTOR, action=action, limit=_PAGE, offset=offset)
            entries += [(e.at, e.id, e.action, e.target or "", e.details) for e in page]
            if len(page) < _PAGE:
                break
            offset += _PAGE
    state: dict[str, dict[str, Alert]] = {}
    for _, entry_id, action, target, details in sorted(entries, key=lambda e: (e[0], e[1])):
        channel = details.get("channel") if isinstance(details, Mapping) else None
        if not isinstance(channel, str) or not target:
            log.warning("notify: audit entry %s has no channel or target; ignored", entry_id)
            continue
        opened = state.setdefault(channel, {})
        if action == RESOLVED:
            opened.pop(target, None)
            continue
        try:
            opened[target] = alert_from_json(details.get("alert"))
        except DataError as exc:
            log.warning("notify: audit entry %s: %s; ignored", entry_id, exc)
    return state
