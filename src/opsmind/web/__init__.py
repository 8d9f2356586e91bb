"""The opsmind dashboard: a single page (HTML, CSS and JavaScript modules, no build step, no external URLs) served by
the API process. It reads only the ``/api/v1`` routes and listens to ``/api/v1/events``.

>>> from fastapi import FastAPI
>>> from fastapi.testclient import TestClient
>>> app = FastAPI()
>>> mount(app)
>>> client = TestClient(app)
>>> client.get("/").headers["content-type"]
'text/html; charset=utf-8'
>>> client.get("/ui/app.js").headers["content-type"].split(";")[0]
'text/javascript'
"""

from __future__ import annotations

import mimetypes
import os
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.responses import Response
from starlette.types import Scope

__all__ = ["STATIC_DIR", "mount"]

STATIC_DIR = Path(__file__).resolve().parent / "static"
"""The folder the dashboard's files are served from (``/ui/<file>``)."""

_NO_CACHE = {"Cache-Control": "no-cache"}

# the system's mime.types may call .js application/x-javascript or lack .svg; module scripts need a JavaScript type
for _type, _ext in (("text/javascript", ".js"), ("text/css", ".css"), ("image/svg+xml", ".svg"),
                    ("application/json", ".json")):
    mimetypes.add_type(_type, _ext)


class _Assets(StaticFiles):
    """Static files that browsers revalidate (ETag) before each use, so an upgraded opsmind never runs a mix of old
    and new modules."""

    def file_response(self, full_path: str | os.PathLike[str], stat_result: os.stat_result, scope: Scope,
                      status_code: int = 200) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers.update(_NO_CACHE)
        return response


def mount(app: FastAPI) -> None:
    """Serve the dashboard from ``app``: ``GET /`` is the page, ``/ui/<file>`` its assets (``/ui`` redirects to ``/``).

    The page's routes are in the URL fragment (``/#/incidents/inc-1``), so the server needs no other paths.
    """
    index = STATIC_DIR / "index.html"

    async def dashboard() -> FileResponse:
        return FileResponse(index, media_type="text/html; charset=utf-8", headers=_NO_CACHE)

    async def ui_root() -> RedirectResponse:
        return RedirectResponse("/", status_code=307)

    app.add_api_route("/", dashboard, methods=["GET"], include_in_schema=False, name="dashboard")
    app.add_api_route("/ui", ui_root, methods=["GET"], include_in_schema=False)
    app.mount("/ui", _Assets(directory=STATIC_DIR), name="ui")
