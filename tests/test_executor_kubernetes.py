"""The Kubernetes executors through the official client, against the recording fake API server.

No Kubernetes cluster runs here (see tests/kube_fake.py): these tests check the exact requests the executors send
(paths, patch types, dryRun, label selectors) and what they do with the answers.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from kube_fake import FakeKubernetes, deployment, node, replicaset
from opsmind.core import ConfigError
from opsmind.remediate.executors import build_executor
from opsmind.remediate.executors._common import plan_key
from opsmind.remediate.executors.base import Executor
from opsmind.remediate.executors.kubernetes import (
    MARKER,
    RESTARTED_AT,
    KubernetesCordon,
    KubernetesRestart,
    KubernetesRollback,
    KubernetesScale,
    KubernetesSettings,
)

DEPLOY = "/apis/apps/v1/namespaces/shop/deployments/web"
AT = 1_790_000_000.0  # 2026-09-21T14:13:20Z


@pytest.fixture
def kube() -> Iterator[FakeKubernetes]:
    with FakeKubernetes() as fake:
        web = fake.add_deployment(deployment("shop", "web", replicas=3, image="shop/web:3", revision=3))
        fake.replicasets = [replicaset(web, 1, "shop/web:1"), replicaset(web, 2, "shop/web:2"),
                            replicaset(web, 3, "shop/web:3"),
                            # same labels, another owner: must never be picked
                            replicaset(deployment("shop", "web", uid="someone-else"), 2, "evil/web:2", extra_label="x")]
        fake.nodes["node-1"] = node("node-1")
        yield fake


def settings(fake: FakeKubernetes, **kw: object) -> KubernetesSettings:
    return KubernetesSettings.model_validate({"host": fake.url, "namespace": "shop", **kw})


def image(fake: FakeKubernetes) -> str:
    return str(fake.deployments["shop", "web"]["spec"]["template"]["spec"]["containers"][0]["image"])


def test_plans_are_pure_exact_and_validated(kube: FakeKubernetes) -> None:
    scale = KubernetesScale(settings(kube, max_replicas=10))
    assert isinstance(scale, Executor)
    plan = scale.plan("web", {"replicas": 40})
    assert (plan.kind, plan.target, plan.action["replicas"]) == ("kubernetes.scale", "shop/web", 10)
    assert plan.changes == ("set spec.replicas of deployment shop/web to 10",)
    restart = KubernetesRestart(settings(kube)).plan("shop/web", {"at": AT})
    assert restart.changes[0].startswith(f"set pod template annotation {RESTARTED_AT}=2026-09-21T14:13:20Z")
    assert "previous revision" in KubernetesRollback(settings(kube)).plan("shop/web", {}).describe()
    assert KubernetesCordon(settings(kube)).plan("node-1", {}).changes == (
        "cordon node node-1 (set spec.unschedulable to true)",)
    assert kube.requests == []  # planning never calls the API
    with pytest.raises(ConfigError, match=r"kubernetes.scale on shop/web: action.replicas: .*greater than or equal"):
        scale.plan("web", {"replicas": -1})
    with pytest.raises(ConfigError, match=r"action\.at: Field required"):
        KubernetesRestart(settings(kube)).plan("web", {})
    with pytest.raises(ConfigError, match="namespace/deployment"):
        scale.plan("a/b/c", {"replicas": 1})
    with pytest.raises(ConfigError, match="node name"):
        KubernetesCordon(settings(kube)).plan("shop/node-1", {})


def test_scale_dry_run_by_default_then_idempotent_then_rollback(kube: FakeKubernetes) -> None:
    ex = build_executor("kubernetes.scale", settings(kube, token="t0ken"))
    plan = ex.plan("web", {"replicas": 7})
    dry = ex.execute(plan)
    assert (dry.ok, dry.dry_run, dry.changed, dry.before, dry.after) == (True, True, True, {"replicas": 3}, None)
    patch = kube.writes()[-1]
    assert patch.path == DEPLOY + "/scale" and patch.query["dryRun"] == ["All"]
    assert patch.query["fieldManager"] == ["opsmind"] and patch.body == {"spec": {"replicas": 7}}
    assert {r.authorization for r in kube.requests} == {"Bearer t0ken"}
    assert kube.deployments["shop", "web"]["spec"]["replicas"] == 3
    done = ex.execute(plan, dry_run=False)
    assert (done.ok, done.changed, done.before, done.after) == (True, True, {"replicas": 3}, {"replicas": 7})
    assert kube.deployments["shop", "web"]["spec"]["replicas"] == 7
    writes = len(kube.writes())
    again = ex.execute(plan, dry_run=False)
    assert (again.ok, again.changed, again.after) == (True, False, {"replicas": 7})
    assert len(kube.writes()) == writes  # nothing patched the second time
    back = ex.rollback(done, dry_run=False)
    assert (back.ok, back.changed, back.after) == (True, True, {"replicas": 3})
    assert kube.deployments["shop", "web"]["spec"]["replicas"] == 3
    assert back.plan.action == {"rollback_of": plan_key(plan)}


def test_restart_sets_and_restores_the_annotation(kube: FakeKubernetes) -> None:
    ex = KubernetesRestart(settings(kube))
    plan = ex.plan("web", {"at": AT})
    dry = ex.execute(plan)
    assert dry.ok and dry.changed and kube.writes()[-1].query["dryRun"] == ["All"]
    assert RESTARTED_AT not in (kube.deployments["shop", "web"]["spec"]["template"]["metadata"].get("annotations")
                                or {})
    done = ex.execute(plan, dry_run=False)
    assert (done.before, done.after) == ({"restartedAt": None}, {"restartedAt": "2026-09-21T14:13:20Z"})
    patch = kube.writes()[-1]
    assert patch.content_type == "application/merge-patch+json" and "dryRun" not in patch.query
    assert patch.body == {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: "2026-09-21T14:13:20Z"}}}}}
    generation = kube.deployments["shop", "web"]["metadata"]["generation"]
    assert not ex.execute(plan, dry_run=False).changed
    assert kube.deployments["shop", "web"]["metadata"]["generation"] == generation
    back = ex.rollback(done, dry_run=False)
    assert back.ok and back.changed
    assert RESTARTED_AT not in kube.deployments["shop", "web"]["spec"]["template"]["metadata"]["annotations"]


def test_restart_rollback_restores_a_previous_value(kube: FakeKubernetes) -> None:
    kube.add_deployment(deployment("shop", "api", template_annotations={RESTARTED_AT: "2026-01-01T00:00:00Z"}))
    ex = KubernetesRestart(settings(kube))
    done = ex.execute(ex.plan("api", {"at": AT}), dry_run=False)
    assert done.before == {"restartedAt": "2026-01-01T00:00:00Z"}
    assert ex.rollback(done, dry_run=False).after == {"restartedAt": "2026-01-01T00:00:00Z"}
    annotations = kube.deployments["shop", "api"]["spec"]["template"]["metadata"]["annotations"]
    assert annotations[RESTARTED_AT] == "2026-01-01T00:00:00Z"


def test_rollback_to_the_previous_owned_replicaset(kube: FakeKubernetes) -> None:
    ex = KubernetesRollback(settings(kube))
    plan = ex.plan("web", {})
    dry = ex.execute(plan)
    assert dry.ok and dry.changed and dry.details["revision"] == 2 and image(kube) == "shop/web:3"
    listing = next(r for r in kube.requests if r.path.endswith("/replicasets"))
    assert listing.query["labelSelector"] == ["app=web"]
    done = ex.execute(plan, dry_run=False)
    assert done.ok and done.changed and image(kube) == "shop/web:2", done.message
    json.dumps([done.before, done.after, dict(done.details)])  # storable as the audit record
    patch = kube.writes()[-1]
    assert patch.content_type == "application/json-patch+json"
    assert patch.body[0]["op"] == "replace" and patch.body[0]["path"] == "/spec/template"
    template = kube.deployments["shop", "web"]["spec"]["template"]
    assert "pod-template-hash" not in template["metadata"]["labels"]  # as kubectl rollout undo does
    assert kube.deployments["shop", "web"]["metadata"]["annotations"][MARKER] == plan_key(plan)
    writes = len(kube.writes())
    again = ex.execute(plan, dry_run=False)
    assert again.ok and not again.changed and len(kube.writes()) == writes
    back = ex.rollback(done, dry_run=False)
    assert back.ok and back.changed and image(kube) == "shop/web:3"
    assert MARKER not in kube.deployments["shop", "web"]["metadata"]["annotations"]


def test_rollback_to_a_named_revision_and_its_errors(kube: FakeKubernetes) -> None:
    ex = KubernetesRollback(settings(kube))
    done = ex.execute(ex.plan("web", {"to_revision": 1, "run_id": "r1"}), dry_run=False)
    assert done.ok and image(kube) == "shop/web:1"
    missing = ex.execute(ex.plan("web", {"to_revision": 9}), dry_run=False)
    assert not missing.ok and "no ReplicaSet at revision 9 (revisions [1, 2, 3])" in missing.message
    kube.add_deployment(deployment("shop", "lonely", revision=1))
    first = ex.execute(ex.plan("lonely", {}), dry_run=False)
    assert not first.ok and "no revision before 1" in first.message
    paused = deployment("shop", "paused")
    paused["spec"]["paused"] = True
    kube.add_deployment(paused)
    out = ex.execute(ex.plan("paused", {}), dry_run=False)
    assert not out.ok and "is paused" in out.message and out.before is not None


def test_cordon_and_uncordon(kube: FakeKubernetes) -> None:
    ex = build_executor("kubernetes.cordon", {"host": kube.url})
    plan = ex.plan("node-1", {})
    assert ex.execute(plan).changed and kube.nodes["node-1"]["spec"] == {}
    done = ex.execute(plan, dry_run=False)
    assert (done.before, done.after) == ({"unschedulable": False}, {"unschedulable": True})
    assert kube.writes()[-1].path == "/api/v1/nodes/node-1"
    assert kube.nodes["node-1"]["spec"]["unschedulable"] is True
    assert not ex.execute(plan, dry_run=False).changed
    back = ex.rollback(done, dry_run=False)
    assert back.ok and back.changed and kube.nodes["node-1"]["spec"]["unschedulable"] is False


def test_failures_are_one_line_outcomes(kube: FakeKubernetes) -> None:
    ex = KubernetesScale(settings(kube))
    gone = ex.execute(ex.plan("nope", {"replicas": 2}), dry_run=False)
    assert not gone.ok and "HTTP 404" in gone.message and "nope" in gone.message
    restart = KubernetesRestart(settings(kube))
    gone = restart.execute(restart.plan("nope", {"at": AT}), dry_run=False)
    assert not gone.ok and 'HTTP 404 Not Found: deployments.apps "nope" not found' in gone.message
    assert "\n" not in gone.message
    down = KubernetesScale(KubernetesSettings(host="http://127.0.0.1:9", timeout_s=2))
    out = down.execute(down.plan("shop/web", {"replicas": 2}), dry_run=False)
    assert not out.ok and "cannot reach the API server" in out.message
    wrong = ex.execute(KubernetesCordon(settings(kube)).plan("node-1", {}), dry_run=False)
    assert not wrong.ok and "runs 'kubernetes.scale' plans, not 'kubernetes.cordon'" in wrong.message
    assert kube.nodes["node-1"]["spec"] == {}
    nothing = ex.rollback(ex.execute(ex.plan("web", {"replicas": 5})))  # a dry run: nothing to undo
    assert nothing.ok and not nothing.changed and kube.deployments["shop", "web"]["spec"]["replicas"] == 3
