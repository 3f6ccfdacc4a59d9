"""The daemon's web page in a real headless Chromium (Debian's chromium + chromium-driver, driven by
Selenium offline) against a real `costwise daemon` process.

Screenshots of every page are kept under tests/artifacts/web/ (ignored by git: the folder carries its
own .gitignore), or under COSTWISE_TEST_ARTIFACTS; their paths are printed."""

from __future__ import annotations

import os
import shutil
import socket
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import IN_CI, Cli, write
from tests.daemon_harness import DaemonProcess, wait_until

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("COSTWISE_TEST_ARTIFACTS") or ROOT / "tests" / "artifacts") / "web"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
TOKEN = "s3cret-web-token"

PROJECT = """
kind: Shape
name: cheap
vcpus: 2
memory_gib: 4
price_per_hour: 0.10
capacity: 4
---
kind: Shape
name: dear
vcpus: 8
memory_gib: 16
price_per_hour: 0.80
capacity: 2
---
kind: Job
name: hello
artifact: hello.py
labels: {team: ml}
---
kind: Job
name: step
artifact: step.py
labels: {team: data}
---
kind: Budget
name: ml-daily
labels: {team: ml}
period: day
limit_usd: 5
---
kind: Pipeline
name: flow
steps:
  - {name: prepare, job: step, args: [prepare, a.txt], outputs: [a.txt]}
  - {name: train, job: step, args: [train, b.txt], inputs: {a.txt: prepare/a.txt}, outputs: [b.txt]}
  - {name: evaluate, job: step, args: [evaluate, c.txt], inputs: {a.txt: prepare/a.txt}, outputs: [c.txt]}
  - {name: report, job: step, args: [report, d.txt], inputs: {b.txt: train/b.txt, c.txt: evaluate/c.txt}, outputs: [d.txt]}
"""
STEPS = ("prepare", "train", "evaluate", "report")


def _need_browser():
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not shutil.which(p)]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the selenium package")
    if missing:
        message = f"{', '.join(missing)} not installed; `bash .ci/setup.sh --services` installs them"
        if IN_CI:
            pytest.fail(message)
        pytest.skip("SKIPPED LOUDLY: " + message)


@pytest.fixture(scope="module")
def browser():
    _need_browser()
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must not try to download a driver
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900",
                "--disable-gpu", "--no-first-run"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def _project(home: Path) -> Cli:
    root = home.parent / "project"
    write(root / "hello.py", """
        import json, os, pathlib
        print("hello from", os.environ["COSTWISE_RUN_ID"])
        pathlib.Path(os.environ["COSTWISE_ARTIFACTS_DIR"], "metrics.json").write_text(json.dumps({"acc": 0.9}))
    """)
    write(root / "step.py", """
        import os, pathlib, sys
        out = pathlib.Path(os.environ["COSTWISE_OUTPUT_DIR"])
        (out / sys.argv[2]).write_text(sys.argv[1])
        print("step", sys.argv[1])
    """)
    write(root / "project.yaml", PROJECT)
    cli = Cli(home)
    proc = cli("apply", str(root / "project.yaml"))
    assert proc.returncode == 0, proc.stderr
    return cli


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    home = tmp_path_factory.mktemp("web") / "home"
    home.mkdir()
    _project(home)
    d = DaemonProcess(home).start()
    yield d
    d.stop()


def shot(driver, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS.parent / ".gitignore").write_text("*\n")
    path = ARTIFACTS / f"{name}.png"
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1280, min(max(900, height + 120), 4000))  # the whole page in one picture
    driver.save_screenshot(str(path))
    driver.set_window_size(1280, 900)
    print(f"screenshot: {path}")
    assert path.stat().st_size > 1000
    return path


def ready(driver, timeout=30):
    """Wait until the page's script has put its view in (or asked for the token); returns the state."""
    wait_until(lambda: driver.execute_script("return document.getElementById('main').dataset.state"), timeout)
    return driver.execute_script("return document.getElementById('main').dataset.state")


def follow(driver, link) -> None:
    """Click a link and wait for the next page to replace this one."""
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    old = css(driver, "main")[0]
    link.click()
    WebDriverWait(driver, 30).until(expected_conditions.staleness_of(old))


def css(driver, selector):
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, selector)


def test_the_runs_list_shows_a_just_submitted_run_without_a_reload(browser, daemon):
    browser.get(f"http://127.0.0.1:{daemon.port}/")
    assert ready(browser) == "ready"
    browser.execute_script("window.notReloaded = true")
    status, run = daemon.post("/runs", {"job": "hello"})
    assert status == 201, run
    wait_until(lambda: css(browser, f'tr[data-run="{run["id"]}"]'), timeout=20)
    assert browser.execute_script("return window.notReloaded") is True  # the same page, updated in place
    wait_until(lambda: "SUCCEEDED" in css(browser, f'tr[data-run="{run["id"]}"]')[0].text, timeout=30)
    shot(browser, "runs")

    follow(browser, css(browser, f'a[href="/web/runs/{run["id"]}"]')[0])
    assert ready(browser) == "ready"
    text = css(browser, "main")[0].text
    assert f"Run {run['id']}" in text and "SUCCEEDED" in text
    assert "Shapes that fit, by expected cost" in text and "chosen" in text  # placement and alternatives
    assert "cheap" in text and "dear" in text
    assert f"hello from {run['id']}" in css(browser, "pre.log")[0].text  # the log's last lines
    results = css(browser, "pre.results")[0].text
    assert f'"run_id": "{run["id"]}"' in results and '"env_names"' in results  # results.json, pretty-printed
    shot(browser, "run")


def test_a_pipeline_page_draws_every_step(browser, daemon):
    status, prun = daemon.post("/pipelines/flow/runs", {})
    assert status == 201, prun
    wait_until(lambda: daemon.get(f"/pipeline-runs/{prun['id']}")["state"] not in ("QUEUED", "RUNNING"), timeout=60)
    browser.get(f"http://127.0.0.1:{daemon.port}/web/pipeline-runs/{prun['id']}")
    assert ready(browser) == "ready"
    nodes = {g.get_attribute("data-step"): g for g in css(browser, "svg#dag g.step")}
    assert set(nodes) == set(STEPS)
    for name, node in nodes.items():
        assert "SUCCEEDED" in node.text, (name, node.text)
        assert "cheap" in node.text and "$" in node.text  # shape and cost drawn in each box
    assert len(css(browser, "svg#dag path.edge")) == 4  # prepare->train, prepare->evaluate, train/evaluate->report
    rows = [r.get_attribute("data-step") for r in css(browser, "table.steps tbody tr")]
    assert rows == list(STEPS)  # the table says what the drawing shows
    assert len(css(browser, "svg#dag a[href^='/web/runs/']")) == 4  # each step box is a link, reached by Tab
    shot(browser, "pipeline")


def test_spend_shapes_and_pipelines_pages(browser, daemon):
    browser.get(f"http://127.0.0.1:{daemon.port}/web/spend")
    assert ready(browser) == "ready"
    assert len(css(browser, "svg rect.bar")) == 14
    assert css(browser, "table.by-day tbody tr")  # the chart's text alternative
    budget = css(browser, "table.budgets tbody tr")[0].text
    assert "ml-daily" in budget and "team=ml" in budget and "$5.00" in budget
    assert [m.get_attribute("max") for m in css(browser, "meter")] == ["5"]
    shot(browser, "spend")

    browser.get(f"http://127.0.0.1:{daemon.port}/web/shapes")
    assert ready(browser) == "ready"
    cheap = css(browser, 'tr[data-shape="cheap"]')[0].text
    assert "0.1" in cheap and "/ 4" in cheap
    shot(browser, "shapes")

    browser.get(f"http://127.0.0.1:{daemon.port}/web/pipelines")
    assert ready(browser) == "ready"
    assert "flow" in css(browser, "table.pipeline-runs")[0].text
    shot(browser, "pipelines")
    from selenium.webdriver.common.keys import Keys

    css(browser, "body")[0].send_keys(Keys.TAB)  # the keyboard: the first Tab reaches the skip link
    assert browser.switch_to.active_element.text == "Skip to content"
    browser.switch_to.active_element.send_keys(Keys.ENTER)
    assert browser.switch_to.active_element.get_attribute("id") == "main"
    # nothing on any page can write: no form posts, and the views answer no POST
    assert browser.execute_script("return document.querySelectorAll('form[method=post i]').length") == 0
    assert daemon.post("/web/f/runs", {})[0] == 404


def test_filters_and_pages_of_runs(browser, daemon):
    for _ in range(3):
        assert daemon.post("/runs", {"job": "hello"})[0] == 201
    browser.get(f"http://127.0.0.1:{daemon.port}/?label=team%3Dml&limit=2")
    assert ready(browser) == "ready"
    first = [r.get_attribute("data-run") for r in css(browser, "table.runs tbody tr")]
    assert len(first) == 2
    follow(browser, css(browser, 'a[rel="next"]')[0])
    assert ready(browser) == "ready"
    second = [r.get_attribute("data-run") for r in css(browser, "table.runs tbody tr")]
    assert second and not set(first) & set(second)
    assert all(daemon.get(f"/runs/{r}")["labels"] == {"team": "ml"} for r in first + second)
    browser.get(f"http://127.0.0.1:{daemon.port}/?state=NOPE")
    assert ready(browser) == "error"
    assert "state='NOPE'" in css(browser, "main")[0].text


def _outward_address() -> str | None:
    """An address of this machine that is not loopback (no packet is sent to find it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(("10.254.254.254", 9))
            address = sock.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") or address == "0.0.0.0" else address


def test_the_token_is_required_off_loopback(browser, tmp_path):
    address = _outward_address()
    if address is None:
        if IN_CI:
            pytest.fail("this machine has no non-loopback IPv4 address to bind the daemon to")
        pytest.skip("SKIPPED LOUDLY: no non-loopback IPv4 address on this machine")
    home = tmp_path / "home"
    _project(home)
    d = DaemonProcess(home, extra_args=["--host", "0.0.0.0", "--token", TOKEN], token=TOKEN).start()
    try:
        base = f"http://{address}:{d.port}"
        with pytest.raises(urllib.error.HTTPError) as refused:  # the data is behind the token
            urllib.request.urlopen(f"{base}/web/f/runs", timeout=10)
        assert refused.value.code == 401
        browser.get(f"{base}/")
        assert ready(browser) == "needs-token"
        assert css(browser, "#token-form")[0].is_displayed() and not css(browser, "table.runs")
        shot(browser, "token")
        field = css(browser, "#token-input")[0]
        field.send_keys("wrong")
        css(browser, "#token-form button")[0].click()
        wait_until(lambda: "refused" in css(browser, "#token-why")[0].text)
        css(browser, "#token-input")[0].send_keys(TOKEN)
        css(browser, "#token-form button")[0].click()
        wait_until(lambda: css(browser, "table.runs"), timeout=20)
        assert TOKEN not in browser.current_url
        assert browser.execute_script("return sessionStorage.getItem('costwise.token')") == TOKEN
        browser.get(f"{base}/web/shapes")  # another page of the tab: the token is kept, not asked again
        assert ready(browser) == "ready" and css(browser, 'tr[data-shape="cheap"]')
        assert TOKEN not in browser.current_url
        browser.execute_script("sessionStorage.clear()")
    finally:
        d.stop()


def test_the_page_keeps_the_api_guards(daemon):
    """No browser needed: a rebound Host name gets no page, the views take no POST, and a foreign
    origin's write is refused as before."""
    import http.client

    def answer(method, path, headers, body=None):
        conn = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=10)
        try:
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            return resp.status, dict(resp.getheaders()), resp.read()
        finally:
            conn.close()

    for path in ("/", "/web/static/app.js", "/web/f/runs"):
        assert answer("GET", path, {"Host": f"rebound.example:{daemon.port}"})[0] == 403
    status, headers, body = answer("GET", "/", {"Host": f"127.0.0.1:{daemon.port}"})
    assert status == 200 and b"<table" not in body and b"r-" not in body  # the shell holds no data
    assert "script-src 'self'" in headers["Content-Security-Policy"] and headers["X-Frame-Options"] == "DENY"
    foreign = {"Host": f"127.0.0.1:{daemon.port}", "Origin": "http://evil.example", "Content-Type": "application/json"}
    assert answer("POST", "/runs", foreign, b'{"job": "hello"}')[0] == 403
    assert answer("POST", "/", {"Host": f"127.0.0.1:{daemon.port}", "Content-Type": "application/json"}, b"{}")[0] == 404
