"""The dashboard's files: served by ``opsmind.web.mount`` with the right content types, self-contained (no external
URLs, every referenced file and module present), and JavaScript that parses; the pure JavaScript helpers (the
event-stream parser, chart ticks, decimation, number formatting) are run under Node when it is installed."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from opsmind.web import STATIC_DIR, mount

NODE = shutil.which("node")
STATIC_FILES = sorted(p for p in STATIC_DIR.rglob("*") if p.is_file())
JS_FILES = [p for p in STATIC_FILES if p.suffix == ".js"]
# an XML namespace name, which browsers never fetch (an SVG element needs it in createElementNS and in .svg files)
ALLOWED_URLS = {"http://www.w3.org/2000/svg"}


@pytest.fixture(scope="module")
def client() -> TestClient:
    app = FastAPI()
    mount(app)
    return TestClient(app)


def _rel(p: Path) -> str:
    return p.relative_to(STATIC_DIR).as_posix()


def test_the_page_is_served_at_the_root(client: TestClient) -> None:
    res = client.get("/")
    assert res.status_code == 200
    assert res.headers["content-type"] == "text/html; charset=utf-8"
    assert '<script type="module" src="/ui/app.js">' in res.text
    assert res.headers["cache-control"] == "no-cache"


@pytest.mark.parametrize(("path", "content_type"), [
    ("/ui/app.js", "text/javascript"),
    ("/ui/views/series.js", "text/javascript"),
    ("/ui/style.css", "text/css"),
    ("/ui/favicon.svg", "image/svg+xml"),
    ("/ui/index.html", "text/html"),
])
def test_assets_have_their_content_types(client: TestClient, path: str, content_type: str) -> None:
    res = client.get(path)
    assert res.status_code == 200, path
    assert res.headers["content-type"].split(";")[0] == content_type
    assert res.headers["cache-control"] == "no-cache"  # revalidated, so an upgrade never mixes old and new modules
    again = client.get(path, headers={"If-None-Match": res.headers["etag"]})
    assert again.status_code == 304


def test_unknown_and_escaping_paths_are_404(client: TestClient) -> None:
    assert client.get("/ui/nope.js").status_code == 404
    assert client.get("/ui/../__init__.py").status_code == 404
    assert client.get("/ui/%2e%2e/__init__.py").status_code == 404
    res = client.get("/ui", follow_redirects=False)
    assert res.status_code == 307 and res.headers["location"] == "/"


def test_mount_leaves_the_api_alone() -> None:
    app = FastAPI()

    @app.get("/api/v1/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    mount(app)
    client = TestClient(app)
    assert client.get("/api/v1/health").json() == {"status": "ok"}
    assert client.get("/").status_code == 200
    assert "/" not in app.openapi()["paths"]


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []
        self.tags: dict[str, list[dict[str, str | None]]] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        d = dict(attrs)
        self.tags.setdefault(tag, []).append(d)
        for key in ("src", "href"):
            value = d.get(key)
            if value and value.startswith("/ui/"):
                self.refs.append(value)


def test_every_file_the_page_references_is_served(client: TestClient) -> None:
    parser = _Refs()
    parser.feed((STATIC_DIR / "index.html").read_text(encoding="utf-8"))
    assert {"/ui/app.js", "/ui/style.css", "/ui/favicon.svg"} <= set(parser.refs)
    for ref in parser.refs:
        assert client.get(ref).status_code == 200, ref
    # accessible shell: language, viewport, one main landmark, the live indicator announces changes
    assert parser.tags["html"][0].get("lang") == "en"
    assert any(m.get("name") == "viewport" for m in parser.tags["meta"])
    assert len(parser.tags["main"]) == 1
    assert any(s.get("id") == "live" and s.get("aria-live") == "polite" for s in parser.tags["span"])


_IMPORT = re.compile(r"""(?:^|\n)\s*import\s[^;]*?from\s+["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)""")


def test_every_module_import_resolves_to_a_static_file() -> None:
    seen = 0
    for js in JS_FILES:
        for m in _IMPORT.finditer(js.read_text(encoding="utf-8")):
            spec = m.group(1) or m.group(2)
            assert spec.startswith("./") or spec.startswith("../"), f"{_rel(js)}: bare or absolute import {spec!r}"
            target = (js.parent / spec).resolve()
            assert target.is_file(), f"{_rel(js)} imports {spec!r}, which does not exist"
            assert STATIC_DIR in target.parents, f"{_rel(js)} imports {spec!r} from outside the static folder"
            seen += 1
    assert seen >= 10


def _strip_comments(path: Path, text: str) -> str:
    if path.suffix == ".html" or path.suffix == ".svg":
        return re.sub(r"<!--.*?-->", "", text, flags=re.S)
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    if path.suffix == ".js":
        text = re.sub(r"(^|\s)//[^\n]*", r"\1", text)  # a line comment: `//` at the start or after a space
    return text


@pytest.mark.parametrize("path", STATIC_FILES, ids=_rel)
def test_no_external_urls(path: Path) -> None:
    text = _strip_comments(path, path.read_text(encoding="utf-8"))
    urls = set(re.findall(r"https?://[^\s\"'`)<>]*", text))
    assert urls <= ALLOWED_URLS, f"{_rel(path)} refers to {sorted(urls - ALLOWED_URLS)}"
    assert not re.search(r"""(?:src|href)\s*=\s*["']//""", text), f"{_rel(path)} has a protocol-relative URL"
    assert "@import" not in text and "fonts.googleapis" not in text


def test_the_comment_stripper_keeps_urls_in_code() -> None:
    js = Path("x.js")
    assert "https://cdn.example" in _strip_comments(js, 'const u = "https://cdn.example/x.js"; // a comment')
    assert "example" not in _strip_comments(js, "// see https://example.org\nlet a = 1; /* http://example */")


@pytest.mark.skipif(NODE is None, reason="node is not installed: JavaScript syntax not checked")
@pytest.mark.parametrize("path", JS_FILES, ids=_rel)
def test_javascript_parses(path: Path) -> None:
    # `node --check FILE` accepts some broken modules (it falls back between CommonJS and ESM); parse as a module
    res = subprocess.run([str(NODE), "--input-type=module", "--check"], input=path.read_bytes(),
                         capture_output=True, timeout=30, check=False)
    assert res.returncode == 0, f"{_rel(path)}: {res.stderr.decode(errors='replace')}"


_NODE_SCRIPT = """
import { EventStreamParser } from "%(api)s";
import { decimate, timeTicks, valueTicks } from "%(chart)s";
import { isCounter, money, num, pct, selector } from "%(util)s";
const events = [];
const p = new EventStreamParser((e) => events.push(e));
p.push(": ping\\n\\nevent: anomaly\\nid: anomaly:7\\ndata: {\\"id\\"");
p.push(": 7}\\r\\n\\r\\nevent: incident\\ndata: line one\\ndata: line two\\n\\nretry: 2500\\n\\n");
const ts = Array.from({ length: 1000 }, (_, i) => i);
const values = ts.map((i) => (i === 500 ? 99 : i > 700 && i < 720 ? null : Math.sin(i / 50)));
const d = decimate(ts, values, 100);
console.log(JSON.stringify({
  events, retry: p.retry,
  value_ticks: valueTicks(0.13, 1.07).ticks, flat_ticks: valueTicks(5, 5).ticks.length,
  time_step: timeTicks(0, 7200, 6).step,
  decimated: { n: d.ts.length, max: Math.max(...d.values.filter((v) => v !== null)),
               gaps: d.values.filter((v) => v === null).length,
               ordered: d.ts.every((t, i) => i === 0 || t >= d.ts[i - 1]) },
  num: [num(1234), num(0.5), num(null), num(2.5e9)], pct: pct(0.995), money: money(84.5),
  selector: selector("rate", { service: "a", job: "b" }),
  counters: ["http_requests_total", "rpc_duration_seconds_count", "le_bucket", "queue_depth", "total_free", ""]
    .map(isCounter),
}));
"""


@pytest.mark.skipif(NODE is None, reason="node is not installed: JavaScript helpers not run")
def test_javascript_helpers_behave() -> None:
    script = _NODE_SCRIPT % {name: (STATIC_DIR / f"{name}.js").as_uri() for name in ("api", "chart", "util")}
    res = subprocess.run([str(NODE), "--input-type=module", "-e", script], capture_output=True, timeout=30,
                         check=False)
    assert res.returncode == 0, res.stderr.decode(errors="replace")
    out = json.loads(res.stdout.decode().strip().splitlines()[-1])
    assert out["events"] == [
        {"event": "anomaly", "data": '{"id": 7}', "id": "anomaly:7"},
        {"event": "incident", "data": "line one\nline two", "id": "anomaly:7"},  # the last id carries over
    ]
    assert out["retry"] == 2500
    assert out["value_ticks"] == [0, 0.2, 0.4, 0.6, 0.8, 1, 1.2]
    assert out["flat_ticks"] >= 3  # a constant series still gets an axis
    assert out["time_step"] == 1800
    assert out["decimated"] == {"n": out["decimated"]["n"], "max": 99, "gaps": 1, "ordered": True}
    assert out["decimated"]["n"] <= 200  # at most two points per bucket, the spike kept
    assert out["num"] == ["1.23k", "0.5", "–", "2.5G"]
    assert out["pct"] == "100%" and out["money"] == "$85"
    assert out["selector"] == 'rate{job="b"}'
    assert out["counters"] == [True, True, True, False, False, False]
