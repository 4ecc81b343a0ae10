#!/usr/bin/env bash
# Install headless Chromium and its WebDriver for tests/test_browser.py (Debian/Ubuntu).
# Idempotent and quick when both are present; never fails the CI run: without apt (or
# without permission) the browser test skips with its own reason.
set -u

if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
    echo "install-browser: chromium and chromedriver already installed"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-browser: apt-get not available; the browser test will be skipped"
    exit 0
fi
# Root needs no sudo; elsewhere use it only if it works without a password prompt.
if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
else
    echo "install-browser: not root and no passwordless sudo; the browser test will be skipped"
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
if $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver; then
    echo "install-browser: installed $(chromium --version 2>/dev/null)"
else
    echo "install-browser: apt-get failed; the browser test will be skipped"
fi
exit 0
