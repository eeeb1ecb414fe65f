"""Browser tests of the run viewer: Debian's chromium driven by Playwright for Python, against
real uvicorn on loopback (`chorus.devserver`), as a person would use it.

Playwright's own browser download cannot work on these machines, so the system browser is
launched through `executable_path` (`make install` installs Debian's `chromium` when it is
missing and we are root). Without a browser these tests are skipped, saying why.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from chorus.devserver import Server, running_server
from support.ui import Viewer

pytestmark = pytest.mark.e2e

CHROMIUM = Path(os.environ.get("CHORUS_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "ui"


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """One browser per module, closed before the module ends (Playwright's sync API owns an event loop)."""
    if not CHROMIUM.exists():
        pytest.skip(
            f"no browser at {CHROMIUM}: `make install` as root installs Debian's chromium (or set CHORUS_CHROMIUM)"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def ui_server() -> Iterator[Server]:
    with running_server() as server:
        yield server


@pytest.fixture(scope="module")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture
def viewer(browser: object, ui_server: Server, artifacts: Path) -> Iterator[Viewer]:
    """A fresh browser context (its own sessionStorage) on the server, recording console errors and requests."""
    with Viewer.open(browser, ui_server, artifacts) as v:
        yield v
