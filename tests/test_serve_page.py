"""The ``tdetl serve`` page in a real headless browser (Debian's chromium through Selenium): a task
created through the form built from the driver specs, validated inline, seen running to its end
with its counters; a screenshot is kept as a test artifact."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import ROOT
from .samples import PARSER, meters
from .serve_helpers import Service
from .services import missing

ARTIFACTS = Path(os.environ.get("TDETL_ARTIFACTS") or ROOT / "build" / "artifacts")


@pytest.fixture
def browser() -> Iterator[Any]:
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        missing("chromium and chromedriver (Debian packages 'chromium', 'chromium-driver')")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service as Driver

    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium") or ""
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1200,900",
                "--disable-gpu"):
        opts.add_argument(arg)
    b = webdriver.Chrome(service=Driver(shutil.which("chromedriver")), options=opts)
    b.implicitly_wait(0)
    yield b
    b.quit()


def _wait(browser: Any, cond: Any, what: str, timeout: float = 60) -> Any:
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    # the page redraws its lists every 2 s: an element found a moment ago may be gone (stale)
    return WebDriverWait(browser, timeout, poll_frequency=0.2,
                         ignored_exceptions=(NoSuchElementException, StaleElementReferenceException)).until(
        cond, message=what)


def test_create_a_task_in_the_page_and_watch_it_finish(browser: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    meters(3000, tables=3).write_csv(tmp_path / "m.csv")
    s = Service(tmp_path / "data", token="pagetoken").start()
    try:
        browser.get(f"http://127.0.0.1:{s.port}/?token=pagetoken")
        _wait(browser, lambda b: "tasks" in b.find_element(By.ID, "health").text, "the page reaches the service")
        assert "token" not in browser.current_url  # taken once into a cookie, out of the address bar
        empty = _wait(browser, lambda b: b.find_element(By.ID, "empty"), "the empty list")
        _wait(browser, lambda b: empty.is_displayed(), "the empty list says what to do")
        assert "New task" in empty.text and "POST /api/tasks" in empty.text
        browser.find_element(By.ID, "new").click()
        browser.find_element(By.ID, "f-to").send_keys(f"duckdb:{tmp_path / 'o.duckdb'}")
        browser.find_element(By.ID, "f-parser").send_keys(json.dumps(PARSER))
        src = browser.find_element(By.ID, "f-from")
        src.send_keys(f"csv:{tmp_path / 'm.csv'}")
        # the csv source's parameters appear as fields, from /api/drivers
        header = _wait(browser, lambda b: b.find_element(By.CSS_SELECTOR, "#p-from input[data-param=header]"),
                       "the csv parameters")
        header.send_keys("maybe")
        _wait(browser, lambda b: "header='maybe' is not valid" in b.find_element(By.ID, "f-error").text,
              "inline validation names the bad parameter")
        assert "header=maybe" in src.get_attribute("value")
        header.clear()
        header.send_keys("true")
        browser.find_element(By.ID, "f-name").send_keys("meters from the page")
        # the parser preview: sample CSV lines (one with a bad voltage) as a run would read them
        lines = (tmp_path / "m.csv").read_text().splitlines()[:3]
        bad = lines[2].split(",")
        bad[lines[0].split(",").index("voltage")] = "high"
        browser.find_element(By.CSS_SELECTOR, "#preview summary").click()
        browser.find_element(By.ID, "pv-kind").send_keys("CSV")
        browser.find_element(By.ID, "pv-samples").send_keys("\n".join([*lines, ",".join(bad)]))
        browser.find_element(By.ID, "f-on-error").send_keys("drop")
        browser.find_element(By.ID, "pv-run").click()
        _wait(browser, lambda b: b.find_element(By.CSS_SELECTOR, "#pv-out h4.pv-table"), "the preview")
        heads = [h.text for h in browser.find_elements(By.CSS_SELECTOR, "#pv-out h4.pv-table")]
        assert len(heads) == 2 and all("(super table meters; groupid=" in h and h.endswith(": 1 row") for h in heads)
        types = browser.find_elements(By.CSS_SELECTOR, "#pv-out tr.types")[0].text.split()
        assert types == ["TIMESTAMP", "FLOAT", "INT", "FLOAT"], types
        outcomes = browser.find_element(By.CSS_SELECTOR, "#pv-out .pv-outcomes").text
        assert outcomes == "situations: type-mismatch dropped 1", outcomes
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(ARTIFACTS / "serve-preview.png"))
        browser.find_element(By.ID, "f-on-error").clear()
        _wait(browser, lambda b: b.find_element(By.ID, "f-error").text == ""
              and b.find_element(By.ID, "f-save").is_enabled(), "the form is valid")
        browser.find_element(By.ID, "f-save").click()
        _wait(browser, lambda b: b.find_element(By.ID, "d-state").text.startswith("finished"), "the task finishes")
        written = _wait(browser, lambda b: b.find_element(By.CSS_SELECTOR, "tr[data-counter=rows_written]"),
                        "counters")
        assert written.text.split()[-2:] == ["3,000", "3,000"]  # this run, cumulative
        _wait(browser, lambda b: "wrote 3,000 rows" in b.find_element(By.ID, "d-log").text, "the log")
        # its own address, the buttons that apply: a finished task can start again, not stop
        assert "#/tasks/" in browser.current_url
        assert browser.find_element(By.ID, "d-start").is_enabled()
        assert not browser.find_element(By.ID, "d-stop").is_enabled()
        browser.refresh()
        _wait(browser, lambda b: b.find_element(By.ID, "d-name").text == "meters from the page", "the task's address")
        browser.save_screenshot(str(ARTIFACTS / "serve-task.png"))
        browser.find_element(By.ID, "d-back").click()
        row = _wait(browser, lambda b: b.find_element(By.CSS_SELECTOR, "#tasks tr.task").text, "the task list")
        assert "meters from the page" in row and "finished" in row
        browser.save_screenshot(str(ARTIFACTS / "serve-list.png"))
    finally:
        s.stop()


def test_counters_and_the_chart_move_while_messages_flow(browser: Any, mosquitto: Any, tmp_path: Path) -> None:
    """An MQTT task fed for a while: the page's counters grow between two looks and the throughput
    chart gets its points."""
    import threading
    import time

    from selenium.webdriver.common.by import By

    from .test_mqtt import PARSER as MQTT_PARSER
    from .test_mqtt import _doc, _publish

    s = Service(tmp_path / "data").start()
    stop = threading.Event()

    def feed() -> None:
        i = 0
        while not stop.is_set():
            _publish(mosquitto, [("page/a", json.dumps(_doc(i + k)).encode(), 1) for k in range(200)])
            i += 200
            time.sleep(0.2)

    t = threading.Thread(target=feed, daemon=True)
    try:
        r = s.call("POST", "/api/tasks", json={
            "name": "plant meters over MQTT", "parser": MQTT_PARSER, "to": f"local:{tmp_path / 'bk'}",
            "from": f"mqtt://127.0.0.1:{mosquitto.port}?topics=page/%23::1&client_id=page{os.getpid()}&version=5.0"})
        tid = r.json()["id"]
        s.wait_for(tid, lambda x: x["state"] == "running" and "elapsed" in x["counters"])
        t.start()
        browser.get(f"http://127.0.0.1:{s.port}/?token={s.token}")
        _wait(browser, lambda b: b.find_element(By.CSS_SELECTOR, "#tasks tr.task").click() is None, "the task list")

        def written(b: Any) -> int:
            cells = b.find_element(By.CSS_SELECTOR, "tr[data-counter=rows_written]").text.split()
            return int(cells[-2].replace(",", ""))
        first = _wait(browser, lambda b: written(b) > 0 and written(b), "rows written")
        _wait(browser, lambda b: written(b) > first, "the counters move", timeout=30)
        _wait(browser, lambda b: s.call("GET", f"/api/tasks/{tid}/history").json()["points"][2:], "chart points",
              timeout=30)
        time.sleep(4.5)  # two more refreshes: the chart draws its points
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(ARTIFACTS / "serve-running.png"))
        assert browser.find_elements(By.CSS_SELECTOR, "#chart canvas")
        # the y axis's labels fit (400,000 showed as a clipped "0,000"); a running task can stop, not start
        assert browser.execute_script("return chart.axes[1].values(chart, [400000, 1250000])") == ["400,000",
                                                                                                "1,250,000"]
        assert browser.execute_script("return chart.bbox.left / devicePixelRatio") >= 80  # room for the labels
        assert browser.find_element(By.ID, "d-stop").is_enabled()
        assert not browser.find_element(By.ID, "d-start").is_enabled()
    finally:
        stop.set()
        t.join(10)
        s.stop()
