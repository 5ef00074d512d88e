"""Headless Chromium on the pages, for tests/test_browser.py and tests/test_explorer.py:
the system's Chromium (Debian's `chromium`, driven by playwright with the system's
executable; installed with apt-get when missing and this runs as root, else the tests
skip saying how to get it), the app served over HTTP by uvicorn on the shipped data,
and a tab whose every request is recorded: any to another host is refused and fails
the test, as does any console error or uncaught page error. Each test's screenshot goes
to var/test/artifacts/browser/.

A test module imports the fixtures it uses from here (`from tests.browser import ...`).
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import pytest
import uvicorn

from api.app import create_app
from tests.conftest import TEST_DATA_DIR, make_settings

playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the [test] extra: "
                                                                   "pip install -e '.[test]'")

ARTIFACTS = TEST_DATA_DIR / "artifacts" / "browser"
# Chromium's own background connections (updates, sync, field trials) are off: on a machine
# without internet they fail and are logged; a test of the pages has no use for them.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TIMEOUT_MS = 30_000


def _apt_get_install_chromium() -> str:
    """What went wrong installing Chromium with apt-get ('' if nothing did)."""
    install = ["apt-get", "install", "-y", "--no-install-recommends", "chromium"]
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if subprocess.run(install, env=environment, capture_output=True).returncode == 0:
        return ""
    # a fresh machine has no package lists yet
    subprocess.run(["apt-get", "update"], env=environment, capture_output=True)
    done = subprocess.run(install, env=environment, capture_output=True, text=True)
    return "" if done.returncode == 0 else done.stderr[-2000:]


def system_chromium() -> tuple[str | None, str]:
    """The system's Chromium, installed with apt-get first if it is missing and this runs
    as root: its path, or None and why not (for the tests here and bench/explorer.py)."""
    found = shutil.which("chromium")
    if found:
        return found, ""
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        return None, ("Chromium is missing: on Debian or Ubuntu, `apt-get install chromium` as root "
                      "(this does it itself when it runs as root)")
    TEST_DATA_DIR.mkdir(parents=True, exist_ok=True)
    with open(TEST_DATA_DIR / "chromium-install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # xdist workers: one installs, the others wait and find it
        failure = "" if shutil.which("chromium") else _apt_get_install_chromium()
    found = shutil.which("chromium")
    return found, "" if found else f"Chromium is missing and `apt-get install chromium` failed:\n{failure}"


@pytest.fixture(scope="session")
def chromium() -> str:
    """The system's Chromium (system_chromium), or the test is skipped saying why not."""
    found, why_not = system_chromium()
    if found is None:
        pytest.skip(why_not)
    return found


@pytest.fixture(scope="module")
def server_url(shipped_database_url: str, redis_url: str) -> Iterator[str]:
    """The app on the shipped data, served by uvicorn over HTTP in a thread of its own."""
    app = create_app(make_settings(), database_url=shipped_database_url, redis_url=redis_url)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))  # a free port
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail("uvicorn did not start")
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=30)


@dataclass
class Watched:
    """What the pages did that a test must not see: requests to other hosts, console
    errors, uncaught errors."""

    origin: str
    requests: list[str] = field(default_factory=list)
    elsewhere: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    expected: list[re.Pattern] = field(default_factory=list)

    def expect_errors(self, pattern: str) -> None:
        """Errors matching `pattern` are what the test provokes. They are left out of
        check() whenever they come: the browser logs a refused request when its answer
        arrives, which may be after the test's last assertion."""
        self.expected.append(re.compile(pattern))

    def check(self) -> None:
        assert not self.elsewhere, f"requests to other hosts: {self.elsewhere}"
        unexpected = [error for error in self.errors if not any(p.search(error) for p in self.expected)]
        assert not unexpected, "errors in the browser:\n" + "\n".join(unexpected)


@pytest.fixture(scope="module")
def browser(chromium: str, tmp_path_factory) -> Iterator:
    """One browser for this file's tests. Not for the session: playwright's sync API
    keeps an event loop running in this thread while it is open, where the async tests
    of the next file (same xdist worker) need to run their own."""
    with playwright_api.sync_playwright() as playwright:
        # a fresh profile: nothing from another run (GraphiQL keeps its tabs in localStorage)
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=chromium, headless=True,
            args=CHROMIUM_ARGS, viewport={"width": 1280, "height": 900})
        context.set_default_timeout(TIMEOUT_MS)
        yield context
        context.close()


@pytest.fixture
def page(server_url: str, browser, request) -> Iterator:
    """A new tab whose every request, console error and page error is watched; after
    the test, its screenshot in ARTIFACTS and the check that nothing bad happened.
    (The server first: playwright's sync API runs an event loop in this thread, where
    the database fixtures need to run their own.)"""
    watched = Watched(server_url)
    tab = browser.new_page()

    def route(intercepted) -> None:
        url = intercepted.request.url
        watched.requests.append(url)
        parts = urlsplit(url)
        if parts.scheme in ("data", "blob") or f"{parts.scheme}://{parts.netloc}" == server_url:
            intercepted.continue_()
        else:  # never let it out, and fail the test
            watched.elsewhere.append(url)
            intercepted.abort()

    tab.route("**/*", route)
    tab.on("console", lambda message: watched.errors.append(f"console: {message.text} ({message.location})")
           if message.type == "error" else None)
    tab.on("pageerror", lambda error: watched.errors.append(f"page error: {error}"))
    tab.watched = watched
    yield tab
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    tab.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    tab.close()
    watched.check()
