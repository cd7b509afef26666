"""Headless Chromium for the web view's tests: Debian's chromium and chromedriver, driven by
Selenium; skipped with the reason when any of them is missing."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)
WINDOW = (1500, 1250)


def missing() -> str | None:
    """Why no browser test can run here, or None."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not Path(path).is_file() and shutil.which(Path(path).name) is None:
            return f"{path} is not installed (apt-get install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install 'defectd[dev]')"
    return None


# For tests that import selenium before they open a browser.
needs_browser = pytest.mark.skipif(missing() is not None, reason=missing() or "")


@contextmanager
def chromium(profile: Path) -> Iterator[Any]:
    """A headless Chromium with a fresh profile in `profile`, its console logged at ALL."""
    reason = missing()
    if reason is not None:
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM if Path(CHROMIUM).is_file() else shutil.which("chromium")
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument(f"--window-size={WINDOW[0]},{WINDOW[1]}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver_path = CHROMEDRIVER if Path(CHROMEDRIVER).is_file() else shutil.which("chromedriver")
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def console_errors(driver: Any) -> list[str]:
    """The SEVERE console entries since the last call (each call drains the log)."""
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def wait_until(driver: Any, check: Callable[[Any], Any], timeout_s: float, what: str) -> Any:
    """`check(driver)`'s first true value, asked every 0.1 s; fails naming `what`."""
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check(driver)
        except Exception as exc:  # an element replaced under us: ask again
            last_error = exc
            value = None
        if value:
            return value
        time.sleep(0.1)
    detail = f" (last error: {last_error})" if last_error else ""
    pytest.fail(f"timed out after {timeout_s:g} s waiting for {what}{detail}")


def images_loaded(driver: Any, css: str) -> int:
    """How many of the images matching `css` have loaded (naturalWidth > 0)."""
    return int(
        driver.execute_script(
            "return Array.from(document.querySelectorAll(arguments[0]))"
            ".filter(i => i.complete && i.naturalWidth > 0).length;",
            css,
        )
    )
