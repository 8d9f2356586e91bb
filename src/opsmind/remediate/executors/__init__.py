"""Remediation executors: one class per action kind, all following :mod:`opsmind.remediate.executors.base`.

``EXECUTORS`` maps a kind (``kubernetes.scale``, ``alertmanager.silence``, ``http.webhook``, ``shell``,
``supervisor.restart`` ...) to its class; :func:`build_executor` makes one from its settings (a pydantic model
instance, a mapping validated into the class's ``settings_model``, or nothing for the defaults).

>>> sorted(EXECUTORS)[:3]
['alertmanager.expire', 'alertmanager.silence', 'http.webhook']
>>> build_executor("kubernetes.scale", {"namespace": "shop"}).plan("web", {"replicas": 4}).describe()
'kubernetes.scale on shop/web: set spec.replicas of deployment shop/web to 4'
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from opsmind.core.errors import ConfigError
from opsmind.remediate.executors._common import ExecutorBase, plan_key, validation_text
from opsmind.remediate.executors.base import Executor, Outcome, Plan
from opsmind.remediate.executors.kubernetes import (
    KubernetesCordon,
    KubernetesRestart,
    KubernetesRollback,
    KubernetesScale,
    KubernetesSettings,
)
from opsmind.remediate.executors.shell import AllowedCommand, Shell, ShellSettings
from opsmind.remediate.executors.silences import SilenceCreate, SilenceExpire, SilenceSettings
from opsmind.remediate.executors.supervisor import (
    SupervisorRestart,
    SupervisorSettings,
    SupervisorStart,
    SupervisorStop,
)
from opsmind.remediate.executors.webhook import Webhook, WebhookSettings

__all__ = [
    "EXECUTORS",
    "AllowedCommand",
    "Executor",
    "KubernetesSettings",
    "Outcome",
    "Plan",
    "ShellSettings",
    "SilenceSettings",
    "SupervisorSettings",
    "WebhookSettings",
    "build_executor",
    "plan_key",
]

_CLASSES: tuple[type[ExecutorBase[Any]], ...] = (
    KubernetesScale, KubernetesRestart, KubernetesRollback, KubernetesCordon,
    SilenceCreate, SilenceExpire,
    Webhook,
    Shell,
    SupervisorRestart, SupervisorStart, SupervisorStop,
)
EXECUTORS: dict[str, type[ExecutorBase[Any]]] = {cls.kind: cls for cls in _CLASSES}


def build_executor(kind: str, settings: BaseModel | Mapping[str, Any] | None = None, **kwargs: Any) -> Executor:
    """An executor of ``kind``; ``kwargs`` go to its constructor (e.g. ``api_client``, ``sleep``).

    Raises :class:`~opsmind.core.ConfigError` for an unknown kind or invalid settings, naming the field.
    """
    try:
        cls = EXECUTORS[kind]
    except KeyError:
        raise ConfigError(f"executor kind {kind!r} is unknown; known kinds: {', '.join(sorted(EXECUTORS))}") from None
    model = cls.settings_model
    if settings is None or isinstance(settings, Mapping):
        try:
            settings = model.model_validate(dict(settings or {}))
        except ValidationError as exc:
            raise ConfigError(f"{kind} settings: {validation_text(exc, root='')}") from None
    elif not isinstance(settings, model):
        raise ConfigError(f"{kind} settings: expected {model.__name__}, got {type(settings).__name__}")
    executor: Executor = cls(settings, **kwargs)  # type: ignore[call-arg]
    return executor
