"""The listening-test page end to end in a real headless Chromium (Debian's chromium + chromedriver, via selenium):
load from file://, start, play audio after a click, move sliders with the keyboard, reload (answers survive in
localStorage), export the CSV through the browser's download, and score it with ``lassbench listen score``; the
page stays blind (nothing a listener's browser holds names a condition) and inert under hostile captions."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_listen import HOSTILE_QUERY, HOSTILE_TITLE, make_runs  # pytest puts this folder on sys.path

from lassbench.listen.build import ListenConfig, build_test
from lassbench.listen.key import read_key
from lassbench.listen.stimuli import HIDDEN_REFERENCE, LOW_ANCHOR

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None,
                       reason="needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver;"
                              " .ci/run installs them)"),
]


def browser(download_dir: Path, profile: Path):
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.add_experimental_option("prefs", {"download.default_directory": str(download_dir),
                                              "download.prompt_for_download": False})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(download_dir)})
    return driver


def wait_for(predicate, timeout: float = 10.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_page_plays_rates_exports_and_the_export_scores(tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    bench, runs = make_runs(tmp_path, n_items=3)
    page = build_test(ListenConfig(runs=[str(r) for r in runs], out=str(tmp_path / "page"), data=str(bench),
                                   trials=2))
    test = read_key(tmp_path / "page")
    condition_of = {s["id"]: s["condition"] for t in test["trials"] for s in t["stimuli"]}
    named = {*condition_of.values(), *test["systems"]}
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    driver = browser(downloads, tmp_path / "profile")
    try:
        driver.get(page.resolve().as_uri())
        driver.find_element(By.ID, "listener").send_keys("=1+1")  # a listener id a spreadsheet would compute
        driver.find_element(By.ID, "begin").click()
        assert driver.find_element(By.ID, "query").text == test["trials"][0]["query"]
        assert_blind(driver, named)

        # audio starts from a click (the user gesture autoplay policies ask for) and advances
        driver.find_elements(By.CSS_SELECTOR, "button.play")[0].click()
        wait_for(lambda: driver.execute_script(
            "const a = Array.from(document.querySelectorAll('audio')).find(e => !e.paused);"
            "return a ? a.currentTime > 0.05 : false;"), what="audio to play")
        driver.find_element(By.ID, "stop").click()

        expected = {}
        for index, trial in enumerate(test["trials"]):
            for row in driver.find_elements(By.CSS_SELECTOR, "#conditions tr[data-stimulus]"):
                stimulus = condition_of[row.get_attribute("data-stimulus")]  # the DOM has the id, the key the name
                slider = row.find_element(By.CSS_SELECTOR, "input[type=range]")
                if stimulus == HIDDEN_REFERENCE:
                    slider.send_keys(Keys.END)  # 100
                    expected[(trial["trial_id"], stimulus)] = 100
                elif stimulus == LOW_ANCHOR:
                    slider.send_keys(Keys.HOME, *[Keys.ARROW_RIGHT] * 10)  # 10
                    expected[(trial["trial_id"], stimulus)] = 10
                else:
                    slider.send_keys(Keys.HOME, *[Keys.ARROW_RIGHT] * (40 + index))
                    expected[(trial["trial_id"], stimulus)] = 40 + index
            if index == 0:  # answers survive a reload (localStorage), and the page resumes where it was
                driver.refresh()
                driver.find_element(By.ID, "begin").click()
                hidden = next(i for i, c in condition_of.items() if c == HIDDEN_REFERENCE and i in
                              {s["id"] for s in trial["stimuli"]})
                ref_row = driver.find_element(By.CSS_SELECTOR, f"#conditions tr[data-stimulus='{hidden}']")
                assert ref_row.find_element(By.CSS_SELECTOR, "input").get_attribute("value") == "100"
                assert_blind(driver, named)
            driver.find_element(By.ID, "next").click()
        assert "Thank you" in driver.find_element(By.ID, "end").text

        driver.find_element(By.ID, "export").click()
        exported = wait_for(lambda: [p for p in downloads.glob("ratings_*.csv")], what="the CSV download")[0]
        assert_blind(driver, named)
    finally:
        driver.quit()

    import pandas as pd

    rows = pd.read_csv(exported, dtype=str, keep_default_na=False)
    assert list(rows.columns) == ["test_id", "session", "listener", "trial_id", "rating_stimulus", "rating_score",
                                  "rating_time"]
    assert len(rows) == sum(len(t["stimuli"]) for t in test["trials"])
    assert not set(rows["rating_stimulus"]) & named  # the export is as blind as the page
    assert {(r.trial_id, condition_of[r.rating_stimulus]): float(r.rating_score) for r in rows.itertuples()} == expected
    assert (rows["test_id"] == test["test_id"]).all()
    assert (rows["listener"] == "'=1+1").all()  # a spreadsheet shows the text; listen score removes the apostrophe
    assert (rows["rating_time"].astype(float) > 0).all()

    result = subprocess.run([sys.executable, "-m", "lassbench", "listen", "score", str(exported), "--key",
                             str(tmp_path / "page.key.json"), "--out", str(tmp_path / "scored")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "assessors: 1 (0 excluded" in result.stdout
    assert "hidden_reference *" in result.stdout
    summary = json.loads((tmp_path / "scored" / "listening_summary.json").read_text())
    assert list(summary["screening"]) == ["=1+1"]


def assert_blind(driver, named: set[str]) -> None:
    """Nothing the listener's browser holds (DOM, page source, stored answers, file names) names a condition."""
    held = driver.execute_script(
        "return [document.documentElement.outerHTML, JSON.stringify(localStorage),"
        " Array.from(document.querySelectorAll('audio')).map(a => a.src).join(' ')].join('\\n');")
    for text in (held, driver.page_source):
        leaked = sorted(name for name in named if name in text)
        assert not leaked, f"the page names {leaked}"


def test_hostile_captions_and_titles_leave_the_page_working_and_inert(tmp_path):
    """A caption that opens an HTML comment or a script, and a title holding the JSON placeholder next to an
    <img onerror>, are shown as text and the test still starts."""
    from selenium.webdriver.common.by import By

    onerror = '<img src="x" onerror="document.title=\'pwned\';window.pwned=1">'
    bench, runs = make_runs(tmp_path, n_items=2, queries=[HOSTILE_QUERY, onerror])
    page = build_test(ListenConfig(runs=[str(r) for r in runs], out=str(tmp_path / "page"), data=str(bench),
                                   trials=2, items=["item0", "item1"], title=HOSTILE_TITLE + onerror))
    driver = browser(tmp_path / "downloads", tmp_path / "profile")
    try:
        driver.get(page.resolve().as_uri())
        assert driver.find_element(By.TAG_NAME, "h1").text == HOSTILE_TITLE + onerror
        driver.find_element(By.ID, "listener").send_keys("ann")
        driver.find_element(By.ID, "begin").click()
        wait_for(lambda: driver.find_element(By.ID, "trial").is_displayed(), what="the first trial")
        assert driver.find_element(By.ID, "query").get_attribute("textContent") == HOSTILE_QUERY
        driver.find_element(By.ID, "next").click()
        assert driver.find_element(By.ID, "query").text == onerror
        time.sleep(0.5)  # an injected <img onerror> would have fired by now
        assert driver.execute_script("return window.pwned === undefined && document.images.length === 0")
        assert driver.title != "pwned"
    finally:
        driver.quit()
