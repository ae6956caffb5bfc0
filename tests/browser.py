"""Headless Chromium for tests: Debian's browser, driven by Playwright, never a downloaded one."""

import shutil

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def launch(playwright):
    """A Chromium browser, or a skip that says how to install it."""
    if not shutil.which("chromium"):
        pytest.skip("Debian's chromium is not installed: run `make browser` (apt-get install chromium).")
    return playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
