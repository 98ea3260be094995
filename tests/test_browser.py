"""The lab in a real browser: Voila serves the dashboard, Chromium (through Playwright) trains and stops a run."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]

pytestmark = pytest.mark.browser


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cifar_available() -> bool:
    from labkit.data import find_cifar
    from labkit.errors import LabkitError

    try:
        find_cifar("cifar10", download=False)
        return True
    except LabkitError:
        return False


@pytest.fixture
def voila(tmp_path):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"Debian Chromium not found at {CHROMIUM} (CI installs it with apt-get install chromium)")
    pytest.importorskip("playwright.sync_api")
    if not _cifar_available():
        pytest.skip("CIFAR-10 not found: set LABKIT_DATA to a directory holding cifar-10-batches-py")
    port = _free_port()
    runs = tmp_path / "runs"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    # the server starts in tmp_path: a LABKIT_DATA relative to where pytest runs must become absolute first
    env["LABKIT_DATA"] = str(Path(os.environ["LABKIT_DATA"]).resolve()) if os.environ.get("LABKIT_DATA") else ""
    log = open(tmp_path / "voila.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "labkit", "lab", "--port", str(port), "--no-browser",
                             "--runs", str(runs)], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url + "voila/static/favicon.ico", timeout=1)
            break
        except urllib.error.HTTPError:  # the server answers: it is up
            break
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.3)
    else:
        proc.kill()
        pytest.fail("Voila did not start in 60 s: " + (tmp_path / "voila.log").read_text()[-2000:])
    yield url, runs
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()
    # `labkit lab` stopped by SIGTERM takes Voila (and its kernels) down with it: nothing answers on the port
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0, "Voila outlived the `labkit lab` that started it"


def test_train_and_stop_in_chromium(voila):
    from playwright.sync_api import sync_playwright

    url, runs = voila
    # the settings arrive through the URL, as a shared link would carry them
    query = ("data.subset=500&data.val_size=100&model.width=8&train.epochs=400&train.batch_size=50"
             "&probe.every=5&train.threads=1")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 1500})
        page.goto(url + "?" + query, timeout=120_000)
        train = page.get_by_role("button", name="Train")
        train.wait_for(timeout=120_000)
        # choose a setting in the page itself too: the activation dropdown
        page.get_by_text("Model", exact=True).first.click()
        page.locator("select").filter(has_text="leaky_relu").first.select_option("tanh")
        page.wait_for_timeout(500)
        train.click()
        try:
            page.get_by_text("step ", exact=False).filter(has_text="steps/s").wait_for(timeout=90_000)
            page.get_by_text("probe snapshot", exact=False).first.wait_for(timeout=90_000)
        except Exception:  # keep what the page showed: the dashboard's own message says why no step came
            page.screenshot(path=str(ARTIFACTS / "lab-failure.png"), full_page=True)
            text = page.inner_text("body")
            pytest.fail(f"no training progress in the page within 90 s; page text:\n{text[:3000]}")
        page.wait_for_timeout(5000)  # a few throttled redraws, so the screenshot shows curves mid-run
        page.screenshot(path=str(ARTIFACTS / "lab.png"), full_page=True)
        page.get_by_role("button", name="Stop").click()
        page.get_by_text("stopped", exact=False).first.wait_for(timeout=60_000)
        browser.close()
    run_dirs = [d for d in runs.iterdir() if d.is_dir()]
    assert len(run_dirs) == 1
    summary = json.loads((run_dirs[0] / "summary.json").read_text())
    assert summary["status"] == "stopped"
    config = json.loads((run_dirs[0] / "config.json").read_text())
    assert config["data"]["subset"] == 500 and config["model"]["width"] == 8
    assert config["model"]["activation"] == "tanh"
    steps = [json.loads(line) for line in (run_dirs[0] / "metrics.jsonl").read_text().splitlines()]
    assert any(r.get("kind") == "step" for r in steps)
