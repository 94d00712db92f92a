"""The audit explorer in a real browser: Debian's chromium driven by Playwright against
`streamlit run apps/explorer.py` on 127.0.0.1 (a free port).

The page loads, a filter changes the plot, a prompt holding `<script>` / `<img onerror>` shows as
text and runs nothing (no dialog, no console message, no injected element), and an image
opens. A screenshot of each main view is saved in the test's output folder (and, with
NEOBABEL_SCREENSHOTS=DIR, copied there: how docs/img/ was made).

Chromium comes from apt (`make browser-deps`, which `make test` and .ci/run call); without it
the test skips with the reason, except under CI=true, where a missing browser is a failure.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

import explorer_runs as R

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.filterwarnings("ignore")]


def _need(what: str, reason: str):
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} missing in CI: {reason}")
    pytest.skip(f"{what} missing: {reason}")


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _need("playwright", "pip install -e '.[dev]' installs it")
    if not CHROMIUM.is_file():
        _need("chromium", "run `make browser-deps` (apt-get install -y chromium)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                              args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        yield b
        b.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser")
    world = R.world_run(root / "world")
    hostile = R.hostile_run(root / "hostile", root / "elsewhere" / "outside.png")
    with pytest.MonkeyPatch.context() as mp:
        job = R.job_dir(root / "jobs", mp)
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    env.pop("NEOBABEL_EXPLORER_RUNS", None)
    log = open(root / "streamlit.log", "w")  # noqa: SIM115 (closed below)
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(REPO / "apps" / "explorer.py"), "--server.address", "127.0.0.1",
         "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false",
         "--", str(world), str(hostile), str(job)],
        cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while True:
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            raise AssertionError("streamlit did not start: " + (root / "streamlit.log").read_text()[-2000:])
        time.sleep(0.5)
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def _settle(page, ms: int = 400) -> None:
    """Wait until Streamlit has finished the rerun an action started."""
    page.wait_for_timeout(ms)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"
        " || !document.querySelector('[data-testid=\"stStatusWidget\"]').innerText.includes('Running')",
        timeout=120_000)
    page.wait_for_timeout(ms)


HEADERS = {"Perceived-female share": "Perceived-female share", "Neutral prompts": "neutral-prompt engineering",
           "Heatmap": "Occupation × language", "Classifier agreement": "Classifier agreement",
           "Trends": "Trends across", "Images": "Images of one cell"}


def _view(page, name: str) -> None:
    page.locator('[data-testid="stSidebar"] label').filter(has_text=name).first.click()
    _settle(page)
    page.locator("h2").filter(has_text=HEADERS[name]).first.wait_for(timeout=120_000)


def _choose(page, label: str, option: str) -> None:
    """Pick ``option`` in the sidebar select/multiselect labelled ``label``."""
    box = page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"], '
                       '[data-testid="stSidebar"] [data-testid="stMultiSelect"]').filter(has_text=label).first
    box.locator("input").first.click()
    page.get_by_role("option", name=option, exact=True).first.click()
    page.keyboard.press("Escape")
    _settle(page)


def test_the_explorer_in_chromium(browser, server, tmp_path):
    out = tmp_path / "screenshots"
    out.mkdir()
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    dialogs, console = [], []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.on("console", lambda m: console.append(m.text))

    def shot(name: str) -> Path:
        path = out / f"explorer-{name}.png"
        page.screenshot(path=str(path), full_page=False)
        return path

    # the page loads: the overview table of the three folders
    page.goto(server, wait_until="domcontentloaded")
    page.get_by_text("Audit explorer").first.wait_for(timeout=120_000)
    _settle(page)
    page.locator('[data-testid="stDataFrame"]').first.wait_for(timeout=120_000)
    shot("overview")

    # a filter changes the plot
    _view(page, "Perceived-female share")
    chart = page.locator('[data-testid="stVegaLiteChart"]').first
    chart.wait_for(timeout=120_000)
    page.wait_for_timeout(800)  # vega draws after the element appears
    before = chart.screenshot()
    shot("shares")
    _choose(page, "languages", "de")
    chart = page.locator('[data-testid="stVegaLiteChart"]').first
    chart.wait_for(timeout=120_000)
    page.wait_for_timeout(800)
    after = chart.screenshot()
    assert before != after

    for name in ("Neutral prompts", "Heatmap", "Classifier agreement"):
        _view(page, name)
        page.wait_for_timeout(800)
        shot(name.split()[0].lower())
    _view(page, "Trends")
    page.locator('[data-testid="stVegaLiteChart"]').first.wait_for(timeout=120_000)
    page.wait_for_timeout(800)
    shot("trends")

    # the hostile run: its prompt is text, nothing runs; paths out of the run are refused
    _view(page, "Images")
    _choose(page, "run", "hostile")
    page.get_by_text(R.EVIL, exact=False).first.wait_for(timeout=120_000)
    assert page.locator("text=image refused").count() == 3
    injected = page.evaluate("""() => ({
        scripts: [...document.scripts].filter(s => s.textContent.includes('alert("x")')).length,
        onerror: document.querySelectorAll('img[onerror]').length,
        xImgs: [...document.images].filter(i => i.getAttribute('src') === 'x').length})""")
    assert injected == {"scripts": 0, "onerror": 0, "xImgs": 0}
    shot("images")

    # an image opens: the full image and its PNG metadata
    shown = page.locator('[data-testid="stColumn"]').filter(has=page.locator("img"))
    shown.first.get_by_role("button", name="open", exact=True).click()
    _settle(page)
    page.get_by_text("Full image").first.wait_for(timeout=120_000)
    page.get_by_text("PNG metadata").first.wait_for(timeout=120_000)
    assert page.locator('[data-testid="stJson"]').count() == 1
    page.get_by_text("Full image").first.scroll_into_view_if_needed()
    shot("image")

    page.wait_for_timeout(500)
    assert dialogs == []
    assert not [m for m in console if "alert" in m or m.strip() in ("x", "1")]
    for name in ("overview", "shares", "neutral", "heatmap", "classifier", "trends", "images", "image"):
        assert (out / f"explorer-{name}.png").stat().st_size > 10_000
    target = os.environ.get("NEOBABEL_SCREENSHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        for p in out.iterdir():
            shutil.copy(p, Path(target) / p.name)
