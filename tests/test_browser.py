"""Notebook 06 in a real browser: JupyterLab and headless Chromium run it and switch an emotion.

Needs Debian's ``chromium`` and ``chromium-driver`` (``.ci/install-browser.sh``) and Selenium;
skips with the reason when any is missing. The Jupyter server gets a temporary ``EMOGAN_WORK``
with tiny trained models and a small synthetic corpus, and the test's ``EMOGAN_FIGURES``, where
the screenshot ``widget_screenshot.png`` is saved.
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from emogan_utils.classifier_training import ClassifierTrainConfig
from emogan_utils.config import Paths
from emogan_utils.data import ravdess_name
from emogan_utils.gan_training import GANTrainConfig
from emogan_utils.models import ClassifierConfig, DiscriminatorConfig, GeneratorConfig
from emogan_utils.storage import write_audio
from emogan_utils.train import train_quick_models
from emogan_utils.widgets import SwitchConfig

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "06_emotion_switch.ipynb"
CHROME_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--window-size=1300,2200")
TINY = SwitchConfig(
    classifier_training=ClassifierTrainConfig.quick(
        epochs=2, batch_size=8, model=ClassifierConfig(channels=16, n_blocks=1)),
    gan_training=GANTrainConfig.quick(
        epochs=1, pairs_per_epoch=16, batch_size=4, crop_frames=32,
        generator=GeneratorConfig(channels=8, depth=2, n_res_blocks=1),
        discriminator=DiscriminatorConfig(channels=4, depth=2)))


def _missing_browser() -> str | None:
    """Why the browser test cannot run here, or None."""
    if importlib.util.find_spec("selenium") is None:
        return "selenium is not installed (pip install selenium)"
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not path.exists():
            return f"{path} not found (apt-get install {package}, or run .ci/install-browser.sh)"
    return None


@pytest.fixture(scope="module")
def emogan_env(tmp_path_factory) -> dict[str, str]:
    """Environment for the Jupyter server: a small speech corpus and tiny trained models."""
    reason = _missing_browser()
    if reason:
        pytest.skip(reason)
    from emogan_utils.synth import render, utterance

    root = tmp_path_factory.mktemp("emogan")
    corpus, work = root / "corpus", root / "work"
    # Three synthetic actors, one sentence in the eight emotions: enough to train tiny models
    # in seconds (the classifier holds two actors out; the GAN pairs each actor's emotions).
    for actor in (1, 2, 3):
        for emotion in range(1, 9):
            name = ravdess_name(emotion, 1, 1, 1, actor)
            write_audio(corpus / f"Actor_{actor:02d}" / name,
                        render(utterance(actor, emotion, 1, 1, 1)), 16000)
    train_quick_models(corpus, work / "checkpoints", work / "cache", TINY.classifier_training,
                       TINY.gan_training, progress=False)
    return {**os.environ, "EMOGAN_DATA": str(corpus), "EMOGAN_WORK": str(work),
            "EMOGAN_FIGURES": str(Paths.from_env().figures)}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(condition: Callable[[], object], timeout: float, what: str) -> object:
    """Poll ``condition`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


class JupyterLab:
    """A JupyterLab server on a free port with a random token, serving one folder."""

    def __init__(self, root_dir: Path, env: dict[str, str], scratch: Path):
        self.port, self.token = _free_port(), secrets.token_hex(16)
        self.log = scratch / "jupyter.log"
        # Isolated settings and workspaces: no user state, no saved layout.
        env = {**env, "JUPYTER_CONFIG_DIR": str(scratch / "config"),
               "JUPYTER_RUNTIME_DIR": str(scratch / "runtime"),
               "JUPYTERLAB_SETTINGS_DIR": str(scratch / "settings"),
               "JUPYTERLAB_WORKSPACES_DIR": str(scratch / "workspaces")}
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root",
                 "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={self.port}",
                 f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={root_dir}"],
                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}?token={self.token}"

    def api(self, path: str) -> object:
        with urllib.request.urlopen(self.url(f"api/{path}"), timeout=5) as response:
            return json.load(response)

    def wait_until_up(self, timeout: float = 60) -> None:
        def answers() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"JupyterLab exited:\n{self.log.read_text()[-3000:]}")
            try:
                return bool(self.api("status"))
            except OSError:
                return False
        _wait_for(answers, timeout, "JupyterLab to answer")

    def kernel_states(self) -> list[str]:
        return [s["kernel"]["execution_state"] for s in self.api("sessions")]

    def stop(self) -> None:
        """Stop the server and its kernels (one process group), forcefully if they hang."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)


@pytest.fixture(scope="module")
def jupyter(emogan_env, tmp_path_factory) -> Iterator[JupyterLab]:
    """JupyterLab serving a copy of notebook 06 (the browser saves outputs into it)."""
    scratch = tmp_path_factory.mktemp("jupyter")
    served = scratch / "notebooks"
    served.mkdir()
    shutil.copy(NOTEBOOK, served / NOTEBOOK.name)
    server = JupyterLab(served, emogan_env, scratch)
    try:
        server.wait_until_up()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser(jupyter, tmp_path_factory):
    """Headless Chromium driven by Selenium, with a fresh profile."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROME_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _click_menu(driver, menu: str, item: str) -> None:
    """Open a JupyterLab main-menu entry and click one of its items."""
    from selenium.webdriver.common.by import By

    driver.find_element(By.XPATH, f"//div[contains(@class,'lm-MenuBar-itemLabel')]"
                                  f"[normalize-space()='{menu}']").click()
    _wait_for(lambda: driver.find_elements(
        By.XPATH, f"//div[contains(@class,'lm-Menu-itemLabel')][normalize-space()='{item}']"),
        10, f"menu item {menu} > {item}")[0].click()


def test_notebook_06_switches_emotion_in_the_browser(jupyter, browser):
    from selenium.webdriver.common.by import By

    def find(css: str):
        found = browser.find_elements(By.CSS_SELECTOR, css)
        return found[0] if found else None

    def status() -> str:
        element = find(".emogan-status")
        return element.text if element else ""

    browser.get(jupyter.url(f"lab/tree/{NOTEBOOK.name}"))
    _wait_for(lambda: find(".jp-Notebook .jp-Cell"), 60, "the notebook to open")
    _wait_for(lambda: jupyter.kernel_states() == ["idle"], 60, "the kernel to start")
    _click_menu(browser, "Run", "Run All Cells")
    _wait_for(lambda: "computed in" in status(), 120,
              f"the switch's first translation (status: {status()!r})")
    audio = find("audio.emogan-translation-audio")
    image = find("img.emogan-spectrograms")
    before = audio.get_attribute("src"), image.get_attribute("src")
    assert all(src.startswith("blob:") for src in before)

    browser.find_element(By.XPATH, "//div[contains(@class,'emogan-target')]"
                                   "//button[normalize-space()='happy']").click()
    _wait_for(lambda: "\u2192 happy" in status(), 60, f"the translation to happy ({status()!r})")
    after = (find("audio.emogan-translation-audio").get_attribute("src"),
             find("img.emogan-spectrograms").get_attribute("src"))
    assert after[0] != before[0], "no new translated audio appeared"
    assert after[1] != before[1], "no new spectrogram image appeared"
    loaded = "return arguments[0].complete && arguments[0].naturalWidth"
    assert _wait_for(lambda: browser.execute_script(loaded, find("img.emogan-spectrograms")),
                     10, "the spectrogram image to load") > 100

    switch = find(".emogan-switch")
    browser.execute_script("arguments[0].scrollIntoView()", switch)
    figures = Paths.from_env().figures
    figures.mkdir(parents=True, exist_ok=True)
    assert switch.screenshot(str(figures / "widget_screenshot.png"))
