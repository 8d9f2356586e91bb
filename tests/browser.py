"""What the dashboard end-to-end tests share: headless Debian Chromium driven by Playwright's sync API, a page
that records console errors, and screenshots kept in ``tests/artifacts/``. Importing it skips the importing test
module when Chromium or Playwright is missing."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(__file__).parent / "artifacts"
WAIT_MS = 20_000  # how long a wait for the page may take before the test fails (not a timing assertion)

if not CHROMIUM.exists():
    pytest.skip("headless Chromium not installed at /usr/bin/chromium (Debian package `chromium`)",
                allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e .[dev])")


@dataclass
class Browser:
    page: Any
    errors: list[str]
    base: str

    def open(self, route: str) -> Any:
        self.page.goto(f"{self.base}/#{route}")
        return self.page


@contextmanager
def browser(profile: Path, base: str, *, height: int = 800, init_script: str | None = None) -> Iterator[Browser]:
    """A persistent Chromium context (profile folder ``profile``) on ``base``, its console errors collected."""
    with sync_api.sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            user_data_dir=str(profile), executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True,
            viewport={"width": 1280, "height": height}, color_scheme="dark")
        context.set_default_timeout(WAIT_MS)
        if init_script is not None:
            context.add_init_script(init_script)
        page = context.pages[0] if context.pages else context.new_page()
        errors: list[str] = []
        page.on("console", lambda msg: errors.append(f"console {msg.type}: {msg.text}") if msg.type == "error"
                else None)
        page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
        try:
            yield Browser(page, errors, base)
        finally:
            context.close()


def screenshot(page: Any, name: str, tmp_path: Path) -> None:
    """A full-page screenshot in ``tmp_path`` and ``tests/artifacts/``."""
    kept = tmp_path / name
    page.screenshot(path=str(kept), full_page=True)
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copyfile(kept, ARTIFACTS / name)
    assert kept.stat().st_size > 10_000
