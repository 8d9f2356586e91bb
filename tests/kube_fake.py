"""A small fake Kubernetes API server that records every request.

No Kubernetes cluster (and no kube-apiserver binary) runs in this environment, so the Kubernetes executors are
tested through the official ``kubernetes`` client against this loopback HTTP server. It implements only the calls
the executors make, over in-memory objects:

- ``GET``/``PATCH /apis/apps/v1/namespaces/NS/deployments/NAME`` and ``.../NAME/scale`` (an ``autoscaling/v1``
  Scale);
- ``GET /apis/apps/v1/namespaces/NS/replicasets?labelSelector=k=v,...`` (equality terms only);
- ``GET``/``PATCH /api/v1/nodes/NAME``.

PATCH accepts JSON merge patch (RFC 7386), strategic merge patch (applied as a merge patch: enough for the maps
and scalars patched here) and JSON patch (RFC 6902: add, remove, replace, test). ``?dryRun=All`` computes and
returns the result without storing it; any other ``dryRun`` value is a 400, as on a real server. Unknown objects
are a 404 ``Status``; a negative replica count is a 422. Every change of ``spec`` bumps
``metadata.generation`` and every write bumps ``metadata.resourceVersion``. No controllers run: Deployments do
not create ReplicaSets or pods, and revisions do not change unless a test sets them. The ``Authorization``
header is recorded, not checked.
"""

from __future__ import annotations

import copy
import json
import re
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

DEPLOYMENT = re.compile(r"^/apis/apps/v1/namespaces/([^/]+)/deployments/([^/]+)(/scale)?$")
REPLICASETS = re.compile(r"^/apis/apps/v1/namespaces/([^/]+)/replicasets$")
NODE = re.compile(r"^/api/v1/nodes/([^/]+)$")


@dataclass(frozen=True)
class Request:
    """One request the fake received."""

    method: str
    path: str
    query: dict[str, list[str]]
    content_type: str
    body: Any
    authorization: str = ""


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def _pointer(path: str) -> list[str]:
    if not path.startswith("/"):
        raise ApiError(422, "Invalid", f"json patch path {path!r} must start with '/'")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def json_patch(doc: Any, ops: Any) -> Any:
    """RFC 6902 (add, remove, replace, test) over objects and lists."""
    if not isinstance(ops, list):
        raise ApiError(400, "BadRequest", "a json patch must be a list of operations")
    doc = copy.deepcopy(doc)
    for op in ops:
        *parents, last = _pointer(op["path"])
        node = doc
        for part in parents:
            try:
                node = node[int(part)] if isinstance(node, list) else node[part]
            except (KeyError, IndexError, ValueError):
                raise ApiError(422, "Invalid", f"json patch: path {op['path']!r} does not exist") from None
        kind = op["op"]
        if isinstance(node, list):
            index = len(node) if last == "-" else int(last)
            if kind == "add":
                node.insert(index, op["value"])
            elif kind == "remove":
                node.pop(index)
            elif kind == "replace":
                node[index] = op["value"]
            elif kind == "test" and node[index] != op["value"]:
                raise ApiError(422, "Invalid", f"json patch: test failed at {op['path']!r}")
            continue
        if not isinstance(node, dict):
            raise ApiError(422, "Invalid", f"json patch: parent of {op['path']!r} is not an object")
        if kind in ("remove", "replace", "test") and last not in node:
            raise ApiError(422, "Invalid", f"json patch: {kind} of missing path {op['path']!r}")
        if kind in ("add", "replace"):
            node[last] = copy.deepcopy(op["value"])
        elif kind == "remove":
            del node[last]
        elif kind == "test":
            if node[last] != op["value"]:
                raise ApiError(422, "Invalid", f"json patch: test failed at {op['path']!r}")
        else:
            raise ApiError(422, "Invalid", f"json patch: unsupported op {kind!r}")
    return doc


def deployment(namespace: str, name: str, *, replicas: int = 3, image: str = "shop/web:3", revision: int = 3,
               uid: str | None = None, template_annotations: dict[str, str] | None = None) -> dict[str, Any]:
    """A Deployment object as an API server returns it."""
    meta: dict[str, Any] = {"labels": {"app": name}}
    if template_annotations:
        meta["annotations"] = dict(template_annotations)
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "uid": uid or f"uid-{namespace}-{name}",
                     "generation": 1, "resourceVersion": "1",
                     "annotations": {"deployment.kubernetes.io/revision": str(revision)}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": meta, "spec": {"containers": [{"name": name, "image": image}]}}},
        "status": {"replicas": replicas, "observedGeneration": 1},
    }


def replicaset(owner: dict[str, Any], revision: int, image: str, *, extra_label: str = "") -> dict[str, Any]:
    """A ReplicaSet owned by Deployment ``owner`` at ``revision`` running ``image``."""
    name = owner["metadata"]["name"]
    hash_ = f"h{revision}{extra_label}"
    return {
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": f"{name}-{hash_}", "namespace": owner["metadata"]["namespace"],
                     "labels": {"app": name, "pod-template-hash": hash_},
                     "annotations": {"deployment.kubernetes.io/revision": str(revision)},
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": name,
                                          "uid": owner["metadata"]["uid"], "controller": True}]},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": name, "pod-template-hash": hash_}},
                 "template": {"metadata": {"labels": {"app": name, "pod-template-hash": hash_}},
                              "spec": {"containers": [{"name": name, "image": image}]}}},
    }


def node(name: str, *, unschedulable: bool = False) -> dict[str, Any]:
    spec: dict[str, Any] = {"unschedulable": True} if unschedulable else {}
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "resourceVersion": "1"}, "spec": spec}


class FakeKubernetes:
    """The fake API server: in-memory ``deployments``, ``replicasets``, ``nodes``; ``requests`` records calls."""

    def __init__(self) -> None:
        self.deployments: dict[tuple[str, str], dict[str, Any]] = {}
        self.replicasets: list[dict[str, Any]] = []
        self.nodes: dict[str, dict[str, Any]] = {}
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FakeKubernetes:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def add_deployment(self, obj: dict[str, Any]) -> dict[str, Any]:
        self.deployments[(obj["metadata"]["namespace"], obj["metadata"]["name"])] = obj
        return obj

    def writes(self) -> list[Request]:
        """The requests that were not GETs."""
        return [r for r in self.requests if r.method != "GET"]

    # -- request handling
    def handle(self, method: str, raw_path: str, content_type: str, body: Any, authorization: str = ""
               ) -> tuple[int, Any]:
        parts = urlsplit(raw_path)
        query = parse_qs(parts.query)
        with self._lock:
            self.requests.append(Request(method, parts.path, query, content_type, body, authorization))
            try:
                dry = query.get("dryRun", [])
                if dry and dry != ["All"]:
                    raise ApiError(400, "BadRequest", f"invalid dry run option {dry!r}")
                return 200, self._route(method, parts.path, query, content_type, body, bool(dry))
            except ApiError as exc:
                return exc.code, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": exc.message,
                                  "reason": exc.reason, "code": exc.code}

    def _route(self, method: str, path: str, query: dict[str, list[str]], ctype: str, body: Any,
               dry: bool) -> Any:
        if m := DEPLOYMENT.match(path):
            key = (m.group(1), m.group(2))
            if key not in self.deployments:
                raise ApiError(404, "NotFound", f'deployments.apps "{key[1]}" not found')
            if m.group(3):
                return self._scale(key, method, ctype, body, dry)
            if method == "PATCH":
                patched = self._patched(self.deployments[key], ctype, body)
                if not dry:
                    self.deployments[key] = patched
                return patched
            return self.deployments[key]
        if (m := REPLICASETS.match(path)) and method == "GET":
            terms = [t.split("=", 1) for t in query.get("labelSelector", [""])[0].split(",") if t]
            items = [rs for rs in self.replicasets if rs["metadata"]["namespace"] == m.group(1)
                     and all(rs["metadata"].get("labels", {}).get(k) == v for k, v in terms)]
            return {"apiVersion": "apps/v1", "kind": "ReplicaSetList", "metadata": {}, "items": items}
        if m := NODE.match(path):
            name = m.group(1)
            if name not in self.nodes:
                raise ApiError(404, "NotFound", f'nodes "{name}" not found')
            if method == "PATCH":
                patched = self._patched(self.nodes[name], ctype, body)
                if not dry:
                    self.nodes[name] = patched
                return patched
            return self.nodes[name]
        raise ApiError(404, "NotFound", f"the server could not find the requested resource ({method} {path})")

    def _patched(self, obj: dict[str, Any], ctype: str, body: Any) -> dict[str, Any]:
        new: dict[str, Any]
        if "json-patch" in ctype:
            new = json_patch(obj, body)
        elif "merge-patch" in ctype:
            new = merge_patch(obj, body)
        else:
            raise ApiError(415, "UnsupportedMediaType", f"unsupported patch type {ctype!r}")
        if new.get("spec") != obj.get("spec"):
            new["metadata"]["generation"] = int(obj["metadata"].get("generation", 1)) + 1
        new["metadata"]["resourceVersion"] = str(int(obj["metadata"].get("resourceVersion", "1")) + 1)
        replicas = new.get("spec", {}).get("replicas", 0)
        if isinstance(replicas, int) and replicas < 0:
            raise ApiError(422, "Invalid", f"spec.replicas: Invalid value: {replicas}: must be >= 0")
        return new

    def _scale(self, key: tuple[str, str], method: str, ctype: str, body: Any, dry: bool) -> Any:
        obj = self.deployments[key]
        if method == "PATCH":
            scale = self._patched(self._scale_of(obj), ctype, body)
            new = merge_patch(obj, {"spec": {"replicas": scale["spec"]["replicas"]}})
            new["metadata"]["resourceVersion"] = scale["metadata"]["resourceVersion"]
            new["metadata"]["generation"] = int(obj["metadata"]["generation"]) + 1
            if not dry:
                self.deployments[key] = new
            return self._scale_of(new)
        return self._scale_of(obj)

    @staticmethod
    def _scale_of(obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj["metadata"]
        return {"kind": "Scale", "apiVersion": "autoscaling/v1",
                "metadata": {"name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"],
                             "resourceVersion": meta["resourceVersion"]},
                "spec": {"replicas": obj["spec"]["replicas"]},
                "status": {"replicas": obj.get("status", {}).get("replicas", 0), "selector": f"app={meta['name']}"}}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._answer("GET")

            def do_PATCH(self) -> None:
                self._answer("PATCH")

            def _answer(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    code, answer = 400, {"kind": "Status", "code": 400, "reason": "BadRequest",
                                         "message": "body is not JSON"}
                else:
                    code, answer = owner.handle(method, self.path, self.headers.get("Content-Type", ""), body,
                                                self.headers.get("Authorization", ""))
                payload = json.dumps(answer).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: object) -> None:
                return

        return Handler
